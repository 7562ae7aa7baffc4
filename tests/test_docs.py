"""The documentation: the site builds in strict mode, and the tutorials' commands run.

Each tutorial (docs/tutorials/*.md) is run as one bash script in a fresh folder: its ```bash
blocks in order (and its ```python blocks, fed to python), so later commands see what earlier
ones wrote. The pages show the real commands with the write-ups' budgets; the script runs the
same lines with a tiny budget appended to each `realfake train|compare|sweep|demo` line
(``tiny_for``), against a small CIFAKE made from the embedded sample in ``$REALFAKE_DATA``.

Markers, an HTML comment on the line before a block's fence (invisible on the site):

  <!-- docs-test: skip -->        the block is not run (servers for humans, installs)
  <!-- docs-test: background -->  each command starts in the background on a free loopback port
                                  (`--port`), the script waits for its /ready, and stops it at
                                  the end; curl lines reach it on that port
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ["resnext-detector", "mlops-loop", "architectures", "regularisation"]
FIGURES = DOCS / "assets" / "figures"

# On top of conftest's TINY (no tracking, no progress bar, no layout timing): one epoch of one
# batch of 16 images, one validation batch, 32 px whatever the recipe asks (the 3-class
# experiment trains at 96 px). The pages' commands are checked, not the networks' accuracy.
DOCS_TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "data.batch_size=16",
    "data.image_size=32",
]
# A study trains every arm: the same budget, stated again after the study's own.
STUDY_TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=1"]
SWEEP_TRIALS = "1"
SHOWN_PORT = "8000"  # the port the pages show; the test serves on a free one
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)")
HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)(\w+)\2")


@dataclass
class Block:
    lang: str
    code: str
    marker: str | None  # skip | background | None
    line: int  # of the opening fence, 1-based


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a page, with the docs-test marker of the line before each."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)\s*([\w-]*)", lines[i])
        if not fence:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence.group(1)):
            end += 1
        code = "\n".join(lines[i + 1 : end])
        found.append(Block(fence.group(2), code, marker.group(1) if marker else None, i + 1))
        i = end + 1
    return found


def split_words(command: str) -> list[str]:
    """Words of a shell command as written (quotes kept), split on blanks outside quotes."""
    words, word, quote = [], "", None
    for ch in command:
        if quote:
            word += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            word += ch
            quote = ch
        elif ch.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += ch
    if word:
        words.append(word)
    return words


def strip_comment(command: str) -> str:
    """``command`` without a trailing ``# comment`` (a # after a blank, outside quotes)."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command.rstrip()


def tiny_for(command: str, tiny: list[str]) -> str:
    """A `realfake` command line with the tiny budget; other lines unchanged."""
    words = split_words(command)
    if len(words) < 2 or words[0] != "realfake":
        return command
    sub = words[1]
    if sub == "sweep":
        if len(words) > 2 and words[2] == "show":
            return command
        if "--trials" in words:
            words[words.index("--trials") + 1] = SWEEP_TRIALS
        else:
            words[2:2] = ["--trials", SWEEP_TRIALS]
        extra = tiny
    elif sub == "compare":
        if not any(w.startswith("study=") for w in words):
            return command  # collecting finished runs: nothing is trained
        if "--seeds" in words:
            at = words.index("--seeds")
            del words[at : at + 2]
        extra = [*tiny, *STUDY_TINY]
    elif sub in ("train", "demo") and "--resume" not in words:
        extra = tiny
    else:
        return command
    # After the last KEY=VALUE word, so that they win over the page's own overrides and stay
    # among the positionals (argparse takes them in one run).
    last = max((i for i, w in enumerate(words) if OVERRIDE.match(w)), default=len(words) - 1)
    words[last + 1 : last + 1] = extra
    return " ".join(words)


def logical_lines(code: str) -> list[tuple[str, bool]]:
    """(line, is_command): commands with their continuations joined; heredoc bodies verbatim."""
    out: list[tuple[str, bool]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1].rstrip() + " " + lines[i].strip()
        out.append((line, True))
        i += 1
        heredoc = HEREDOC.search(strip_comment(line))
        if heredoc:
            end = heredoc.group(3)
            while i < len(lines):
                body = lines[i]
                out.append((body, False))
                i += 1
                if (body.strip() if heredoc.group(1) else body) == end:
                    break
    return out


