"""The GitHub workflows, Dependabot and pre-commit configs say what the project's own scripts do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _commands(workflow: dict[str, Any]) -> list[str]:
    """Every line of every ``run:`` step, in order."""
    lines = [line.strip() for s in _steps(workflow) for line in s.get("run", "").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def _ci_run_commands() -> list[str]:
    """The commands .ci/run ends with: the test target and the linters."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [line for line in lines if line.startswith(("make ", ".venv/bin/"))]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_every_workflow_parses_and_pins_its_actions(path):
    workflow = _load(path)
    assert workflow.get("name") and workflow.get("jobs") and _triggers(workflow)
    for step in _steps(workflow):
        if "uses" in step:
            assert "@v" in step["uses"], f"{path.name}: unpinned action {step['uses']}"


def test_ci_runs_what_ci_run_runs_on_python_3_10_to_3_12():
    ci = _load(WORKFLOWS / "ci.yaml")
    (job,) = ci["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12"]
    expected = _ci_run_commands()
    assert expected == [
        "make test",
        ".venv/bin/mkdocs build --strict",
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
    ]
    commands = _commands(ci)
    assert all(c in commands for c in expected), commands
    assert [c for c in commands if c in expected] == expected  # in .ci/run's order
    apt = " ".join(c for c in commands if "apt-get install" in c)
    for package in ("chromium", "chromium-driver", "postgresql"):
        assert package in apt.split(), f"{package} is not installed as .ci/run installs it"
    # CPU torch from the official wheel index, through the Makefile's TORCH_SPEC.
    assert "download.pytorch.org/whl/cpu" in job["env"]["TORCH_SPEC"]
    assert ci["concurrency"]["group"] and ci["concurrency"]["cancel-in-progress"] is True
    (setup,) = [s for s in _steps(ci) if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert setup["with"]["cache"] == "pip"
    assert {"push", "pull_request"} <= set(_triggers(ci))


def test_docs_builds_with_make_docs_and_deploys_pages_from_main():
    docs = _load(WORKFLOWS / "docs.yaml")
    assert "make docs" in _commands(docs)
    uses = [s.get("uses", "") for s in _steps(docs)]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    deploy = docs["jobs"]["deploy"]
    assert "refs/heads/main" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])


def test_dependabot_updates_pip_and_actions_weekly():
    config = _load(ROOT / ".github" / "dependabot.yml")
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"pip", "github-actions"}
    assert all(u["schedule"]["interval"] == "weekly" for u in updates.values())


def test_pre_commit_runs_ruff_and_the_file_checks_without_blocking_the_embedded_data():
    config = _load(ROOT / ".pre-commit-config.yaml")
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    lint = hooks.get("ruff-check") or hooks.get("ruff")  # `ruff` is the hook's former id
    assert lint is not None and "--fix" in lint.get("args", [])
    assert {"ruff-format", "check-yaml", "check-added-large-files"} <= set(hooks)
    assert {"end-of-file-fixer", "trailing-whitespace"} <= set(hooks)
    assert "--allow-multiple-documents" in hooks["check-yaml"]["args"]
    (limit,) = [a for a in hooks["check-added-large-files"]["args"] if a.startswith("--maxkb=")]
    max_kb = int(limit.partition("=")[2])
    embedded = ROOT / "src" / "realfake" / "data" / "embedded"
    largest = max(p.stat().st_size for p in embedded.rglob("*") if p.is_file())
    assert largest < max_kb * 1024 <= 1024 * 1024, (largest, max_kb)
