"""Rendering within a token budget: keys kept, relevant columns first, nested grouped, the rest counted."""

from __future__ import annotations

from dbmeta_app.schema.fit import estimate_tokens, key_columns, render_within
from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table
from dbmeta_app.schema.render import render_schema


def _wide(
    name: str, width: int, *, extra: tuple[Column, ...] = (), fks: tuple[ForeignKey, ...] = ()
) -> Table:
    columns = (Column("id", "integer", nullable=False, primary_key=True), *extra)
    columns += tuple(Column(f"metric_{i:04d}", "integer" if i % 3 else "varchar(20)") for i in range(width))
    return Table("dw", name, columns=columns, primary_key=("id",), foreign_keys=fks)


def _snapshot(*tables: Table) -> Snapshot:
    return Snapshot.build("p", "postgresql", list(tables))


def test_a_rendering_that_fits_is_the_plain_one_and_says_nothing_was_cut() -> None:
    snap = _snapshot(_wide("small", 3))
    fitted = render_within(snap, ["dw.small"], 4000)
    assert fitted.text == render_schema(snap, ["dw.small"], False)
    assert not fitted.truncated and fitted.tables[0].shown == (
        "id",
        "metric_0000",
        "metric_0001",
        "metric_0002",
    )


def test_a_wide_table_is_cut_to_the_budget_with_a_summary_of_what_is_left_out() -> None:
    snap = _snapshot(_wide("wide", 1600))
    fitted = render_within(snap, ["dw.wide"], 500)
    assert fitted.truncated and fitted.tokens <= 500 == fitted.metadata(500)["max_tokens"]
    table = fitted.tables[0]
    assert 10 < len(table.shown) < 1600 and table.shown[0] == "id"
    omitted = 1601 - len(table.shown)
    assert f"… {omitted} more columns: " in fitted.text
    assert sum(table.omitted_types.values()) == omitted and set(table.omitted_types) == {"INTEGER", "VARCHAR"}
    meta = fitted.metadata(500)["tables"]
    assert meta == {"dw.wide": {"columns": 1601, "shown": len(table.shown), "omitted": omitted,
                                "omitted_types": table.omitted_types}}  # fmt: skip


def test_columns_the_request_is_about_are_shown_before_the_leading_ones() -> None:
    snap = _snapshot(_wide("wide", 1600))
    fitted = render_within(snap, ["dw.wide"], 300, {"dw.wide": {"metric_1500": 2.0, "metric_0900": 1.0}})
    shown = fitted.tables[0].shown
    assert {"metric_1500", "metric_0900"} <= set(shown) and "metric_1499" not in shown
    assert fitted.text.index("metric_0900") < fitted.text.index("metric_1500")  # in table order


def test_primary_foreign_and_inferred_join_keys_are_always_kept() -> None:
    customer = Column("customer_id", "integer")
    store = Column("store_key", "integer")
    orders = _wide(
        "orders", 800, extra=(customer, store), fks=(ForeignKey(("customer_id",), "dw.customers", ("id",)),)
    )
    stores = _wide("stores", 800, extra=(Column("store_key", "integer"),))
    customers = _wide("customers", 800)
    snap = _snapshot(orders, stores, customers)
    fitted = render_within(snap, ["dw.orders", "dw.stores", "dw.customers"], 400)
    by_key = {t.key: set(t.shown) for t in fitted.tables}
    assert {"id", "customer_id", "store_key"} <= by_key["dw.orders"]
    assert {"id", "store_key"} <= by_key["dw.stores"] and "id" in by_key["dw.customers"]
    assert "customer_id integer → dw.customers.id" in fitted.text


def test_an_id_column_joins_a_table_it_names_without_any_declared_key() -> None:
    events = Table("dw", "events", columns=(Column("user_id", "bigint"), Column("payload", "text")))
    users = Table("dw", "users", columns=(Column("uid", "bigint"),))
    selected = {"dw.events": events, "dw.users": users}
    assert key_columns(events, selected) == {"user_id"}
    assert key_columns(events, {"dw.events": events}) == set()


