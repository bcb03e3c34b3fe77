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


def test_a_family_hit_says_which_shards_the_request_needs() -> None:
    """The text the LLM reads named one shard and no family; the shards were only in the structured answer."""
    days = [f"day._202301{d}" for d in range(10, 25)]
    answer = {
        "profile": "p",
        "tables": [
            {"name": days[0], "score": 0.9, "family": "day._YYYYMMDD", "shards": days[:3]},
            {"name": days[0], "score": 0.8, "family": "day._YYYYMMDD", "shards": days},
            {"name": "gh.repos\x1b", "score": 0.5},
        ],
    }
    lines = mcp_server._search_text(answer).splitlines()
    assert lines[1] == (
        "1. day._20230110 (score 0.9000) — one shard of the date-sharded family day._YYYYMMDD; "
        "the request's dates need day._20230110, day._20230111, day._20230112"
    )
    # the list of the schema text's header: the first eleven, the last and the count
    assert lines[2].endswith(
        "the request's dates need " + ", ".join(days[:11]) + ", … day._20230124 (15 shards)"
    )
    assert lines[3] == "3. gh.repos\\x1b (score 0.5000)" and _clean("\n".join(lines))
