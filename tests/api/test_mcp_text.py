"""The MCP tools' text (what the LLM reads) carries no control character of the database."""

from __future__ import annotations

from dbmeta_app.api import mcp_server

HOSTILE = "sales.ctl\x1b[31mred\\back"


def _clean(text: str) -> bool:
    return not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)


def test_search_and_table_lists_escape_names_and_comments() -> None:
    search = mcp_server._search_text({"profile": "p", "tables": [{"name": HOSTILE, "score": 1.5}]})
    assert _clean(search) and "ctl\\x1b[31mred" in search
    names = mcp_server._tables_text(
        {"profile": "p", "total": 1, "truncated": False, "detail_level": "names", "tables": [HOSTILE]}
    )
    assert _clean(names) and "\\x1b" in names
    summary = mcp_server._tables_text(
        {
            "profile": "p",
            "total": 1,
            "truncated": False,
            "detail_level": "summary",
            "tables": [
                {
                    "name": HOSTILE,
                    "kind": "table",
                    "columns": 2,
                    "description": "has \x1b[2J esc and \u202e bidi and\nnewline",
                }
            ],
        }
    )
    assert _clean(summary), summary
    assert "\\x1b[2J esc and \\u202e bidi and newline" in summary
    schemas = mcp_server._schemas_text(
        {"profile": "p", "dialect": "postgresql", "schemas": [{"name": "s\x07", "tables": 1, "views": 0}]}
    )
    assert _clean(schemas) and "s\\x07" in schemas