def test_nested_fields_are_grouped_under_their_parent_and_counted_by_parent_when_left_out() -> None:
    nested = tuple(Column(f"hits.field_{i:03d}", "STRING") for i in range(300))
    table = Table(
        None, "ga_sessions", columns=(Column("visitId", "INTEGER"), *nested, Column("date", "STRING"))
    )
    snap = Snapshot.build("p", "bigquery", [table])
    fitted = render_within(snap, ["ga_sessions"], 200, {"ga_sessions": {"hits.field_250": 1.0, "date": 1.0}})
    lines = fitted.text.splitlines()
    parent = next(i for i, line in enumerate(lines) if line.startswith("hits: nested, "))
    shown_children = [n for n in fitted.tables[0].shown if n.startswith("hits.")]
    assert lines[parent] == f"hits: nested, {len(shown_children)} of 300 fields"
    assert all(line.startswith("  ") for line in lines[parent + 1 : parent + 1 + len(shown_children)])
    assert "hits.field_250" in shown_children and "date" in fitted.tables[0].shown
    assert f"nested under hits ({300 - len(shown_children)})" in fitted.text


def test_lower_ranked_tables_are_left_out_when_their_minimal_form_does_not_fit() -> None:
    shared = tuple(Column(f"k{j}_id", "integer") for j in range(40))  # join keys: always kept
    tables = [_wide(f"t{i}", 50, extra=(*shared, Column(f"only_t{i}", "text"))) for i in range(6)]
    snap = _snapshot(*tables)
    keys = [t.key for t in tables]
    fitted = render_within(snap, keys, 900)
    kept = [t.key for t in fitted.tables]
    assert kept == keys[: len(kept)] and 1 <= len(kept) < 6
    assert list(fitted.omitted_tables) == keys[len(kept) :]
    assert fitted.metadata(900)["omitted_tables"] == keys[len(kept) :]


def test_budgeted_rendering_is_deterministic_and_drops_sample_rows() -> None:
    table = _wide("wide", 400)
    table = Table(table.schema, table.name, columns=table.columns, primary_key=table.primary_key,
                  sample_rows=(tuple("1" for _ in table.columns),))  # fmt: skip
    snap = _snapshot(table)
    first = render_within(snap, ["dw.wide"], 300, {"dw.wide": {"metric_0007": 1.0}}, with_samples=True)
    again = render_within(snap, ["dw.wide"], 300, {"dw.wide": {"metric_0007": 1.0}}, with_samples=True)
    assert first == again and "sample rows" not in first.text


def test_no_budget_means_the_plain_rendering() -> None:
    snap = _snapshot(_wide("wide", 1600))
    for budget in (None, 0):
        fitted = render_within(snap, ["dw.wide"], budget)
        assert not fitted.truncated and fitted.text == render_schema(snap, ["dw.wide"], False)


def test_the_estimate_counts_punctuation_digits_and_long_words_as_subword_pieces() -> None:
    assert estimate_tokens("order_id PK") == 4  # order _ id PK
    assert estimate_tokens("2023") == 2 and estimate_tokens("transactionrevenue") == 3
    assert estimate_tokens("a\nb") == estimate_tokens("a") + estimate_tokens("b")


def test_a_record_column_heads_its_shown_fields_and_comes_with_them() -> None:
    fields = tuple(Column(f"totals.metric_{i:03d}", "INTEGER") for i in range(200))
    table = Table(
        None, "sessions", columns=(Column("visitId", "INTEGER"), Column("totals", "RECORD"), *fields)
    )
    snap = Snapshot.build("p", "bigquery", [table])
    fitted = render_within(snap, ["sessions"], 120, {"sessions": {"totals.metric_150": 1.0}})
    lines = fitted.text.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("totals RECORD")))
    assert lines[head].endswith(" of 200 fields)") and lines[head + 1].startswith("  totals.metric_")
    assert {"totals", "totals.metric_150"} <= set(fitted.tables[0].shown)
    assert not any(line.startswith("totals: nested") for line in lines)  # no second heading for the record


