"""The routine policy's judgement, on hand-built catalogs: names, overloads, search path, paths, allow-list."""

from __future__ import annotations

from typing import Any

import pytest

from dbmeta_app.config import PreflightLimits
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.reach import Name, Reach
from dbmeta_app.preflight.routines import (
    AllowList,
    MyCatalog,
    MyLive,
    MyView,
    PgCast,
    PgCatalog,
    PgHit,
    PgLive,
    PgOperator,
    PgRelation,
    PgRoutine,
    judge_mysql,
    judge_postgres,
)

TEXT, INT4, MOOD, MOOD_ARRAY, T_ROW = 25, 23, 20001, 20002, 20003
NONE = AllowList()


def _routine(oid: int, schema: str, name: str, args: tuple[int, ...] = (TEXT,), **extra: Any) -> PgRoutine:
    return PgRoutine(
        oid=oid,
        schema=schema,
        name=name,
        signature=f"{schema}.{name}(...)",
        args=args,
        returns=INT4,
        reason="user-defined",
        **extra,
    )


def _catalog(**parts: Any) -> PgCatalog:
    return PgCatalog.build(
        fingerprint="f",
        routines=parts.get("routines", ()),
        operators=parts.get("operators", ()),
        casts=parts.get("casts", ()),
        relations=parts.get("relations", ()),
        user_types=parts.get("user_types", {MOOD, MOOD_ARRAY, T_ROW}),
        domain_hits=parts.get("domain_hits", {}),
        type_names={},
    )


def _live(**parts: Any) -> PgLive:
    return PgLive(
        fingerprint="f",
        search_path=parts.get("search_path", ("pg_catalog", "public", "ops")),
        relations=parts.get("relations", ()),
        universe=frozenset(parts.get("universe", ())),
        cast_targets=frozenset(parts.get("cast_targets", ())),
        columns=frozenset(parts.get("columns", ())),
    )


def _reach(sql: str) -> Reach:
    verdict = check_sql(sql, "postgresql")
    assert verdict.reach is not None, verdict.reason
    return verdict.reach


KILL = _routine(30001, "ops", "kill_idle")


def test_a_user_function_is_refused_with_its_name_and_why() -> None:
    verdict = judge_postgres(_reach("SELECT ops.kill_idle('x')"), _catalog(routines=[KILL]), _live(), NONE)
    assert (
        verdict is not None and "function ops.kill_idle(...) (user-defined; not in the profile's" in verdict
    )


@pytest.mark.parametrize("entries", [("ops.kill_idle",), ("ops.*",)])
def test_an_allow_listed_function_is_accepted(entries: tuple[str, ...]) -> None:
    allow = AllowList.parse(entries)
    assert (
        judge_postgres(_reach("SELECT ops.kill_idle('x')"), _catalog(routines=[KILL]), _live(), allow) is None
    )


def test_a_deny_listed_function_cannot_be_allow_listed() -> None:
    denied = _routine(30002, "ops", "pg_sleep_more", denied=True)
    allow = AllowList.parse(("ops.*",))
    verdict = judge_postgres(
        _reach("SELECT * FROM v"),
        _catalog(
            routines=[denied],
            relations=[
                PgRelation(40001, "s", "v", "v", hits=(PgHit("", proc=denied.oid),)),
            ],
        ),
        _live(relations=(40001,)),
        allow,
    )
    assert verdict is not None and "pg_sleep_more" in verdict


def test_an_unqualified_name_resolves_only_in_schemas_on_the_search_path() -> None:
    catalog = _catalog(routines=[KILL])
    assert (
        judge_postgres(
            _reach("SELECT kill_idle('x')"), catalog, _live(search_path=("pg_catalog", "public")), NONE
        )
        is None
    )
    assert judge_postgres(_reach("SELECT kill_idle('x')"), catalog, _live(), NONE) is not None
    # the temporary schema is never searched for functions
    temp = _routine(30003, "pg_temp_3", "kill_idle")
    live = _live(search_path=("pg_temp_3", "pg_catalog", "public"))
    assert judge_postgres(_reach("SELECT kill_idle('x')"), _catalog(routines=[temp]), live, NONE) is None


