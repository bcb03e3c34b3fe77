"""Date-sharded table families: detection, request dates → shards, the logical table."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbmeta_app.schema.families import (
    collapse,
    dated_families,
    detect_families,
    family_header,
    request_periods,
    resolve_shards,
)
from dbmeta_app.schema.models import Column, Snapshot, Table


def _table(schema: str, name: str, *columns: str) -> Table:
    return Table(schema=schema, name=name, columns=tuple(Column(c, "text") for c in columns or ("id",)))


def _snapshot(*tables: Table, dialect: str = "postgresql") -> Snapshot:
    return Snapshot.build("p", dialect, list(tables))


def test_daily_monthly_yearly_and_schema_level_shards_form_families() -> None:
    snap = _snapshot(
        _table("ga", "events_20210130"),
        _table("ga", "events_20210131", "id", "event_name"),
        _table("day", "_20230117"),
        _table("day", "_20230118"),
        _table("month", "_202203"),
        _table("month", "_202204"),
        _table("noaa", "gsod2014"),
        _table("noaa", "gsod2015"),
        _table("trips", "t_2019_q2"),
        _table("trips", "t_2019_q3"),
        _table("ga", "users"),
        _table("irs", "irs_990_2015"),  # alone: no family
    )
    families = detect_families(snap)
    assert set(families) == {
        "ga.events_YYYYMMDD",
        "day._YYYYMMDD",
        "month._YYYYMM",
        "noaa.gsodYYYY",
        "trips.t_YYYY_qN",
    }
    events = families["ga.events_YYYYMMDD"]
    assert events.grain == "day"
    assert events.members == ("ga.events_20210130", "ga.events_20210131")
    assert events.newest.key == "ga.events_20210131"


def test_shards_whose_date_parts_are_separated_form_one_family_of_their_grain() -> None:
    """``logs_2024_01_15`` / ``orders_2024-02``: the separated date is one run, not a year and a code."""
    snap = _snapshot(
        *(_table("app", f"logs_2024_01_{d:02d}") for d in (14, 15, 16)),
        *(_table("app", f"orders_2024-{m:02d}") for m in (1, 2, 3)),
        *(_table("app", f"blocks_{y}_5yr") for y in (2015, 2016)),  # a year then another field
        _table("app", "logs_20240117"),  # another way to write it: not the same family
    )
    families = detect_families(snap)
    assert set(families) == {"app.logs_YYYY_MM_DD", "app.orders_YYYY-MM", "app.blocks_YYYY_5yr"}
    logs = families["app.logs_YYYY_MM_DD"]
    assert (logs.grain, len(logs.shards), logs.newest.suffix) == ("day", 3, "2024_01_16")
    assert families["app.orders_YYYY-MM"].grain == "month"
    assert resolve_shards(logs, "errors on January 15, 2024") == ["app.logs_2024_01_15"]


def test_a_range_between_two_dates_covers_every_period_between_them() -> None:
    assert request_periods("events between 2017-08-01 and 2017-08-05") == [
        (date(2017, 8, 1), date(2017, 8, 5))
    ]
    assert request_periods("from January 2017 to March 2017") == [(date(2017, 1, 1), date(2017, 3, 31))]
    assert request_periods("from March 3, 2020 through Q3 2020") == [(date(2020, 3, 3), date(2020, 9, 30))]
    # two dates that are not a range stay two periods
    assert request_periods("on 2017-08-01 and on 2017-08-05") == [
        (date(2017, 8, 1), date(2017, 8, 1)),
        (date(2017, 8, 5), date(2017, 8, 5)),
    ]
    snap = _snapshot(*(_table("day", f"_201708{d:02d}") for d in range(1, 11)))
    family = detect_families(snap)["day._YYYYMMDD"]
    assert resolve_shards(family, "sessions from 2017-08-02 to 2017-08-04") == [
        "day._20170802",
        "day._20170803",
        "day._20170804",
    ]


def test_collapse_replaces_the_shards_by_one_table_with_the_newest_columns() -> None:
    snap = _snapshot(
        _table("ga", "events_20210130", "id"),
        _table("ga", "events_20210131", "id", "event_name"),
        _table("ga", "users"),
    )
    logical = collapse(snap, detect_families(snap))
    assert set(logical.tables) == {"ga.events_YYYYMMDD", "ga.users"}
    assert [c.name for c in logical.tables["ga.events_YYYYMMDD"].columns] == ["id", "event_name"]


def test_a_new_shard_does_not_change_the_logical_table() -> None:
    base = [_table("ga", f"events_2021013{d}", "id") for d in (0, 1)]
    before = collapse(_snapshot(*base), detect_families(_snapshot(*base)))
    grown = [_table("ga", "events_20210129", "id"), *base]
    after = collapse(_snapshot(*grown), detect_families(_snapshot(*grown)))
    assert before.tables["ga.events_YYYYMMDD"] == after.tables["ga.events_YYYYMMDD"]


def test_request_dates_absolute_and_relative() -> None:
    assert request_periods("PullRequestEvents on January 18, 2023") == [
        (date(2023, 1, 18), date(2023, 1, 18))
    ]
    assert request_periods("repositories in April 2022") == [(date(2022, 4, 1), date(2022, 4, 30))]
    assert request_periods("sales in Q3 2019") == [(date(2019, 7, 1), date(2019, 9, 30))]
    assert request_periods("weather in 2015") == [(date(2015, 1, 1), date(2015, 12, 31))]
    assert request_periods("between 2016 and 2018") == [(date(2016, 1, 1), date(2018, 12, 31))]
    assert request_periods("the last 7 days", today=date(2021, 1, 31)) == [
        (date(2021, 1, 25), date(2021, 1, 31))
    ]
    assert request_periods("the last 7 days") == []  # relative needs an anchor
    assert request_periods("a revenue of 2015.50 dollars, 1,2015 items") == []


def test_resolve_shards_picks_the_shards_a_request_needs() -> None:
    snap = _snapshot(*(_table("day", f"_202301{d:02d}") for d in range(10, 20)))
    family = detect_families(snap)["day._YYYYMMDD"]
    assert resolve_shards(family, "events on January 18, 2023") == ["day._20230118"]
    assert resolve_shards(family, "events in the last 3 days") == [
        "day._20230117",
        "day._20230118",
        "day._20230119",
    ]
    assert len(resolve_shards(family, "events in January 2023")) == 10
    assert resolve_shards(family, "events in 2019") == []  # no shard holds it


@pytest.mark.parametrize(
    "text",
    [
        "events in the last 99999 years",
        "the past 999999999999 days",
        "last 5000000 weeks",
        "the last " + "9" * 5000 + " days",  # past Python's limit for reading an int from digits
    ],
    ids=["years", "days", "weeks", "5000-digit days"],
)
def test_a_relative_period_longer_than_the_calendar_reaches_back_to_its_first_day(text: str) -> None:
    today = date(2023, 1, 19)
    assert request_periods(text, today=today) == [(date.min, today)]
    snap = _snapshot(*(_table("day", f"_202301{d:02d}") for d in range(10, 20)))
    assert len(resolve_shards(detect_families(snap)["day._YYYYMMDD"], text)) == 10  # every shard


def test_yearly_family_resolves_a_day_to_its_year() -> None:
    snap = _snapshot(_table("noaa", "gsod2014"), _table("noaa", "gsod2015"))
    family = detect_families(snap)["noaa.gsodYYYY"]
    assert resolve_shards(family, "the temperature on July 15, 2015") == ["noaa.gsod2015"]


def test_family_header_says_how_to_query_in_the_dialect() -> None:
    snap = _snapshot(_table("ga", "events_20210130"), _table("ga", "events_20210131"), dialect="bigquery")
    family = detect_families(snap)["ga.events_YYYYMMDD"]
    header = family_header(family, "bigquery", "ga.events_20210131")
    assert "2 shards, one per day, first events_20210130, last events_20210131" in header
    assert "`ga.events_*`" in header and "_TABLE_SUFFIX BETWEEN '20210130' AND '20210131'" in header
    assert "UNION ALL" in family_header(family, "postgresql", "ga.events_20210131")


def test_a_wildcard_s_suffix_bounds_hold_what_follows_the_date() -> None:
    """BigQuery's _TABLE_SUFFIX is all of the name after the wildcard: '2003revision', not '2003' (a bound
    of '2003' leaves out education2003revision, since '2003revision' > '2003')."""
    snap = _snapshot(
        _table("death", "education1989revision"), _table("death", "education2003revision"), dialect="bigquery"
    )
    family = detect_families(snap)["death.educationYYYYrevision"]
    header = family_header(family, "bigquery", "death.education2003revision")
    assert "`death.education*`" in header
    assert "_TABLE_SUFFIX BETWEEN '1989revision' AND '2003revision'" in header


def test_a_long_list_of_shards_is_written_as_its_ends_and_count() -> None:
    snap = _snapshot(*(_table("ga", f"events_2021{m:02d}{d:02d}") for m in (1, 2) for d in range(1, 29)))
    family = detect_families(snap)["ga.events_YYYYMMDD"]
    header = family_header(
        family, "bigquery", "ga.events_20210228", resolve_shards(family, "in February 2021")
    )
    assert header.endswith(
        "-- shards for this request: events_20210201 through events_20210228 (28 consecutive shards)"
    )
    every_other = list(family.members[::2])  # 28 shards, not consecutive: the first 11, the last, the count
    line = family_header(family, "bigquery", "ga.events_20210228", every_other).splitlines()[-1]
    assert line.startswith("-- shards for this request: events_20210101, events_20210103, ")
    assert line.endswith(", … events_20210227 (28 shards)") and line.count("events_") == 12
    few = list(family.members[:3])
    assert family_header(family, "bigquery", "ga.events_20210228", few).endswith(
        "events_20210101, events_20210102, events_20210103"
    )


def test_render_shows_a_family_once_with_its_header_and_newest_columns() -> None:
    from dbmeta_app.schema.render import render_schema

    snap = _snapshot(
        _table("ga", "events_20210129", "id"),
        _table("ga", "events_20210130", "id"),
        _table("ga", "events_20210131", "id", "event_name"),
        _table("ga", "users", "user_id"),
    )
    asked = ["ga.events_20210129", "ga.events_20210130", "ga.users"]
    text = render_schema(snap, asked)
    assert text.count("table family events_YYYYMMDD: 3 shards") == 1
    assert "(columns below are events_20210130's)" in text  # the newest shard asked for
    assert "# ga.events_20210130\nid text\n\n# ga.users" in text
    assert "# ga.events_20210129" not in text and "# ga.events_20210131" not in text  # same columns: once
    whole = render_schema(snap)  # the full schema: the newest shard's columns, then the older ones'
    assert (
        "(columns below are the last one's; shards with other columns follow)\n-- " in whole
        and "# ga.events_20210131\nid text\nevent_name" in whole
    )
    assert "these are the columns of events_20210129, events_20210130\n# ga.events_20210130\nid text" in whole


def test_an_asked_shard_whose_columns_changed_is_written_after_its_family() -> None:
    """A family whose columns changed over the years: 1995's columns are not 2015's."""
    from dbmeta_app.schema.render import render_schema

    snap = _snapshot(
        _table("ny", "tree_census_1995", "recordid", "spc_latin"),
        _table("ny", "tree_census_2005", "objectid", "spc_latin"),
        _table("ny", "tree_census_2015", "tree_id", "spc_common"),
        _table("ny", "tree_species", "species_scientific_name"),
    )
    text = render_schema(snap, ["ny.tree_census_1995", "ny.tree_census_2015", "ny.tree_species"])
    blocks = text.split("\n\n")
    assert blocks[0].startswith("-- table family tree_census_YYYY: 3 shards")
    assert "-- shards for this request: tree_census_1995, tree_census_2015" in blocks[0]
    assert blocks[0].endswith("# ny.tree_census_2015\ntree_id text\nspc_common text")
    assert blocks[1:] == [
        "-- family tree_census_YYYY: these are the columns of tree_census_1995\n"
        "# ny.tree_census_1995\nrecordid text\nspc_latin text",
        "# ny.tree_species\nspecies_scientific_name text",
    ]


def test_every_set_of_columns_of_a_family_is_written_and_names_its_shards() -> None:
    """The full schema and a request alike: a shard whose columns are not the newest's is not hidden behind
    them, and each other set of columns says which shards have it (1995 has 2005's, not 2015's)."""
    from dbmeta_app.schema.render import render_schema

    snap = _snapshot(
        _table("ny", "trees_1995", "recordid", "health_old"),
        _table("ny", "trees_2005", "recordid", "health_old"),
        _table("ny", "trees_2015", "tree_id", "health"),
        _table("ny", "species", "name"),
    )
    other = "-- family trees_YYYY: these are the columns of trees_1995, trees_2005\n# ny.trees_2005\n"
    whole = render_schema(snap)
    assert whole.count("table family trees_YYYY: 3 shards") == 1
    assert "(columns below are the last one's; shards with other columns follow)" in whole
    assert "# ny.trees_2015\ntree_id text\nhealth text" in whole
    assert other + "recordid text\nhealth_old text" in whole  # hidden before: 1995 and 2005 were not written
    asked = render_schema(snap, ["ny.trees_2015", "ny.trees_1995", "ny.trees_2005", "ny.species"])
    assert "-- shards for this request: trees_2015, trees_1995, trees_2005" in asked
    assert other in asked  # before: "# ny.trees_2005" alone, 1995 named nowhere near its columns
    same = render_schema(snap, ["ny.trees_1995", "ny.trees_2005"])  # one set of columns: no note
    assert "these are the columns" not in same and "other columns follow" not in same
    assert "(columns below are trees_2005's)" in same


def test_a_request_s_shards_are_ranked_as_the_tables_the_rendering_writes() -> None:
    """Column relevance is scored for what is written: a year of day shards of one shape is one table."""
    from dbmeta_app.schema.render import rendered_tables

    days = [_table("ga", f"events_2021{m:02d}{d:02d}", "id", "name") for m in (1, 2) for d in range(1, 29)]
    changed = _table("ga", "events_20210301", "id", "name", "country")  # a later shard with a new column
    snap = _snapshot(*days, changed, _table("ga", "users", "user_id"))
    asked = [t.key for t in days] + ["ga.users"]
    assert rendered_tables(snap, asked) == ["ga.events_20210228", "ga.users"]
    assert rendered_tables(snap, ["ga.events_20210301", "ga.events_20210105"]) == [
        "ga.events_20210301",
        "ga.events_20210105",
    ]


def test_render_names_the_shards_asked_for() -> None:
    from dbmeta_app.schema.render import render_schema

    snap = _snapshot(*(_table("day", f"_202301{d}", "id") for d in (17, 18, 19)))
    text = render_schema(snap, ["day._20230118"])
    assert "-- shards for this request: _20230118" in text
    assert "# day._20230118" in text and "# day._20230119" not in text
    assert "shards for this request" not in render_schema(snap, ["day._20230119"])
    assert render_schema(snap).count("table family") == 1  # the whole schema: once, no request


def test_a_snapshot_s_families_are_derived_once_however_often_it_is_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rendering runs per request: the families of a snapshot that lives for many requests are found once."""
    from dbmeta_app.schema import families
    from dbmeta_app.schema.render import render_schema

    snap = Snapshot.build("p", "postgresql", [_table("ga", f"events_2023010{d}") for d in range(1, 4)])
    parsed: list[str] = []
    real = families._parse
    monkeypatch.setattr(families, "_parse", lambda name: parsed.append(name) or real(name))
    first = render_schema(snap, ["ga.events_20230103"])
    assert render_schema(snap, ["ga.events_20230103"]) == first
    assert len(parsed) == 3  # each table name parsed once, not once per rendering
    other = replace(snap, tables={k: t for k, t in snap.tables.items() if k != "ga.events_20230103"})
    assert set(families.family_of(other)) == {
        "ga.events_20230101",
        "ga.events_20230102",
    }  # its own, not copied


