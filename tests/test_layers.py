"""Data flows one way: no module of ``aircast`` imports a package above its own.

The chain (README, "Layout"): vocab/config → sources → align → store → data → model → training
→ forecast → evaluation → jobs → cli; ``dates``, ``errors`` and ``locks`` sit at the bottom and
anyone may use them; ``sandbox`` serves the sources' protocol and sits beside ``sources``
(above it: it writes products with the sources' vocabulary); ``testing`` and ``cli`` stand
outside the chain, on top. Imports are read from the source (``ast``), at any depth (a
function-level import counts: it is still a dependency), so a new one that runs back up fails
here with its file and line. ``aircast`` never imports ``prefect`` or ``flows``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aircast"

#: Each room's floor: a module may import its own floor and below, never above.
FLOORS = {
    "errors": 0,
    "dates": 0,
    "locks": 0,
    "vocab": 1,
    "catalogue": 2,
    "config": 3,
    "sources": 4,
    "sandbox": 5,
    "align": 5,
    "store": 6,
    "data": 7,
    "model": 8,
    "training": 9,
    "forecast": 10,
    "evaluation": 11,
    "jobs": 12,
    "cli": 13,
    "testing": 13,
    "__main__": 14,
}

#: The package's own face: ``aircast.open_forecast`` is imported on first use, so that
#: ``import aircast`` stays light; it is the one import that runs up, by design.
ALLOWED = {("__init__", "forecast")}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_a_room_above_its_own(path: Path) -> None:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    room = _room(module)
    floor = FLOORS.get(room, -1 if room == "__init__" else None)
    assert floor is not None, f"{room} has no floor in FLOORS: place it in the chain"
    wrong = []
    for line, name in _imports(path):
        top = name.split(".")[0]
        if top in ("prefect", "flows"):
            wrong.append(f"line {line}: {name} (aircast never imports prefect or flows)")
        if top != "aircast" or name == "aircast":
            continue
        target = _room(name)
        if target == room or (room, target) in ALLOWED:
            continue
        if FLOORS[target] > floor:
            wrong.append(f"line {line}: {name} (floor {FLOORS[target]} above {room}'s {floor})")
    assert not wrong, f"{path.name} imports upwards:\n" + "\n".join(wrong)