def test_the_same_name_in_two_schemas_is_judged_by_which_are_visible() -> None:
    trusted = _routine(30010, "a1", "dup")
    untrusted = _routine(30011, "a2", "dup")
    catalog = _catalog(routines=[trusted, untrusted])
    allow = AllowList.parse(("a1.dup",))
    reach = _reach("SELECT dup('x')")
    assert judge_postgres(reach, catalog, _live(search_path=("pg_catalog", "a1")), allow) is None
    verdict = judge_postgres(reach, catalog, _live(search_path=("pg_catalog", "a2", "a1")), allow)
    assert verdict is not None and "a2.dup" in verdict and "a1.dup" not in verdict
    assert (
        judge_postgres(_reach("SELECT a2.dup('x')"), catalog, _live(search_path=("a1",)), allow) is not None
    )


def test_an_exact_twin_of_a_built_in_is_hidden_behind_pg_catalog_unless_it_comes_first() -> None:
    twin = _routine(30020, "public", "lower", builtin_name=True, builtin_twin=True)
    catalog = _catalog(routines=[twin])
    reach = _reach("SELECT lower('X')")
    assert judge_postgres(reach, catalog, _live(search_path=("pg_catalog", "public")), NONE) is None
    assert judge_postgres(reach, catalog, _live(search_path=("public", "pg_catalog")), NONE) is not None


def test_an_overload_on_a_user_type_the_query_cannot_produce_is_not_chosen() -> None:
    overload = _routine(30030, "public", "lower", args=(MOOD,), builtin_name=True)
    catalog = _catalog(routines=[overload])
    reach = _reach("SELECT lower(x) FROM t")
    assert judge_postgres(reach, catalog, _live(universe={TEXT}), NONE) is None
    assert judge_postgres(reach, catalog, _live(universe={TEXT, MOOD}), NONE) is not None
    # without a built-in of that name, an unknown literal could pick it: always refused
    lonely = _routine(30031, "public", "feel", args=(MOOD,))
    assert judge_postgres(_reach("SELECT feel('x')"), _catalog(routines=[lonely]), _live(), NONE) is not None


def test_attribute_notation_is_a_call_unless_the_name_is_a_column_or_an_alias() -> None:
    fn = _routine(30040, "public", "audit_row", args=(T_ROW,))
    catalog = _catalog(routines=[fn])
    reach = _reach("SELECT t.audit_row FROM t")
    assert judge_postgres(reach, catalog, _live(universe={T_ROW}), NONE) is not None
    assert judge_postgres(reach, catalog, _live(universe={T_ROW}, columns={"audit_row"}), NONE) is None
    aliased = _reach("SELECT s.audit_row FROM (SELECT 1 AS audit_row) s")
    assert judge_postgres(aliased, catalog, _live(universe={T_ROW}), NONE) is None
    assert judge_postgres(reach, catalog, _live(universe=set()), NONE) is None  # its row type is not read


def _operator(symbol: str, left: int, right: int, **extra: Any) -> PgOperator:
    return PgOperator(30101, "ops", symbol, left, right, (KILL.oid,), f"ops.{symbol}", **extra)


def test_an_operator_whose_function_is_untrusted_is_refused_when_only_untrusted_ones_have_its_symbol() -> (
    None
):
    catalog = _catalog(routines=[KILL], operators=[_operator("===", TEXT, TEXT)])
    verdict = judge_postgres(_reach("SELECT 'a' === 'b'"), catalog, _live(), NONE)
    assert verdict is not None and "operator ops.=== → function ops.kill_idle" in verdict
    assert judge_postgres(_reach("SELECT 1"), catalog, _live(), NONE) is None  # not written, not implicit


def test_an_equality_on_a_user_type_counts_only_when_the_query_has_values_of_it() -> None:
    catalog = _catalog(routines=[KILL], operators=[_operator("=", MOOD, MOOD, builtin_name=True)])
    reach = _reach("SELECT * FROM t WHERE a = 1 ORDER BY a")
    assert judge_postgres(reach, catalog, _live(universe={INT4}), NONE) is None
    # implicit too: GROUP BY on a mood column compares with the type's equality
    assert (
        judge_postgres(_reach("SELECT m FROM t GROUP BY m"), catalog, _live(universe={MOOD}), NONE)
        is not None
    )