def _github() -> Snapshot:
    """GitHub archive style: one schema per grain, every day of April 2022, every month of 2022, years."""
    days = [_table("day", f"_202204{d:02d}") for d in range(1, 31)] + [_table("day", "_20230118")]
    months = [_table("month", f"_2022{m:02d}") for m in range(1, 13)]
    years = [_table("year", f"_{y}") for y in (2021, 2022, 2023)]
    return _snapshot(*days, *months, *years, _table("github", "languages"))


@pytest.mark.parametrize(
    ("request_text", "named"),
    [
        ("PullRequestEvents on January 18, 2023", ["day._YYYYMMDD"]),
        # the day family holds all 30 days of April too: the month family is the one that says "April 2022"
        ("repositories created in April 2022", ["month._YYYYMM"]),
        ("stars in 2022", ["year._YYYY"]),
        ("forks from April 3, 2022 to April 5, 2022", ["day._YYYYMMDD"]),
        ("events in the last 7 days", ["day._YYYYMMDD"]),  # counted in days
        ("stars over the past 3 months", ["month._YYYYMM"]),
        ("events on May 2, 2022", []),  # inside the month and year families, but no shard of theirs
        ("the most used languages", []),
    ],
)
def test_dated_families_are_those_whose_shards_the_request_dates_name(
    request_text: str, named: list[str]
) -> None:
    assert dated_families(detect_families(_github()), request_text) == named


