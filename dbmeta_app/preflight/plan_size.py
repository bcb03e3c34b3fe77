"""Keep a plan the database returned within a size the service can afford to decode, cache and answer.

Pure: no I/O. A 60-character query against a table with thousands of partitions, or a view over many
others, can make the server return a 50 MB JSON plan; decoded in full it took the service to 2.3 GB. So a
plan text over the limit is never decoded whole: only its first ``max_bytes`` are, closed where the JSON
allows it. The engines write the top of the plan first (PostgreSQL the root node's costs and row estimate
before its children, MySQL the query block's cost before its tables), so the estimates survive.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

__all__ = ["DEFAULT_MAX_PLAN_BYTES", "load_bounded"]

DEFAULT_MAX_PLAN_BYTES: Final = 256 * 1024

# Strings (complete, or cut off at the end of the text) and the structural characters of JSON.
_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*\\?$|[\[\]{},]')
_CLOSERS: Final = {"[": "]", "{": "}"}
_OPENERS_OF: Final = frozenset("]}")
_COMMA: Final = ","


def load_bounded(text: str, max_bytes: int = DEFAULT_MAX_PLAN_BYTES) -> tuple[Any, bool]:
    """Decode a JSON plan of at most `max_bytes` characters; a longer one is cut to fit: (plan, truncated).

    Text that is not JSON is returned as it is (cut to `max_bytes`).
    """
    if len(text) <= max_bytes:
        try:
            return orjson.loads(text), False
        except orjson.JSONDecodeError:
            return text, False
    prefix = _closed_prefix(text[:max_bytes])
    if prefix is None:
        return text[:max_bytes], True
    try:
        return orjson.loads(prefix), True
    except orjson.JSONDecodeError:
        return None, True


def _closed_prefix(text: str) -> str | None:
    """Return the longest prefix of `text` that ends between complete values, with its containers closed."""
    stack: list[str] = []
    best: tuple[int, str] | None = None
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token.startswith('"'):
            if not token.endswith('"') or len(token) == 1 or (token.endswith('\\"') and _escaped_end(token)):
                break  # a string cut off by the limit: nothing after it is structure
            continue
        if token in _CLOSERS:
            stack.append(token)
            best = (match.end(), "".join(_CLOSERS[c] for c in reversed(stack)))
        elif token in _OPENERS_OF:
            if not stack:
                return None
            stack.pop()
            best = (match.end(), "".join(_CLOSERS[c] for c in reversed(stack)))
        elif token == _COMMA and stack:
            best = (match.start(), "".join(_CLOSERS[c] for c in reversed(stack)))
    if best is None:
        return None
    end, closers = best
    return text[:end] + closers


def _escaped_end(token: str) -> bool:
    """Tell whether a token's final quote is escaped (an odd run of backslashes before it)."""
    run = len(token) - 1 - len(token[:-1].rstrip("\\"))
    return run % 2 == 1
