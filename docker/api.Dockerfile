# syntax=docker/dockerfile:1
# The HTTP service (`realfake serve`) on CPU: a slim Python 3.11 image holding one virtual
# environment with realfake[serve,onnx] and the CPU build of torch. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t realfake-api .
#   docker run --rm -p 8000:8000 -v "$PWD/model.onnx:/models/model.onnx:ro" realfake-api
# REALFAKE_MODEL names what to serve inside the container: an exported .onnx file (default) or a
# run directory (e.g. -v "$PWD/runs/NAME:/models/NAME:ro" -e REALFAKE_MODEL=/models/NAME).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the project's wheel and every dependency in /opt/venv ------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# torch from the CPU index first: PyPI's Linux wheel pulls in ~3 GB of CUDA libraries that a CPU
# service never loads. The versions are the ones the test suite runs on (Makefile's TORCH_SPEC).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN python -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A wheel, not the source tree: the image holds exactly what `pip install realfake` would. The
# installed torch satisfies realfake's `torch>=2.3`, so pip keeps the CPU build.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && set -- /wheels/realfake-*.whl \
    && pip install "realfake[serve,onnx] @ file://$1" \
    && realfake --version

# --- runtime: the virtual environment and nothing else of the build -----------------------------
FROM ${PYTHON_IMAGE}

ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="realfake-api" \
      org.opencontainers.image.description="realfake serve: tells real photographs from AI-generated images over HTTP (/predict, /explain, /metrics, a page at /)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

# A numeric user, so that runtimes enforcing non-root (Kubernetes runAsNonRoot) can verify it.
RUN groupadd --system --gid 10001 realfake \
    && useradd --system --uid 10001 --gid realfake --create-home --home-dir /home/realfake realfake \
    && mkdir -p /models

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REALFAKE_MODEL=/models/model.onnx

USER 10001:10001
WORKDIR /home/realfake
EXPOSE 8000

# /ready is 200 only once the model is loaded and warmed up; urllib raises (exit 1) on anything
# else. slim images have no curl. The start period covers loading torch and the model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]

# `realfake serve` takes the model as an argument: the shell expands $REALFAKE_MODEL, then `exec`
# replaces it, so the server is PID 1 and receives docker stop's SIGTERM (a graceful shutdown).
CMD ["sh", "-c", "exec realfake serve \"$REALFAKE_MODEL\" --host 0.0.0.0 --port 8000"]
