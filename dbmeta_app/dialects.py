"""SQL dialect families: SQLAlchemy names several drivers of one SQL dialect differently.

ClickHouse is ``clickhousedb`` (clickhouse-connect, a server) or ``chdb`` (the engine in process); both speak
the same SQL and have the same catalog. Code that depends on the SQL or the catalog keys on the family.
"""

from __future__ import annotations

from typing import Final

_FAMILIES: Final[dict[str, str]] = {
    "clickhouse": "clickhouse",
    "clickhousedb": "clickhouse",
    "chdb": "clickhouse",
    "duckdb": "duckdb",
}


def dialect_family(name: str) -> str:
    """Return the SQL dialect a SQLAlchemy dialect name speaks (``chdb`` → ``clickhouse``)."""
    lowered = name.lower()
    return _FAMILIES.get(lowered, lowered)