_DATE_WORDS = (
    "last past previous recent thirty day days week month quarter year years between and from to through of "
    "Q0 Q1 Q4 Q5 January Feb February 29, 31 30 0 1 1899 1900 2099 2100 2020-02-30 13/45/2020 2020/02/29 "
    "4th first quarter 2019_q3 - / , ٢٠٢٣"
).split()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_DATE_WORDS),
            st.integers(min_value=0).map(str),
            st.text(alphabet="0123456789", min_size=1, max_size=6000),
            st.text(max_size=20),
            # a relative period of any length: "last 7 days", "past 99999 years"
            st.tuples(
                st.sampled_from(["last", "past", "previous", "recent"]),
                st.one_of(
                    st.integers(min_value=4000, max_value=6000).map("9".__mul__),  # past int()'s digit limit
                    st.integers(min_value=0).map(str),
                    st.text(alphabet="0123456789", min_size=1, max_size=6000),
                ),
                st.sampled_from(["day", "days", "weeks", "month", "quarters", "year", "years"]),
            ).map(" ".join),
        ),
        max_size=12,
    ).map(" ".join)
)
def test_any_request_text_resolves_to_periods_and_shards_without_failing(text: str) -> None:
    """Request text is the caller's: whatever dates, numbers and words it holds, it resolves (possibly to
    nothing) and never raises (a 500 on search and schema)."""
    snap = _snapshot(
        *(_table("d", f"ev_{y}{m:02d}{d:02d}") for y in (1900, 2099) for m in (1, 12) for d in (1, 31)),
        *(_table("q", f"t_{y}_q{q}") for y in (2019, 2099) for q in (1, 4)),
    )
    families = detect_families(snap)
    for today in (None, date(2099, 12, 31), date(1900, 1, 1)):
        for start, end in request_periods(text, today=today):
            assert date.min <= start and end <= date.max
    dated_families(families, text)
    for family in families.values():
        shards = resolve_shards(family, text)
        assert set(shards) <= set(family.members)
        family_header(family, "postgresql", family.newest.key, shards)
