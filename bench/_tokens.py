"""A real tokenizer to check the renderer's token estimate against (benchmarks only)."""

from __future__ import annotations

import os
from collections.abc import Callable

from dbmeta_app.search.embedder import DEFAULT_MODEL, resolve_model_path


def wordpiece_counter() -> Callable[[str], int]:
    """Count tokens with MiniLM's WordPiece tokenizer (the packaged model, offline), special tokens excluded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL), local_files_only=True)

    def count(text: str) -> int:
        # the model truncates at 256 tokens; counting does not
        return len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    return count