def test_an_equality_shadowing_a_built_in_type_counts_unless_pg_catalog_comes_first() -> None:
    shadow = _operator("=", INT4, INT4, builtin_name=True, builtin_twin=True)
    catalog = _catalog(routines=[KILL], operators=[shadow])
    reach = _reach("SELECT 1 = 1")
    assert judge_postgres(reach, catalog, _live(search_path=("pg_catalog", "ops")), NONE) is None
    assert judge_postgres(reach, catalog, _live(search_path=("ops", "pg_catalog")), NONE) is not None


def test_casts_count_when_their_target_is_cast_to_or_implicit_between_types_present() -> None:
    to_mood = PgCast(TEXT, MOOD, "e", KILL.oid, "cast from text to mood")
    from_mood = PgCast(MOOD, TEXT, "i", KILL.oid, "cast from mood to text")
    catalog = _catalog(routines=[KILL], casts=[to_mood, from_mood])
    plain = _reach("SELECT x FROM t")
    assert judge_postgres(plain, catalog, _live(universe={TEXT}), NONE) is None
    explicit = judge_postgres(
        _reach("SELECT x::mood FROM t"), catalog, _live(universe={TEXT, MOOD}, cast_targets={MOOD}), NONE
    )
    assert explicit is not None and "cast from text to mood → function ops.kill_idle" in explicit
    column = judge_postgres(plain, catalog, _live(universe={TEXT, MOOD}), NONE)
    assert column is not None and "cast from mood to text" in column


def test_a_domain_cast_to_runs_its_check_constraint() -> None:
    catalog = _catalog(routines=[KILL], domain_hits={MOOD: (PgHit("check constraint c", proc=KILL.oid),)})
    verdict = judge_postgres(_reach("SELECT 'x'::mood"), catalog, _live(cast_targets={MOOD}), NONE)
    assert verdict is not None and "cast to domain" in verdict and "check constraint c" in verdict


def test_a_domain_the_query_s_values_can_have_runs_its_check_constraint_uncast() -> None:
    """A literal takes a column's domain through an array, a composite or a range (ARRAY[qty] = '{7}')."""
    catalog = _catalog(routines=[KILL], domain_hits={MOOD: (PgHit("check constraint c", proc=KILL.oid),)})
    verdict = judge_postgres(_reach("SELECT x FROM t"), catalog, _live(universe={TEXT, MOOD}), NONE)
    assert verdict is not None and "domain " in verdict and "cast to domain" not in verdict
    assert judge_postgres(_reach("SELECT x FROM t"), catalog, _live(universe={TEXT}), NONE) is None


def test_relations_expand_views_and_children_with_the_path_named() -> None:
    relations = [
        PgRelation(50001, "sales", "v_outer", "v", reads=(50002,)),
        PgRelation(50002, "sales", "v_report", "v", hits=(PgHit("", proc=KILL.oid),)),
        PgRelation(50003, "s", "parent", "r", children=(50004,)),
        PgRelation(50004, "s", "child", "r", hits=(PgHit("check constraint c1", proc=KILL.oid),)),
        PgRelation(50005, "s", "mv", "m", reads=(50002,)),
    ]
    catalog = _catalog(routines=[KILL], relations=relations)
    view = judge_postgres(_reach("SELECT * FROM sales.v_outer"), catalog, _live(relations=(50001,)), NONE)
    assert view is not None and "view sales.v_outer → view sales.v_report → function ops.kill_idle" in view
    child = judge_postgres(_reach("SELECT * FROM s.parent"), catalog, _live(relations=(50003,)), NONE)
    assert child is not None and "table s.parent → table s.child → check constraint c1 → function" in child
    # a materialized view is read like a table: its defining query is not planned
    assert judge_postgres(_reach("SELECT * FROM s.mv"), catalog, _live(relations=(50005,)), NONE) is None
    assert judge_postgres(_reach("SELECT * FROM x"), catalog, _live(relations=(None,)), NONE) is None


def test_a_verdict_names_at_most_three_problems() -> None:
    routines = [_routine(30200 + i, "ops", f"f{i}") for i in range(6)]
    sql = "SELECT " + ", ".join(f"ops.f{i}('x')" for i in range(6))
    verdict = judge_postgres(_reach(sql), _catalog(routines=routines), _live(), NONE)
    assert verdict is not None and verdict.count("function ops.") == 3