def test_tables_with_the_same_columns_are_written_once_and_named_after() -> None:
    copies = [_wide(f"events_{region}", 600) for region in ("eu", "us", "asia")]
    copies = [Table(t.schema, t.name, columns=t.columns) for t in copies]  # no keys: copies
    snap = _snapshot(*copies)
    keys = [t.key for t in copies]
    fitted = render_within(snap, keys, 400)
    assert fitted.text.count("metric_0000") == 1
    assert "# dw.events_us\nsame columns as dw.events_eu" in fitted.text
    assert fitted.tables[1].shown == fitted.tables[0].shown and not fitted.omitted_tables


def test_a_family_s_shards_are_one_block_that_names_them_under_a_budget_too() -> None:
    """Cut to a budget, the shards were written as unrelated tables: no header, no word of the family."""
    days = [Table("dw", f"events_202301{d}", columns=_wide("x", 600).columns) for d in range(10, 25)]
    intraday = [Table("dw", f"events_intraday_202301{d}", columns=days[0].columns) for d in (23, 24)]
    users = _wide("users", 3)
    snap = _snapshot(*days, *intraday, users)
    asked = ["dw.events_20230112", "dw.events_20230113", "dw.events_20230114"]
    keys = [*asked, "dw.events_intraday_20230124", "dw.users"]
    fitted = render_within(snap, keys, 400)
    assert fitted.truncated and fitted.tokens <= 400
    assert fitted.text == render_within(snap, keys, 400).text  # deterministic
    blocks = fitted.text.split("\n\n")
    assert [b.splitlines()[0][:34] for b in blocks] == [
        "-- table family events_YYYYMMDD: 1",
        "-- table family events_intraday_YY",
        "# dw.users",
    ]
    assert "-- shards for this request: events_20230112, events_20230113, events_20230114" in blocks[0]
    assert "\n# dw.events_20230114\nid integer" in blocks[0]  # the newest asked shard's columns, once
    assert blocks[1].endswith("# dw.events_intraday_20230124\nsame columns as dw.events_20230114")
    assert [t.key for t in fitted.tables] == keys  # metadata: every shard asked for
    assert fitted.tables[0].shown == fitted.tables[2].shown and not fitted.omitted_tables
    assert render_within(snap, keys, 40_000).text == render_schema(snap, keys, False)


def test_a_kept_table_whose_whole_form_fits_the_budget_is_shown_whole() -> None:
    # Once the lower-ranked table is left out, the first one fits whole: its columns must not stay cut
    # (the cut form reserved room for a summary line it then did not need).
    first, second = _wide("first", 6), _wide("second", 40)
    snap = _snapshot(first, second)
    whole = estimate_tokens(render_schema(snap, ["dw.first"], False))
    fitted = render_within(snap, ["dw.first", "dw.second"], whole + 2)
    assert fitted.omitted_tables == ("dw.second",)
    assert fitted.tables[0].shown == tuple(c.name for c in first.columns)
    assert "more column" not in fitted.text and fitted.tokens <= whole + 2


def test_a_table_whose_minimal_form_is_over_the_budget_is_never_cut_longer_than_it_is() -> None:
    """Under a budget below a small table's minimal form, its summary line made it longer than whole."""
    events = Table("dw", "events", columns=(Column("event_name", "text"), Column("user_id", "integer")))
    users = Table("dw", "users", columns=(Column("user_id", "integer"),), primary_key=("user_id",))
    snap = _snapshot(events, users)
    whole = estimate_tokens(render_schema(snap, ["dw.events"], False))
    for budget in range(1, whole + 3):
        block = render_within(snap, ["dw.events", "dw.users"], budget).text.split("\n\n")[0]
        assert estimate_tokens(block) <= whole, budget


def test_a_cut_table_is_never_longer_than_its_whole_form() -> None:
    first = _wide("first", 12)
    snap = _snapshot(first, _wide("second", 300))
    whole = estimate_tokens(render_schema(snap, ["dw.first"], False))
    for budget in range(whole - 10, whole + 10):
        fitted = render_within(snap, ["dw.first", "dw.second"], budget)
        block = fitted.text.split("\n\n")[0]
        assert estimate_tokens(block) <= whole, budget
