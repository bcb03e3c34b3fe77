"""Logging configured once, with secrets kept out of the output."""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = (
    re.compile(r"(://[^:/@\s]+:)[^@\s]+@"),  # passwords in DSNs
    re.compile(r"(?i)((?:password|passwd|token|secret)\s*[=:]\s*)[^\s,;&]+"),
)


class RedactingFilter(logging.Filter):
    """Mask passwords and tokens in every record before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(r"\1***" + ("@" if pattern is _SECRET_PATTERNS[0] else ""), redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str) -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "pymilvus", "sentence_transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