def test_allow_list_entries_are_validated_in_the_profile() -> None:
    assert PreflightLimits(allow_functions=('"My Schema"."Fn"', "ops.*")).allow_functions
    with pytest.raises(ValueError, match=r"not schema\.name"):
        PreflightLimits(allow_functions=("kill_idle",))
    allow = AllowList.parse(('"My Schema"."Fn"',))
    assert allow.permits("My Schema", "Fn") and not allow.permits("my schema", "fn")


# --- MySQL / MariaDB -------------------------------------------------------------------------------


def _my_catalog(**parts: Any) -> MyCatalog:
    return MyCatalog(
        fingerprint="f",
        functions=parts.get(
            "functions", {("shop", "f_kill"): "shop.f_kill", ("shop", "account"): "shop.account"}
        ),
        udfs=parts.get("udfs", frozenset()),
        keywords=frozenset({"IN", "VALUES", "ACCOUNT", "AS"}),
        builtins=frozenset({"COUNT", "IF", "CONCAT", "COALESCE"}),
        builtins_quoted=frozenset({"CONCAT", "COALESCE"}),
        views=parts.get("views", {}),
    )


def _my(sql: str) -> Reach:
    verdict = check_sql(sql, "mysql")
    assert verdict.reach is not None, verdict.reason
    return verdict.reach


MY_LIVE = MyLive(fingerprint="f", database="shop")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT f_kill(1)",
        "SELECT shop.f_kill(1)",
        "SELECT `f_kill`(1)",
        "SELECT F_KILL(1)",
        "SELECT account(1)",
    ],
)
def test_a_stored_function_is_refused_however_it_is_written(sql: str) -> None:
    verdict = judge_mysql(_my(sql), _my_catalog(), MY_LIVE, NONE)
    assert verdict is not None and "stored function shop." in verdict


def test_built_ins_are_resolved_before_stored_functions_of_the_same_name() -> None:
    catalog = _my_catalog(functions={("shop", "concat"): "shop.concat"})
    assert judge_mysql(_my("SELECT CONCAT('a', 'b'), COUNT(*) FROM t"), catalog, MY_LIVE, NONE) is None
    assert judge_mysql(_my("SELECT shop.concat('a')"), catalog, MY_LIVE, NONE) is not None


def test_udfs_are_refused_when_known_and_unknown_names_are_possible_udfs_when_not() -> None:
    known = _my_catalog(udfs=frozenset({"sys_get2"}))
    assert "loadable function (UDF) sys_get2()" in str(
        judge_mysql(_my("SELECT sys_get2('x')"), known, MY_LIVE, NONE)
    )
    assert judge_mysql(_my("SELECT other_fn(1)"), known, MY_LIVE, NONE) is None  # no such function at all
    unreadable = _my_catalog(udfs=None)
    assert "may be a loadable UDF" in str(judge_mysql(_my("SELECT other_fn(1)"), unreadable, MY_LIVE, NONE))
    assert judge_mysql(_my("SELECT * FROM t WHERE a IN (1, 2)"), unreadable, MY_LIVE, NONE) is None
    assert (
        judge_mysql(
            _my("SELECT other_fn(1)"), unreadable, MY_LIVE, AllowList.parse(("udf.other_fn",), fold_case=True)
        )
        is None
    )


def test_views_are_followed_to_the_functions_they_call() -> None:
    views = {
        ("shop", "v_outer"): MyView("shop", "v_outer", (), (Name("shop", "v_kill"),)),
        ("shop", "v_kill"): MyView("shop", "v_kill", (Name("shop", "f_kill", True),), (Name("shop", "t"),)),
        ("shop", "v_hidden"): MyView("shop", "v_hidden", None),
    }
    catalog = _my_catalog(views=views)
    verdict = judge_mysql(_my("SELECT * FROM v_outer"), catalog, MY_LIVE, NONE)
    assert (
        verdict is not None
        and "view shop.v_outer → view shop.v_kill → stored function shop.f_kill()" in verdict
    )
    hidden = judge_mysql(_my("SELECT * FROM shop.v_hidden"), catalog, MY_LIVE, NONE)
    assert hidden is not None and "grant SHOW VIEW" in hidden
    allow = AllowList.parse(("shop.f_kill",), fold_case=True)
    assert judge_mysql(_my("SELECT * FROM v_outer"), catalog, MY_LIVE, allow) is None
