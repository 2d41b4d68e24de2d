"""``python -m core.eval nab [DIR]``: the detector evaluation on the labelled NAB subset.

The code lives in :mod:`core.analysis.evaluate`; this module only keeps the documented command.
"""

import sys

from core.analysis.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
