"""Start the Streamlit server for app.py: ``python -m ui.serve run app.py [streamlit options]``.

Why a launcher: Streamlit keeps a legacy multipage mode for apps that have a ``pages/`` folder next
to the main script. Until some session has run ``st.navigation`` in app.py, a browser that opens a
deep link first (``/thresholds`` after a server restart) gets that legacy mode: the page file runs
without app.py, with file names as navigation. This project uses ``st.navigation`` only, so the
launcher declares that before the server starts. If a future Streamlit drops the flag, setting it is
harmless and the launcher behaves exactly like ``streamlit run``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False   # app.py navigates with st.navigation only
    except (ImportError, AttributeError):
        pass
    from streamlit.web import cli

    sys.argv = ["streamlit", *(sys.argv[1:] if argv is None else argv)]
    return cli.main()  # click command; exits the process itself


if __name__ == "__main__":
    sys.exit(main())
