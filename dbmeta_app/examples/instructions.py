"""Instructions for the LLM (a YAML file: ``all`` and per-profile lists) and the SQL-dialect prompt item."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dbmeta_app.config import Settings
from dbmeta_app.dialects import dialect_family
from dbmeta_app.profiles import ProfileRuntime


class _Instructions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[str] = Field(default_factory=list)
    profiles: dict[str, list[str]] = Field(default_factory=dict)


def get_instructions(settings: Settings, rt: ProfileRuntime) -> list[str]:
    """Return the instructions for a profile: `all` then the profile's, from the shared file then the profile's.

    Blocking (a ``stat`` per file, a read when one changed): run it in a worker thread.
    """
    files = [p for p in (settings.instructions_file, rt.profile.instructions_file) if p is not None]
    out: list[str] = []
    for path in dict.fromkeys(files):  # the same file twice counts once
        parsed = rt.files.load(path, _Instructions, "instructions file").value
        for text in [*parsed.all, *parsed.profiles.get(rt.name, [])]:
            text = " ".join(text.split())
            if text and text not in out:
                out.append(text)
    return out


def render_instructions(instructions: list[str]) -> str:
    """Render instructions as a numbered list."""
    return "\n".join(f"{i}. {text}" for i, text in enumerate(instructions, 1))


_DIALECTS: dict[str, list[str]] = {
    "postgresql": [
        'Quote identifiers with double quotes ("Order Lines"); unquoted names fold to lower case.',
        "Use LIMIT n [OFFSET m]; ILIKE for case-insensitive matching; || to concatenate strings.",
        "Dates: date_trunc('month', ts), ts::date, now(), interval '7 days', extract(year FROM ts).",
        "Aggregates: string_agg(x, ', '), percentile_cont(0.5) WITHIN GROUP (ORDER BY x), FILTER (WHERE ...).",
        "Integer division truncates: cast to numeric for ratios (x::numeric / y).",
    ],
    "mysql": [
        "Quote identifiers with backticks (`Order Lines`).",
        "Use LIMIT n [OFFSET m]; CONCAT(a, b) to concatenate strings; no FULL OUTER JOIN.",
        "Dates: DATE_FORMAT(ts, '%Y-%m'), DATE(ts), NOW(), DATE_SUB(d, INTERVAL 7 DAY), YEAR(ts).",
        "Aggregates: GROUP_CONCAT(x SEPARATOR ', '); window functions need MySQL 8+ / MariaDB 10.2+.",
    ],
    "sqlite": [
        'Quote identifiers with double quotes ("Order Lines").',
        "Use LIMIT n [OFFSET m]; || to concatenate strings; there is no RIGHT or FULL OUTER JOIN before 3.39.",
        "Dates are TEXT: strftime('%Y-%m', d), date(d, '-7 days'), date('now'), julianday(b) - julianday(a).",
        "Integer division truncates: multiply by 1.0 for ratios.",
    ],
    "clickhouse": [
        "Quote identifiers with double quotes or backticks.",
        "Dates: toStartOfMonth(ts), toDate(ts), now(), ts - INTERVAL 7 DAY, toYear(ts).",
        "Aggregates: uniq(x) for approximate distinct counts, groupArray(x), quantile(0.5)(x), countIf(cond).",
        "Filter on the leading ORDER BY (sorting key) columns of big tables; there are no foreign keys.",
        "Arrays: arrayJoin(arr) or ARRAY JOIN; maps: m['key']; tuples: t.field; ReplacingMergeTree: FINAL.",
    ],
    "duckdb": [
        "Quote identifiers with double quotes; qualify tables as schema.table (main.orders).",
        "Dates: date_trunc('month', ts), CAST(ts AS DATE), now(), ts - INTERVAL 7 DAY.",
        "Nested types: s.field for STRUCT, unnest(list), m['key'] for MAP; GROUP BY ALL is allowed.",
    ],
    "trino": [
        "Quote identifiers with double quotes; qualify tables as catalog.schema.table when needed.",
        "Dates: date_trunc('month', ts), CAST(ts AS date), current_timestamp, ts - INTERVAL '7' DAY.",
        "Aggregates: approx_distinct(x), array_agg(x), approx_percentile(x, 0.5).",
    ],
}
_GENERIC = [
    "Use standard SQL; quote identifiers with double quotes when they are not plain lower-case names."
]
_NAMES = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL / MariaDB",
    "mariadb": "MySQL / MariaDB",
    "sqlite": "SQLite",
    "clickhouse": "ClickHouse",
    "duckdb": "DuckDB",
    "trino": "Trino",
}


def render_dialect(dialect: str) -> str:
    """Describe the SQL dialect of a profile for the LLM (pure)."""
    dialect = dialect_family(dialect)
    key = "mysql" if dialect == "mariadb" else dialect
    lines = _DIALECTS.get(key, _GENERIC)
    name = _NAMES.get(dialect, dialect)
    return "\n".join(
        [f"SQL dialect: {name}. Write one read-only SELECT statement.", *(f"- {x}" for x in lines)]
    )
