"""The release as a user gets it: wheel and sdist built, the wheel installed in a fresh virtual
environment outside the repository, and `realfake` run from another folder.

The fresh environment must not download torch and the rest again (no network here, and minutes
of install), yet must not see this checkout. So it is made with ``python -m venv --without-pip``
and given one ``.pth`` line naming a folder of symbolic links to the development environment's
installed distributions, less everything of realfake itself: its ``.dist-info``, the editable
install's ``__editable__*`` files and every ``.pth`` file (the editable ``.pth`` is what puts
``src/`` on ``sys.path``; ``.pth`` files only take effect in site directories anyway, and the
linked folder is not one). pip, run for the fresh interpreter (``pip --python``), then installs
the wheel with ``--no-index``: the wheel's declared dependencies must already be satisfied by
the linked ones, or the install fails instead of fetching anything.

The build runs without isolation when the running environment already has the build backend
(setuptools >= 77: no index needed), and isolated otherwise (pip fetches setuptools).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "realfake"
# A real training, evaluation and tracking of the demo, on a budget: one epoch of 4 batches.
DEMO_BUDGET = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.channels_last=false",
]


def _version() -> str:
    """``version`` of pyproject.toml's [project] table: the one source of the version."""
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    assert found, "pyproject.toml's [project] table has no version"
    return found.group(1)


def _package_data() -> set[str]:
    """Paths (``realfake/...``) of the non-Python files the installed package reads."""
    files = [
        *(PACKAGE / "data" / "embedded").rglob("*"),
        *(PACKAGE / "configs").rglob("*.yaml"),
        *(PACKAGE / "serve" / "static").glob("*"),
    ]
    return {p.relative_to(PACKAGE.parent).as_posix() for p in files if p.is_file()}


def _has_build_backend() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """A folder holding the wheel and the sdist built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    isolation = ["--no-isolation"] if _has_build_backend() else []
    cmd = [sys.executable, "-m", "build", *isolation, "--outdir", str(out), str(ROOT)]
    _run(cmd, ROOT, dict(os.environ), timeout=600)
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


def test_wheel_and_sdist_carry_the_data_configs_and_page(dist):
    version = _version()
    wheel = _one(dist, "realfake-*.whl")
    sdist = _one(dist, "realfake-*.tar.gz")
    assert wheel.name.startswith(f"realfake-{version}-")
    assert sdist.name == f"realfake-{version}.tar.gz"
    expected = _package_data()
    assert len([p for p in expected if "/embedded/" in p]) > 1000  # the 1,200-image mini set
    assert "realfake/data/embedded/cifake-mini/ATTRIBUTION.md" in expected
    assert "realfake/configs/data/cifake_sample.yaml" in expected
    assert "realfake/serve/static/index.html" in expected
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert expected <= in_wheel, sorted(expected - in_wheel)[:5]
    with tarfile.open(sdist) as tar:
        in_sdist = {name.partition("/src/")[2] for name in tar.getnames() if "/src/" in name}
    assert expected <= in_sdist, sorted(expected - in_sdist)[:5]


def _fresh_venv(root: Path) -> tuple[Path, Path]:
    """A venv at ``root`` that sees the development environment's dependencies but no realfake;
    returns (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = root / "dev-dependencies"
    deps.mkdir()
    dev_sites = {Path(sysconfig.get_path(k)) for k in ("purelib", "platlib")}
    for dev_site in dev_sites:
        for entry in dev_site.iterdir():
            name = entry.name.lower()
            if name.startswith(("realfake", "__editable__")) or name.endswith(".pth"):
                continue  # realfake itself: only the wheel may provide it
            if not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (site / "_realfake_test_dependencies.pth").write_text(f"{deps}\n")
    return python, site


def test_installed_wheel_runs_the_demo_from_another_folder(dist, tmp_path):
    version = _version()
    python, site = _fresh_venv(tmp_path / "venv")
    wheel = _one(dist, "realfake-*.whl")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # the demo's default store: mlruns.db where it runs
    env["REALFAKE_CACHE"] = str(tmp_path / "cache")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index"]
    _run([*pip, str(wheel)], tmp_path, env, timeout=300)

    work = tmp_path / "elsewhere"
    work.mkdir()
    realfake = str(python.parent / "realfake")
    assert _run([realfake, "--version"], work, env, timeout=120).strip() == f"realfake {version}"
    where = _run(
        [str(python), "-c", "import realfake; print(realfake.__file__, realfake.__version__)"],
        work,
        env,
        timeout=120,
    ).split()
    assert Path(where[0]).is_relative_to(site), where  # the wheel's copy, not src/
    assert not Path(where[0]).resolve().is_relative_to(ROOT), where
    assert where[1] == version

    out = _run([realfake, "demo", *DEMO_BUDGET], work, env, timeout=600)
    assert "demo: test accuracy" in out, out
    (run,) = (work / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["metrics"]["test_images"] == 200  # tested on the embedded test split
    assert 0.0 <= results["metrics"]["test_acc"] <= 1.0
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["packages"]["realfake"] == version
    assert manifest["data"]["source"] == "embedded:cifake-mini"  # the data inside the wheel
    assert manifest["git"]["commit"] is None  # run outside any checkout
    assert (work / "mlruns.db").is_file()  # tracked in the working folder, as documented
