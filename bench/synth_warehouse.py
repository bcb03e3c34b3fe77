"""A deterministic synthetic enterprise warehouse: thousands of tables, ~50 columns each on average.

    python bench/synth_warehouse.py [--tables 3000] [--url postgresql+psycopg://postgres@127.0.0.1/i18b_scale]
    python bench/synth_warehouse.py --tables 300 --print     # show the shape, load nothing

What makes a real warehouse hard, in proportion to ``--tables`` (3,000 → ~150,000 columns):
- date-sharded families: ``events_YYYYMMDD`` (daily), ``invoices_YYYYMM`` (monthly), ``gsodYYYY``
  (yearly), ``requests_YYYY_qN`` (quarterly) — same columns, one table per period;
- PostgreSQL declarative partitions (``PARTITION BY RANGE``, one child per month);
- wide tables of 300–1,550 columns (PostgreSQL allows 1,600), some with nested fields as dotted names
  (``device.browser``, ``hits.product.sku``) like BigQuery records flattened;
- keys that are only inferred: no declared foreign key anywhere, ``<entity>_id`` columns shared
  across tables of a domain, and a declared primary key on only a third of the plain tables.

The same ``--tables`` and ``--seed`` always give the same warehouse. Loading runs the DDL in batches
(one transaction per ``--batch`` tables), so the server never holds more than that many new relations'
locks at once. ``--drop`` removes the database.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/i18b_scale"

DOMAINS: dict[str, list[str]] = {
    "sales": [
        "customer",
        "order",
        "order_line",
        "quote",
        "opportunity",
        "account",
        "contract",
        "discount",
        "channel",
    ],
    "finance": [
        "invoice",
        "payment",
        "ledger_entry",
        "budget",
        "cost_center",
        "currency",
        "tax_rate",
        "refund",
    ],
    "marketing": [
        "campaign",
        "ad_group",
        "creative",
        "audience",
        "lead",
        "email_send",
        "click",
        "conversion",
    ],
    "hr": [
        "employee",
        "department",
        "position",
        "salary",
        "leave_request",
        "review",
        "candidate",
        "training",
    ],
    "logistics": ["shipment", "carrier", "warehouse", "route", "parcel", "stock_move", "vehicle", "delivery"],
    "product": ["product", "category", "brand", "sku", "price_list", "bundle", "review_score", "supplier"],
    "support": ["ticket", "agent", "sla_policy", "escalation", "survey", "knowledge_article", "queue"],
    "iot": ["device", "sensor", "reading", "firmware", "alert", "site", "gateway", "maintenance_job"],
    "clinical": [
        "patient",
        "visit",
        "diagnosis",
        "procedure",
        "medication",
        "lab_result",
        "provider",
        "claim",
    ],
    "web": ["session", "page_view", "visitor", "referrer", "experiment", "variant", "search_query"],
}
ATTRIBUTES = [
    ("name", "text", "Display name"),
    ("status", "text", "Lifecycle status; e.g. active, closed"),
    ("created_at", "timestamptz", "When the row was created"),
    ("updated_at", "timestamptz", "When the row last changed"),
    ("amount", "numeric(14,2)", "Amount in the row's currency"),
    ("amount_usd", "numeric(14,2)", "Amount converted to US dollars"),
    ("quantity", "integer", None),
    ("country_code", "char(2)", "ISO 3166-1 alpha-2 country"),
    ("region", "text", None),
    ("city", "text", None),
    ("email", "text", None),
    ("phone", "text", None),
    ("description", "text", None),
    ("category", "text", None),
    ("priority", "smallint", "1 = highest"),
    ("score", "double precision", None),
    ("is_active", "boolean", None),
    ("is_deleted", "boolean", "Soft delete flag"),
    ("started_on", "date", None),
    ("ended_on", "date", None),
    ("duration_seconds", "integer", None),
    ("latitude", "double precision", None),
    ("longitude", "double precision", None),
    ("source_system", "text", "System of record the row was loaded from"),
    ("external_ref", "text", None),
    ("notes", "text", None),
    ("version", "integer", None),
    ("tags", "text[]", None),
    ("payload", "jsonb", "Raw event payload"),
    ("discount_pct", "numeric(5,2)", None),
    ("tax_amount", "numeric(14,2)", None),
    ("currency_code", "char(3)", "ISO 4217 currency"),
    ("channel", "text", None),
    ("segment", "text", None),
    ("revenue", "numeric(16,2)", "Recognised revenue"),
    ("cost", "numeric(16,2)", None),
    ("margin", "numeric(16,2)", None),
    ("rating", "smallint", "1 to 5"),
]
QUALIFIERS = [
    "",
    "stg_",
    "dim_",
    "fact_",
    "raw_",
    "agg_daily_",
    "agg_monthly_",
    "hist_",
    "snapshot_",
    "tmp_",
    "v2_",
]
SUFFIXES = ["", "_history", "_archive", "_staging", "_summary", "_backup", "_detail", "_audit"]
NESTED_RECORDS = {
    "device": ["browser", "browser_version", "operating_system", "category", "mobile_model", "language"],
    "geo": ["continent", "country", "region", "city", "metro", "network_domain"],
    "totals": [
        "visits",
        "hits",
        "pageviews",
        "time_on_site",
        "bounces",
        "transactions",
        "transaction_revenue",
    ],
    "traffic_source": ["source", "medium", "campaign", "keyword", "ad_content", "referral_path"],
    "hits": [
        "hit_number",
        "time",
        "hour",
        "minute",
        "is_interaction",
        "page_path",
        "page_title",
        "event_category",
    ],
    "hits.product": ["sku", "name", "category", "variant", "brand", "price", "quantity", "revenue"],
}
WIDE_TYPES = [
    "integer",
    "bigint",
    "double precision",
    "text",
    "boolean",
    "numeric(12,2)",
    "date",
    "timestamptz",
]


@dataclass
class SynthTable:
    schema: str
    name: str
    columns: list[tuple[str, str, str | None]]
    primary_key: tuple[str, ...] = ()
    comment: str | None = None
    partition_of: str | None = None  # the parent's "schema.name"
    bounds: tuple[str, str] | None = None  # a partition's FROM / TO
    partitioned_by: str | None = None  # a parent's range column
    kind: str = "plain"  # plain | shard | partition | parent | wide | nested


@dataclass
class Warehouse:
    tables: list[SynthTable] = field(default_factory=list)

    @property
    def columns(self) -> int:
        return sum(len(t.columns) for t in self.tables)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tables:
            out[t.kind] = out.get(t.kind, 0) + 1
        return out


def _entity_columns(
    rng: random.Random, domain: str, entity: str, width: int
) -> list[tuple[str, str, str | None]]:
    cols: list[tuple[str, str, str | None]] = [
        (f"{entity}_id", "bigint", f"Identifier of the {entity.replace('_', ' ')}")
    ]
    others = [e for e in DOMAINS[domain] if e != entity]
    for other in rng.sample(others, k=min(len(others), rng.randint(1, 3))):
        cols.append((f"{other}_id", "bigint", None))
    attrs = rng.sample(ATTRIBUTES, k=min(len(ATTRIBUTES), max(0, width - len(cols))))
    cols.extend(attrs)
    n = 0
    while len(cols) < width:  # beyond the vocabulary: metrics with a running number
        n += 1
        cols.append(
            (f"{entity}_metric_{n}", rng.choice(["integer", "double precision", "numeric(12,2)"]), None)
        )
    return cols


def _periods(kind: str, count: int) -> Iterator[str]:
    start = date(2023, 12, 31)
    if kind == "daily":
        for i in range(count):
            yield (start - timedelta(days=count - 1 - i)).strftime("%Y%m%d")
    elif kind == "monthly":
        for i in range(count):
            months = 2023 * 12 + 11 - (count - 1 - i)
            yield f"{months // 12}{months % 12 + 1:02d}"
    elif kind == "yearly":
        for i in range(count):
            yield str(2023 - (count - 1 - i))
    else:  # quarterly
        for i in range(count):
            quarters = 2023 * 4 + 3 - (count - 1 - i)
            yield f"{quarters // 4}_q{quarters % 4 + 1}"


def _nested_columns(rng: random.Random, width: int) -> list[tuple[str, str, str | None]]:
    cols: list[tuple[str, str, str | None]] = [
        ("visit_id", "bigint", "Identifier of the session"),
        ("visitor_id", "bigint", None),
        ("visit_start_time", "timestamptz", None),
        ("date", "text", "Session date, YYYYMMDD"),
    ]
    for parent, fields in NESTED_RECORDS.items():
        cols.extend(
            (f"{parent}.{f}", rng.choice(["text", "bigint", "double precision"]), None) for f in fields
        )
    n = 0
    while len(cols) < width:
        n += 1
        parent = rng.choice(["hits.custom_dimensions", "custom_metrics", "hits.experiment", "privacy"])
        cols.append((f"{parent}.field_{n}", rng.choice(["text", "bigint"]), None))
    return cols[:width]


def generate(n_tables: int = 3000, seed: int = 18) -> Warehouse:
    """Build the warehouse's table list: the same for the same arguments."""
    rng = random.Random(seed)
    wh = Warehouse()
    scale = n_tables / 3000
    # shard families: (schema, prefix, period kind, shards, width)
    families = [
        ("web", "events_", "daily", 365, 45),
        ("web", "ga_sessions_", "nested-daily", 180, 60),
        ("finance", "invoices_", "monthly", 72, 35),
        ("iot", "readings_", "daily", 120, 30),
        ("weather", "gsod", "yearly", 40, 28),
        ("support", "requests_", "quarterly", 24, 40),
    ]
    for schema, prefix, kind, shards, width in families:
        count = max(2, round(shards * scale))
        nested = kind.startswith("nested")
        period_kind = kind.removeprefix("nested-")
        cols = (
            _nested_columns(rng, width)
            if nested
            else _entity_columns(
                rng, "web" if schema == "weather" else schema, prefix.rstrip("_") or "station", width
            )
        )
        for period in _periods(period_kind, count):
            wh.tables.append(SynthTable(schema, f"{prefix}{period}", list(cols), kind="shard"))
    # declarative partitions: a parent per domain of three, one child per month
    for schema, entity, months in [
        ("sales", "order", 36),
        ("finance", "ledger_entry", 36),
        ("logistics", "shipment", 24),
    ]:
        count = max(2, round(months * scale))
        cols = _entity_columns(rng, schema, entity, 22)
        cols.append(("booked_on", "date", "Partition key"))
        parent = SynthTable(schema, f"{entity}s_partitioned", cols, kind="parent", partitioned_by="booked_on")
        wh.tables.append(parent)
        first = date(2021, 1, 1)
        for i in range(count):
            lo = date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1)
            hi = date(lo.year + lo.month // 12, lo.month % 12 + 1, 1)
            wh.tables.append(
                SynthTable(
                    schema,
                    f"{entity}s_partitioned_{lo:%Y_%m}",
                    cols,
                    kind="partition",
                    partition_of=f"{schema}.{entity}s_partitioned",
                    bounds=(lo.isoformat(), hi.isoformat()),
                )
            )
    # wide tables, a quarter of them nested
    n_wide = max(2, round(40 * scale))
    for i in range(n_wide):
        domain = rng.choice(sorted(DOMAINS))
        width = rng.randint(300, 1550)
        if i % 4 == 0:
            cols = _nested_columns(rng, width)
            wh.tables.append(SynthTable(domain, f"flat_export_{i:03d}", cols, kind="nested"))
        else:
            entity = rng.choice(DOMAINS[domain])
            cols = _entity_columns(rng, domain, entity, 40)
            seen = {c[0] for c in cols}
            j = 0
            while len(cols) < width:
                j += 1
                name = f"{rng.choice(['kpi', 'attr', 'feature', 'flag', 'dim'])}_{j:04d}"
                if name not in seen:
                    seen.add(name)
                    cols.append((name, rng.choice(WIDE_TYPES), None))
            wh.tables.append(SynthTable(domain, f"{entity}_wide_{i:03d}", cols, kind="wide"))
    # plain tables up to the total: entity × qualifier × suffix, names unique per schema
    names: set[tuple[str, str]] = {(t.schema, t.name) for t in wh.tables}
    combos = [
        (domain, entity, q, s)
        for domain, entities in sorted(DOMAINS.items())
        for entity in entities
        for q in QUALIFIERS
        for s in SUFFIXES
    ]
    rng.shuffle(combos)
    for domain, entity, q, s in combos:
        if len(wh.tables) >= n_tables:
            break
        name = f"{q}{entity}{s}"
        if (domain, name) in names:
            continue
        names.add((domain, name))
        width = max(4, min(120, int(rng.lognormvariate(3.45, 0.55))))
        cols = _entity_columns(rng, domain, entity, width)
        pk = (cols[0][0],) if rng.random() < 1 / 3 else ()
        comment = (
            f"{entity.replace('_', ' ').capitalize()} records ({domain})" if rng.random() < 0.5 else None
        )
        wh.tables.append(SynthTable(domain, name, cols, primary_key=pk, comment=comment))
    return wh


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ddl(table: SynthTable) -> list[str]:
    """The statements that create one table (and its comments)."""
    qualified = f"{_ident(table.schema)}.{_ident(table.name)}"
    if table.partition_of is not None:
        assert table.bounds is not None
        parent = ".".join(_ident(p) for p in table.partition_of.split(".", 1))
        lo, hi = table.bounds
        return [f"CREATE TABLE {qualified} PARTITION OF {parent} FOR VALUES FROM ('{lo}') TO ('{hi}')"]
    body = [f"{_ident(n)} {t}" for n, t, _ in table.columns]
    if table.primary_key:
        body.append("PRIMARY KEY (" + ", ".join(_ident(c) for c in table.primary_key) + ")")
    tail = f" PARTITION BY RANGE ({_ident(table.partitioned_by)})" if table.partitioned_by else ""
    out = [f"CREATE TABLE {qualified} ({', '.join(body)}){tail}"]
    if table.comment:
        out.append(f"COMMENT ON TABLE {qualified} IS {_literal(table.comment)}")
    out.extend(
        f"COMMENT ON COLUMN {qualified}.{_ident(n)} IS {_literal(c)}"
        for n, _, c in table.columns
        if c is not None
    )
    return out


def load(wh: Warehouse, url: str, batch: int = 50) -> float:
    """Create the database afresh and the warehouse in it; return the seconds it took."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_ident(str(target.database))} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {_ident(str(target.database))}")
    admin.dispose()
    engine = sa.create_engine(target)
    try:
        with engine.begin() as conn:
            for schema in sorted({t.schema for t in wh.tables}):
                conn.exec_driver_sql(f"CREATE SCHEMA {_ident(schema)}")
        for start in range(0, len(wh.tables), batch):
            with engine.begin() as conn:
                for table in wh.tables[start : start + batch]:
                    for statement in ddl(table):
                        conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def drop(url: str) -> None:
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_ident(str(target.database))} WITH (FORCE)")
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--print", action="store_true", help="describe the warehouse, load nothing")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    args = parser.parse_args()
    if args.drop:
        drop(args.url)
        return
    wh = generate(args.tables, args.seed)
    widest = max(len(t.columns) for t in wh.tables)
    print(f"{len(wh.tables)} tables, {wh.columns} columns (widest {widest}); by kind: {wh.counts()}")
    if not args.print:
        seconds = load(wh, args.url, args.batch)
        print(f"loaded into {args.url.rsplit('@', 1)[-1]} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
