# syntax=docker/dockerfile:1
# Training, sweeps and the MLflow server on CPU: realfake[onnx] with the CPU build of torch and
# psycopg2 (PostgreSQL for shared sweep studies and MLflow's backend store). Build from the
# repository root:
#   docker build -f docker/train.Dockerfile -t realfake-train .
#   docker run --rm -v realfake-runs:/work/runs realfake-train train trainer.max_epochs=5
# The entrypoint is `realfake`; the default command trains the default model on the embedded data.
# Runs go to /work/runs, sweeps to /work/sweeps, the decode cache to $REALFAKE_CACHE (/cache) and
# data sets are read from $REALFAKE_DATA (/data, e.g. /data/cifake-sample/train.tar); MLflow
# tracks into $MLFLOW_TRACKING_URI (a SQLite file beside the runs unless set, e.g. to
# http://mlflow:5000).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the project's wheel and every dependency in /opt/venv ------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# torch from the CPU index first: PyPI's Linux wheel pulls in ~3 GB of CUDA libraries that a CPU
# image never loads (docker/train-cuda.Dockerfile is the GPU image). The versions are the ones the
# test suite runs on (Makefile's TORCH_SPEC).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN python -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A wheel, not the source tree. psycopg2-binary: `--storage postgresql://...` and MLflow's
# PostgreSQL backend store (the version the test suite's PostgreSQL sweep test runs on).
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && set -- /wheels/realfake-*.whl \
    && pip install "realfake[onnx] @ file://$1" "psycopg2-binary==2.9.13" \
    && realfake --version

# --- runtime: the virtual environment and nothing else of the build -----------------------------
FROM ${PYTHON_IMAGE}

ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="realfake-train" \
      org.opencontainers.image.description="realfake on CPU: train, evaluate, sweep (Optuna, PostgreSQL), export; also runs the MLflow server" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

# A numeric user, so that runtimes enforcing non-root (Kubernetes runAsNonRoot) can verify it.
# The folders exist and belong to it before VOLUME, so new volumes mounted there are writable.
RUN groupadd --system --gid 10001 realfake \
    && useradd --system --uid 10001 --gid realfake --create-home --home-dir /home/realfake realfake \
    && mkdir -p /work/runs /work/sweeps /cache /data /mlartifacts \
    && chown -R 10001:10001 /work /cache /mlartifacts

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REALFAKE_CACHE=/cache \
    REALFAKE_DATA=/data \
    MLFLOW_TRACKING_URI=sqlite:////work/runs/mlruns.db

USER 10001:10001
WORKDIR /work
# /data is read-only input, bind-mounted by whoever has the data (-v "$PWD/data:/data:ro"), so no
# anonymous volume is made for it.
VOLUME ["/work/runs", "/work/sweeps", "/cache"]

ENTRYPOINT ["realfake"]
CMD ["train"]
