"""The recorded printer payloads of ``data/`` (verbatim from research/bambu.md section 2.5)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]


def p1p_full() -> dict[str, Any]:
    """Example A: the P1P full state as the wire message ``{"print": {... "msg": 0}}``."""
    return fixture("p1p_noams.json")["pushall"]  # type: ignore[no-any-return]


def p1p_version() -> dict[str, Any]:
    """Example A: the ``get_version`` reply ``{"info": {...}}``."""
    return fixture("p1p_noams.json")["get_version"]  # type: ignore[no-any-return]


def x1c_full() -> dict[str, Any]:
    """Example B: X1C running, ``{"print": {... "msg": 0}}``."""
    return fixture("x1c_misc.json")["pushall"]  # type: ignore[no-any-return]


def p1_deltas() -> list[bytes]:
    """Example C: five ``msg: 1`` deltas, the exact bytes logged by ha-bambulab users."""
    lines = (DATA / "p1_deltas.txt").read_text().splitlines()
    return [ast.literal_eval(line) for line in lines if line.strip()]


def h2d_fragments() -> dict[str, Any]:
    """Example D: partial ``print`` objects of an H2D."""
    return fixture("h2d_fragments.json")
