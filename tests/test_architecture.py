"""The package layout holds: layers and forbidden imports (import-linter), no module-level cycles, and
the small public API of ``core``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import core

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Every module-level cycle found by a depth-first search (one witness per back edge)."""
    colour: dict[str, int] = {}
    found: list[list[str]] = []
    stack: list[str] = []

    def visit(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m) & modules):
            if colour.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in colour:
                visit(n)
        stack.pop()
        colour[m] = 2

    for m in sorted(modules):
        if m not in colour:
            visit(m)
    return found


def test_no_module_level_import_cycles():
    graph = grimp.build_graph("core", "ui", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.split(".")[0] in ("core", "ui")}
    cycles = _cycles(graph, modules)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", core.__all__)
def test_public_api_names_resolve(name):
    assert getattr(core, name) is not None


def test_import_core_is_cheap():
    code = "import sys, core; print('pandas' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_unknown_public_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        core.no_such_thing  # noqa: B018
