r"""Database text made safe to print: control characters replaced by visible escapes (``\x1b``).

The one place the prompt text, the CLI and the MCP answers get their escaping from (:mod:`.render` uses it for
every name, type, comment and value it writes).
"""

from __future__ import annotations

import re

__all__ = ["CONTROL", "visible"]

# C0 (tab and newline included: a name or value never spans lines), DEL, C1, and the Unicode characters that
# move or reorder text on a terminal or in an editor (line/paragraph separators, bidi embeddings, isolates).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    r"""Database text made safe to print: each control character replaced by a visible escape (``\x1b``)."""
    return CONTROL.sub(_escape, text) if CONTROL.search(text) else text
