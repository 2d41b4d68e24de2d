"""Which files in a watched folder are ready to import (for ``python -m core ingest --watch DIR``).

A feed drops metric exports into a folder; each new file is imported once. A file is *ready* when it
has not changed for ``settle_s`` seconds (its size and modification time are the same as at the
previous look, and it is at least that old), so a file still being written is not read half-way.
Hidden files (``.name``) and names ending in ``.tmp``, ``.part``, ``.partial`` or ``.crdownload``
are ignored: a feed should write under such a name and rename when done. A file that changes after
it was imported (new size or time) is ready again; the same content twice is still a no-op, because
the store recognises an upload by its sha256.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StudioError

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass
class FolderWatch:
    """Remembers what it saw in ``folder`` between looks (one instance per watching process).

    Parameters
    ----------
    folder : Path
        The watched folder (not searched recursively).
    settle_s : float
        Seconds a file must stay unchanged before it is ready.
    """

    folder: Path
    settle_s: float = 2.0
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)   # previous look: size, mtime_ns
    _done: dict[str, tuple[int, int]] = field(default_factory=dict)   # handled: size, mtime_ns
    _looked: bool = False   # the first look trusts age alone (files already there when watching starts)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise StudioError(f"cannot watch {self.folder}: not a directory")

    def ready(self, now: float | None = None) -> list[Path]:
        """Files ready to import now and not handled yet, oldest first."""
        now = time.time() if now is None else now
        seen: dict[str, tuple[int, int]] = {}
        out: list[tuple[int, str]] = []
        with os.scandir(self.folder) as it:
            for e in it:
                if e.name.startswith(".") or e.name.lower().endswith(IGNORED_SUFFIXES):
                    continue
                try:
                    if not e.is_file():
                        continue
                    st = e.stat()
                except OSError:   # removed meanwhile
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                seen[e.name] = sig
                if self._done.get(e.name) == sig:
                    continue
                steady = self._last.get(e.name) == sig or not self._looked
                if steady and now - st.st_mtime_ns / 1e9 >= self.settle_s:
                    out.append((st.st_mtime_ns, e.name))
        self._last = seen
        self._looked = True
        return [self.folder / name for _, name in sorted(out)]

    def done(self, path: Path) -> None:
        """Mark a file handled (imported, a duplicate, or refused): it is not offered again unless it changes."""
        try:
            st = path.stat()
        except OSError:
            return
        self._done[path.name] = (st.st_size, st.st_mtime_ns)