PRELUDE = r"""
set -euo pipefail
DOCS_BACKGROUND=()
docs_cleanup() {
    local rc=$?
    for pid in "${DOCS_BACKGROUND[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${DOCS_BACKGROUND[@]}"; do
        for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    exit "$rc"
}
trap docs_cleanup EXIT
docs_wait_ready() {  # URL PID LOG
    for _ in $(seq 1 600); do
        if curl -sf "$1" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then
            echo "the background command exited:"; cat "$3"; return 1
        fi
        sleep 0.2
    done
    echo "not ready after 120 s: $1"; cat "$3"; return 1
}
"""


def script(markdown: str, tiny: list[str], port: int) -> str:
    """The bash script that runs a page's blocks with the tiny budget (see the module doc)."""
    parts = [PRELUDE]
    backgrounds = 0
    for block in blocks(markdown):
        if block.marker == "skip" or block.lang not in ("bash", "python"):
            continue
        if block.marker not in (None, "background"):
            raise ValueError(f"line {block.line}: unknown docs-test marker {block.marker!r}")
        parts.append(f"# --- block at line {block.line}")
        if block.lang == "python":
            parts.append(f'echo "[$SECONDS s] + python (block at line {block.line})"')
            parts.append(f"python - <<'DOCS_PYTHON_EOF'\n{block.code}\nDOCS_PYTHON_EOF")
            continue
        for line, is_command in logical_lines(block.code):
            command = strip_comment(line) if is_command else line
            if not is_command or not command.strip():
                parts.append(command)
                continue
            words = split_words(command)
            if block.marker == "background":
                backgrounds += 1
                if backgrounds > 1:
                    raise ValueError(f"line {block.line}: one background command per page")
                if "--port" in words:
                    del words[words.index("--port") : words.index("--port") + 2]
                log = f"docs-background-{backgrounds}.log"
                parts.append(f'echo "[$SECONDS s]" {shlex.quote("+ " + command)} "&"')
                parts.append(f"{' '.join(words)} --port {port} > {log} 2>&1 &")
                parts.append("DOCS_BACKGROUND+=($!)")
                parts.append(f"docs_wait_ready http://127.0.0.1:{port}/ready $! {log}")
                continue
            if words[0] == "curl":
                words = [
                    re.sub(rf"(127\.0\.0\.1|localhost):{SHOWN_PORT}\b", f"127.0.0.1:{port}", w)
                    for w in words
                ]
                words[1:1] = ["--fail-with-body", "--silent", "--show-error", "--max-time", "60"]
            ran = tiny_for(" ".join(words), tiny)
            parts.append(f'echo "[$SECONDS s]" {shlex.quote("+ " + ran)}')
            parts.append(ran)
    return "\n".join(parts) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(text: str, cwd: Path, env: dict[str, str], timeout: float = 600):
    """Run a script with bash in its own process group; the group is killed if it hangs."""
    path = cwd / "docs-test.sh"
    path.write_text(text)
    process = subprocess.Popen(
        ["bash", str(path)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"timed out after {timeout} s:\n{out[-6000:]}")
    return process.returncode, out


def docs_env(data: Path, cache: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "REALFAKE_DATA": str(data),
        "REALFAKE_CACHE": str(cache),
        "PYTHONUNBUFFERED": "1",
        # One torch thread per process: these tiny runs are start-up and small batches, and on a
        # 2-core machine shared with other jobs two threads per process made the tutorials twice
        # as slow (the regularisation page: 193 s with two, 95 s with one, at load 5.5).
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="session")
def docs_data(tmp_path_factory) -> Path:
    """$REALFAKE_DATA with cifake-sample/{train,test}.tar made from the embedded CIFAKE sample.

    train.tar: 250 training images per class (the tutorials derive CIFAR-10 sets of 3 and 10
    classes from its REAL half); test.tar: 10 test images per class (the ResNeXt tutorial scores
    it three times).
    """
    from realfake.data.embedded import embedded_data_path

    embedded = embedded_data_path()
    root = tmp_path_factory.mktemp("datasets")
    folder = root / "cifake-sample"
    folder.mkdir()
    for split, per_class in (("train", 250), ("test", 10)):
        with tarfile.open(folder / f"{split}.tar", "w") as tar:
            for cls in ("FAKE", "REAL"):
                files = sorted((embedded / split / cls).glob("*.jpg"))[:per_class]
                for path in files:
                    tar.add(path, arcname=f"{split}/{cls}/{path.name}")
    return root


# ---- fast: the runner itself


def test_tiny_budget_goes_after_the_pages_own_overrides():
    tiny = ["trainer.max_epochs=2"]
    assert (
        tiny_for("realfake train experiment=x trainer.max_epochs=20", tiny)
        == "realfake train experiment=x trainer.max_epochs=20 trainer.max_epochs=2"
    )
    compare = tiny_for("realfake compare study=s a.b=1 --seeds 3", tiny)
    assert compare == "realfake compare study=s a.b=1 trainer.max_epochs=2 " + " ".join(STUDY_TINY)
    assert tiny_for("realfake compare runs/a runs/b --out x", tiny) == (
        "realfake compare runs/a runs/b --out x"
    )
    assert tiny_for("realfake sweep demo", tiny) == (
        f"realfake sweep --trials {SWEEP_TRIALS} demo trainer.max_epochs=2"
    )
    assert tiny_for("realfake sweep demo --trials 20 x=1", tiny) == (
        f"realfake sweep demo --trials {SWEEP_TRIALS} x=1 trainer.max_epochs=2"
    )
    assert tiny_for("realfake sweep show demo", tiny) == "realfake sweep show demo"
    assert tiny_for("realfake evaluate runs/a", tiny) == "realfake evaluate runs/a"
    assert strip_comment('realfake train a=1   # "quoted" # more') == "realfake train a=1"
    assert strip_comment("echo 'a # b'") == "echo 'a # b'"


def test_markers_heredocs_and_servers_in_the_script():
    page = textwrap.dedent(
        """
        <!-- docs-test: skip -->
        ```bash
        mlflow ui
        ```

        <!-- docs-test: background -->
        ```bash
        realfake serve model.onnx   # until Ctrl-C
        ```

        ```bash
        cat > a.yaml <<'EOF'
        realfake train not=a-command
        EOF
        curl -F data=@a.jpg http://127.0.0.1:8000/predict/
        ```
        """
    )
    text = script(page, ["x=1"], port=5555)
    assert "mlflow ui" not in text
    assert "realfake serve model.onnx --port 5555 > docs-background-1.log 2>&1 &" in text
    assert "docs_wait_ready http://127.0.0.1:5555/ready" in text
    assert "realfake train not=a-command\n" in text  # a heredoc's body is left alone
    assert "http://127.0.0.1:5555/predict/" in text and "--fail-with-body" in text


def test_a_command_that_breaks_fails_the_page(tmp_path, data_cache):
    page = "```bash\nrealfake data info\nrealfake predict --no-such-flag runs/x images\n```\n"
    code, out = run_script(script(page, [], free_port()), tmp_path, docs_env(tmp_path, data_cache))
    assert code != 0, out
    assert "--no-such-flag" in out


def test_every_tutorial_has_commands_and_every_figure_exists():
    for name in TUTORIALS:
        page = (DOCS / "tutorials" / f"{name}.md").read_text()
        assert any(b.lang == "bash" and b.marker is None for b in blocks(page)), name
        assert "realfake " in script(page, [], 1)
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)\s]*assets/figures/[^)\s]+)\)", page.read_text()):
            figure = (page.parent / target).resolve()
            assert figure.is_file(), f"{page.relative_to(ROOT)}: {target}"
            assert figure.stat().st_size < 200 * 1024, f"{figure.name} is over 200 kB"


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(
            module, reason="the docs extra is not installed: pip install -e .[docs]"
        )
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = (site / "reference" / "inference" / "index.html").read_text()
    assert "Predictor" in reference and "load_predictor" in reference  # rendered docstrings
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "Model zoo: ours vs torchvision" in benchmarks  # BENCHMARKS.md, included
    assert (site / "benchmarks" / "figures" / "recipe_curve.png").is_file()
    assert (site / "assets" / "figures" / "learning_curves.png").is_file()
    assert "fonts.googleapis.com" not in (site / "index.html").read_text()  # builds offline


# ---- slow: the tutorials, each in one shell


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs(name, tmp_path, docs_data, data_cache, tiny_overrides):
    page = (DOCS / "tutorials" / f"{name}.md").read_text()
    text = script(page, [*tiny_overrides, *DOCS_TINY], free_port())
    work = tmp_path / "work"
    work.mkdir()
    code, out = run_script(text, work, docs_env(docs_data, data_cache))
    assert code == 0, f"docs/tutorials/{name}.md failed (exit {code}):\n{out[-8000:]}"
