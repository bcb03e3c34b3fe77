"""Search fixtures: the real MiniLM model, loaded once per session."""

from __future__ import annotations

import pytest

from dbmeta_app.search.embedder import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()
