"""The package's layers: lower layers never import higher ones (read from the source's imports).

Every ``import`` and ``from ... import`` of a module counts, including those inside functions,
so a lazy import of a higher layer is caught too. The closure follows realfake's own modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import realfake

ROOT = Path(realfake.__file__).parent


@cache
def _module_path(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(name: str) -> frozenset[str]:
    """Absolute names a module imports (``from realfake.x import y`` gives x and x.y)."""
    path = _module_path(name)
    if path is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def closure(start: str) -> set[str]:
    """Every module reachable from ``start`` (realfake's own modules followed, others noted)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if not name.startswith("realfake"):
            continue
        parts = name.split(".")
        # Importing a.b.c imports the packages a and a.b on the way.
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]
        todo += [m for m in _imports(name) if m.startswith("realfake") and _module_path(m)]
        todo += [m.split(".")[0] for m in _imports(name) if not m.startswith("realfake")]
    return seen


def _package_modules(package: str) -> list[str]:
    folder = ROOT / package.split(".", 1)[1]
    return [f"{package}.{p.stem}" if p.stem != "__init__" else package for p in folder.glob("*.py")]


def _reached(package: str) -> set[str]:
    out: set[str] = set()
    for module in _package_modules(package):
        out |= closure(module)
    return out


HIGHER = {
    # layer: what it must never reach
    "realfake.runs": {
        "lightning",
        "realfake.train",
        "realfake.inference",
        "realfake.evaluate",
        "realfake.attacks",
    },
    "realfake.models": {
        "lightning",
        "realfake.data",
        "realfake.train",
        "realfake.runs",
        "realfake.attacks",
    },
    "realfake.inference": {
        "lightning",
        "realfake.train",
        "realfake.evaluate",
        "realfake.robustness",
        "realfake.studies",
        "realfake.explain",
        "realfake.export",
        "realfake.attacks",
    },
    # Attacks need a model (the predictor's function), so they sit above inference; the
    # robustness grid and training both use them, so they sit below those.
    "realfake.attacks": {
        "lightning",
        "realfake.train",
        "realfake.evaluate",
        "realfake.robustness",
        "realfake.studies",
        "realfake.explain",
        "realfake.export",
        "realfake.serve",
    },
    "realfake.export": {
        "lightning",
        "realfake.train",
        "realfake.evaluate",
        "realfake.robustness",
        "realfake.studies",
        "realfake.explain",
    },
    "realfake.evaluate": {"lightning", "realfake.train", "realfake.studies", "realfake.robustness"},
    "realfake.explain": {"lightning", "realfake.train", "realfake.studies", "realfake.evaluate"},
    "realfake.robustness": {"realfake.train", "realfake.studies"},
    # The service builds on the predictor, runs, explain, data and models; never on training
    # or the analyses, so a serving image needs no Lightning.
    "realfake.serve": {
        "lightning",
        "realfake.train",
        "realfake.evaluate",
        "realfake.studies",
        "realfake.robustness",
        "realfake.attacks",
    },
}


@pytest.mark.parametrize("package", sorted(HIGHER))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    reached = _reached(package)
    bad = {
        m
        for m in reached
        for banned in HIGHER[package]
        if m == banned or m.startswith(banned + ".")
    }
    assert not bad, f"{package} reaches {sorted(bad)}"


def test_the_data_layer_imports_nothing_above_it() -> None:
    above = (
        "realfake.train",
        "realfake.inference",
        "realfake.evaluate",
        "realfake.runs",
        "realfake.attacks",
    )
    # Every module, the Lightning data module included: it lives in realfake.train.
    for module in _package_modules("realfake.data"):
        reached = closure(module)
        assert not [m for m in reached if m.startswith(above)], module
        assert "lightning" not in reached, module


@pytest.mark.slow
def test_importing_the_predictor_loads_torch_but_not_lightning() -> None:
    code = (
        "import sys, realfake.inference; "
        "names = {'torch', 'torchvision', 'lightning', 'pytorch_lightning', 'mlflow', 'sklearn', "
        "'matplotlib', 'onnx', 'onnxruntime', 'onnxscript'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['torch']"
