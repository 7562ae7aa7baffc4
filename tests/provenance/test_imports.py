"""The provenance package stands alone: no torch, no model, no layer above it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import realfake.provenance

ALLOWED_THIRD_PARTY = {"PIL", "c2pa"}


def test_provenance_imports_only_the_stdlib_pillow_c2pa_and_realfake_errors():
    folder = Path(realfake.provenance.__file__).parent
    reached: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                reached.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                reached.add(node.module)
    outside = {
        name
        for name in reached
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in ALLOWED_THIRD_PARTY
        and not name.startswith(("realfake.provenance", "realfake.errors"))
    }
    assert outside == set()
