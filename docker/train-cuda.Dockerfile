# syntax=docker/dockerfile:1
# Training and sweeps on NVIDIA GPUs: realfake[onnx] with torch's CUDA 12.8 build and psycopg2.
# Build from the repository root, run with the NVIDIA Container Toolkit:
#   docker build -f docker/train-cuda.Dockerfile -t realfake-train-cuda .
#   docker run --rm --gpus all --shm-size 8g -v realfake-runs:/work/runs \
#       -v "$PWD/data:/data:ro" realfake-train-cuda train trainer=gpu data=cifake_sample
# The same entrypoint, command, folders and variables as docker/train.Dockerfile.
#
# Base: NVIDIA's CUDA image on Ubuntu 24.04 with the Python it ships (3.12; realfake needs 3.10+),
# so no third-party package archive is involved. torch's cu128 wheels bring their own CUDA
# runtime, cuBLAS, cuDNN and NCCL as pip packages, so the small `base` flavour suffices: the
# `runtime`/`cudnn-runtime` flavours would hold a second copy of those libraries (2-3 GB). The
# host driver must support CUDA 12.8 (driver 570 or newer).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

# --- builder: the project's wheel and every dependency in /opt/venv ------------------------------
FROM ${CUDA_IMAGE} AS builder

# An ARG, not an ENV: apt's prompt setting should not outlive the build in the image.
ARG DEBIAN_FRONTEND=noninteractive
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# Unpinned apt packages: Ubuntu's archive keeps only the latest security update of each, so an
# exact pin stops building as soon as one is published; the base image's tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN python3.12 -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && set -- /wheels/realfake-*.whl \
    && pip install "realfake[onnx] @ file://$1" "psycopg2-binary==2.9.13" \
    && realfake --version

# --- runtime -------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE}

ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="realfake-train-cuda" \
      org.opencontainers.image.description="realfake on NVIDIA GPUs (CUDA 12.8): train, evaluate, sweep (Optuna, PostgreSQL), export" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

ARG DEBIAN_FRONTEND=noninteractive

# A C compiler and Python's headers stay in this image on purpose: `trainer=gpu` turns on
# torch.compile, whose Triton backend compiles a small C launcher for the driver at run time.
# Unpinned for the reason given in the builder stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 gcc libc6-dev python3.12-dev \
    && rm -rf /var/lib/apt/lists/*

# A numeric user, so that runtimes enforcing non-root (Kubernetes runAsNonRoot) can verify it.
# The folders exist and belong to it before VOLUME, so new volumes mounted there are writable.
RUN groupadd --system --gid 10001 realfake \
    && useradd --system --uid 10001 --gid realfake --create-home --home-dir /home/realfake realfake \
    && mkdir -p /work/runs /work/sweeps /cache /data \
    && chown -R 10001:10001 /work /cache

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REALFAKE_CACHE=/cache \
    REALFAKE_DATA=/data \
    MLFLOW_TRACKING_URI=sqlite:////work/runs/mlruns.db

USER 10001:10001
WORKDIR /work
# /data is read-only input, bind-mounted (-v "$PWD/data:/data:ro"): no anonymous volume for it.
VOLUME ["/work/runs", "/work/sweeps", "/cache"]

ENTRYPOINT ["realfake"]
CMD ["train"]
