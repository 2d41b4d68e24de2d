"""The audit key and the anchor file: what keeps the audit trail honest against whoever has the database.

Both live outside the database file.

* **Key.** Entry hashes are HMAC-SHA256 under a secret key: ``$STUDIO_AUDIT_KEY`` (any text, 16
  characters or more) if set, else the key file ``$STUDIO_AUDIT_DIR/audit.key`` (default directory
  ``~/.config/threshold-studio``), created on first use with 32 random bytes and owner-only (0600)
  permissions. Reading never creates a key: a database moved without it verifies as "unverifiable:
  key missing".
* **Anchor.** After every committed audit entry one line ``seq hash time [restore]`` is appended to an
  anchor file (``$STUDIO_AUDIT_ANCHOR`` if set, else ``$STUDIO_AUDIT_DIR/anchors/<db name>-<12 hex of
  the database's real path>.anchor``). Several processes may write one database: each line is
  appended under an exclusive ``flock`` with ``O_APPEND`` and one ``write`` call, so lines never
  interleave; their order may differ from seq order, which verification does not rely on. The line
  is written *after* the transaction commits (a rolled-back change leaves no line). A crash between
  the commit and the append leaves the anchor one entry behind the database: verification reports
  entries newer than the last anchored one as "not anchored yet", never as tampering, and the next
  write anchors the head again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError

KEY_FILE = "audit.key"
MIN_KEY_CHARS = 16


def audit_dir() -> Path:
    """``$STUDIO_AUDIT_DIR``, else ``~/.config/threshold-studio``."""
    env = os.environ.get("STUDIO_AUDIT_DIR")
    return Path(env) if env else Path.home() / ".config" / "threshold-studio"


def key_path() -> Path:
    return audit_dir() / KEY_FILE


def key_source() -> str:
    """Where the key comes from, for messages: the environment variable or the key file's path."""
    return "$STUDIO_AUDIT_KEY" if os.environ.get("STUDIO_AUDIT_KEY") else str(key_path())


def load_key(*, create: bool = False) -> bytes | None:
    """The audit key, or None when there is none (``create=True`` makes the key file if absent)."""
    env = os.environ.get("STUDIO_AUDIT_KEY")
    if env:
        if len(env) < MIN_KEY_CHARS:
            raise StudioError(f"STUDIO_AUDIT_KEY must be at least {MIN_KEY_CHARS} characters "
                              f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return env.encode("utf-8")
    path = key_path()
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise StudioError(f"{path}: cannot read the audit key (expected 64 hex digits): {exc}") from exc
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    try:   # O_EXCL: two processes creating at once keep one key (the loser reads the winner's)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(create=False)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.digest(key, text.encode("utf-8"), "sha256").hex()


# ---------------------------------------------------------------------------------------- anchor

def anchor_path(db_path: str) -> Path | None:
    """The anchor file of the database at ``db_path`` (None for an in-memory database)."""
    env = os.environ.get("STUDIO_AUDIT_ANCHOR")
    if env:
        return Path(env)
    if db_path == ":memory:":
        return None
    real = os.path.realpath(db_path)
    tag = hashlib.sha256(real.encode("utf-8")).hexdigest()[:12]
    return audit_dir() / "anchors" / f"{Path(real).stem}-{tag}.anchor"


@dataclass(frozen=True)
class AnchorLine:
    """One anchored head: entry ``seq`` had hash ``entry_hash`` when written at ``ts`` (ISO UTC)."""

    seq: int
    entry_hash: str
    ts: str
    restore: bool = False


def append(path: Path, line: AnchorLine) -> None:
    """Append one line under an exclusive lock (safe from several processes)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = f"{line.seq} {line.entry_hash} {line.ts}{' restore' if line.restore else ''}\n".encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:   # no flock (Windows): O_APPEND single writes still do not interleave
            pass
        os.write(fd, text)
    finally:
        os.close(fd)   # closing releases the lock


def read(path: Path) -> list[AnchorLine] | None:
    """Every well-formed line of the anchor file, in file order; None when there is no file."""
    try:
        raw = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    out = []
    for text in raw.splitlines():
        parts = text.split()
        if len(parts) >= 3 and parts[0].isdigit() and len(parts[1]) == 64:
            out.append(AnchorLine(int(parts[0]), parts[1], parts[2], "restore" in parts[3:]))
    return out
