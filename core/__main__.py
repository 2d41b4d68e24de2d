"""Command line: ``python -m core <command> ...``. Each command lives in ``core/commands/<name>.py``
and defines ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import core.commands
from core.errors import StudioError


def _commands() -> dict[str, object]:
    mods = {}
    for info in pkgutil.iter_modules(core.commands.__path__):
        if not info.name.startswith("_"):
            mods[info.name] = importlib.import_module(f"core.commands.{info.name}")
    return mods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="threshold studio command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, mod in sorted(_commands().items()):
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None)
        p.add_argument("--db", default=None, help="database file (default $STUDIO_DB or data/studio.duckdb)")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
