"""The column signal of a budgeted rendering: which columns a request is about."""

from __future__ import annotations

from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.search.columns import column_relevance


def _snapshot() -> Snapshot:
    table = Table(
        None,
        "ga_sessions",
        columns=(
            Column("visitId", "INTEGER"),
            Column("totals.transactionRevenue", "INTEGER"),
            Column("trafficSource.source", "STRING"),
            Column("channel", "STRING", comment="Traffic channel of the visit"),
            Column("device.deviceCategory", "STRING"),
            Column("geoNetwork.country", "STRING"),
        ),
    )
    return Snapshot.build("p", "bigquery", [table])


def test_columns_named_by_the_request_score_above_those_only_described_by_it() -> None:
    scores = column_relevance(_snapshot(), ["ga_sessions"], "total transaction revenue per traffic source")
    table = scores["ga_sessions"]
    assert table["totals.transactionRevenue"] >= 2.0 and table["trafficSource.source"] >= 2.0
    assert 0 < table["channel"] < table["trafficSource.source"]
    assert "geoNetwork.country" not in table and "visitId" not in table


def test_a_word_sharing_a_prefix_with_a_column_word_counts_a_little() -> None:
    table = column_relevance(_snapshot(), ["ga_sessions"], "which devices were used")["ga_sessions"]
    assert table == {"device.deviceCategory": 1.0}  # "devices" → "device" twice
    partial = column_relevance(_snapshot(), ["ga_sessions"], "networking")["ga_sessions"]
    assert partial == {"geoNetwork.country": 0.25}


def test_a_request_of_only_stop_words_or_unknown_tables_scores_nothing() -> None:
    assert column_relevance(_snapshot(), ["ga_sessions"], "what is the") == {}
    assert column_relevance(_snapshot(), ["nope"], "revenue") == {}


def test_a_relative_period_makes_no_column_relevant() -> None:
    table = Table(
        None,
        "employees",
        columns=(
            Column("last_name", "TEXT"),
            Column("hire_date", "DATE"),
            Column("last_login_at", "TIMESTAMP"),
        ),
    )
    snap = Snapshot.build("p", "postgresql", [table])
    scores = column_relevance(snap, ["employees"], "employees hired in the last 3 months").get(
        "employees", {}
    )
    assert "last_name" not in scores and "last_login_at" not in scores
    assert column_relevance(snap, ["employees"], "employees by last name")["employees"]["last_name"] >= 2.0
