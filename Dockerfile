# syntax=docker/dockerfile:1
# One image for every Fitboard process (api, worker, migrate): only the command differs.
#   docker build --target cpu -t fitboard:cpu .   # python:3.11-slim, tensorflow-cpu
#   docker build --target gpu -t fitboard:gpu .   # CUDA base, tensorflow[and-cuda]
# Dependencies (from pyproject.toml, via docker/requirements.py) install before the source is
# copied, so a code change rebuilds only the last layers. The source runs from /app rather than
# site-packages: backend finds migrations/ and frontend/ next to itself.

ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04

# ---- the Python each flavour runs on (the venv built below links to it)
FROM ${PYTHON_IMAGE} AS cpu-base

FROM ${CUDA_IMAGE} AS gpu-base
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*

# ---- dependencies into /opt/venv: only pyproject.toml and the script that reads it
FROM cpu-base AS cpu-deps
WORKDIR /src
COPY pyproject.toml ./
COPY docker/requirements.py docker/
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m venv /opt/venv \
 && python3.11 docker/requirements.py cpu > requirements.txt \
 && /opt/venv/bin/pip install --disable-pip-version-check -r requirements.txt

FROM gpu-base AS gpu-deps
WORKDIR /src
COPY pyproject.toml ./
COPY docker/requirements.py docker/
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m venv /opt/venv \
 && python3.11 docker/requirements.py gpu > requirements.txt \
 && /opt/venv/bin/pip install --disable-pip-version-check -r requirements.txt

# ---- final targets; keep the two alike below the FROM and the venv they copy
FROM cpu-base AS cpu
RUN useradd --no-log-init --create-home --uid 10001 fitboard \
 && mkdir /data && chown fitboard:fitboard /data
COPY --from=cpu-deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FITBOARD_HOME=/data \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY pyproject.toml ./
COPY migrations migrations
COPY frontend frontend
COPY worker worker
COPY backend backend
RUN python -m compileall -q backend worker
# fitboard, by number so that a runAsNonRoot check can verify it
USER 10001:10001
EXPOSE 8000
CMD ["uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", "8000"]

FROM gpu-base AS gpu
RUN useradd --no-log-init --create-home --uid 10001 fitboard \
 && mkdir /data && chown fitboard:fitboard /data
COPY --from=gpu-deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FITBOARD_HOME=/data \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY pyproject.toml ./
COPY migrations migrations
COPY frontend frontend
COPY worker worker
COPY backend backend
RUN python -m compileall -q backend worker
# fitboard, by number so that a runAsNonRoot check can verify it
USER 10001:10001
EXPOSE 8000
CMD ["celery", "-A", "worker.celery_app", "worker", "--pool", "threads", "--concurrency", "1", "--queues", "fitboard", "--loglevel", "INFO"]
