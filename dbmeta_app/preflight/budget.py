"""Measure how much planning work a parsed query can cause, and hold it against per-profile limits.

Pure: no I/O. The planner's work grows with what it plans *after* inlining: a non-materialised CTE is
copied into every place that references it, so a chain of CTEs that each reference the previous one twice
doubles at every link (22 links: a 1.8 kB query whose plan took PostgreSQL 22 GB). The measures:

- ``nodes``: parse-tree nodes, every inlined CTE counted once per reference (transitively);
- ``relations``: range-table entries (tables, subqueries, functions, joins, set-operation branches, CTE
  references), inlined the same way; planning memory grows with their square in a UNION;
- ``depth``: the parse tree's depth (a long ``a + b + ...`` is as deep as it is long); the service's own
  serialiser and the server's expression code recurse once per level;
- ``query_depth``: how deeply queries nest (subqueries, CTE bodies; not UNION branches): PostgreSQL's
  memory grows with its square (200 levels of ``SELECT *, random() FROM (...) OFFSET 0``: 428 MB);
- ``from_items``: the most range-table entries in one FROM clause (joins flattened): the join search
  is exponential in them, bounded by the collapse limits and GEQO the EXPLAIN transaction sets;
- ``constant_bytes``: how many bytes the planner may build by folding constant calls of
  functions whose result can outgrow their arguments (``repeat('x', 200000000)``: a 427 MB backend;
  ``encode`` of ``encode`` of …: doubles at every level), summed over the statement, CTEs inlined. Each
  such call is bounded from its arguments (a count, a width, an array's dimensions, a replacement's
  length); one whose bound cannot be read from literals counts as unbounded. Other calls of constants
  count the size of their arguments. A column of a derived table, CTE or one-row VALUES whose value is a
  constant is that constant (``repeat('x', n) FROM (SELECT 300000000 AS n) d``: the planners pull the
  subquery up and fold).

Inlining follows each engine: PostgreSQL and SQLite inline a CTE that is referenced once or written
``NOT MATERIALIZED``; MySQL/MariaDB and the others are assumed to inline every non-recursive CTE. Views
are not in the parse tree: their definitions are measured against the same bound where the catalog is read
(PostgreSQL and MariaDB: the routine policy, ``preflight/routines.py``; DuckDB: ``dialects/duckdb.reach_problem``),
each with the constant columns of the views it reads (:func:`settle_view_outputs`, :func:`pg_view_outputs`,
:func:`glot_view_outputs`), and so is the query (``outputs`` of :func:`measure_postgres`, :func:`measure_sqlglot`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pglast import ast as pg
from pglast.enums import CTEMaterialize, SetOperation
from sqlglot import exp

from dbmeta_app.preflight.duckdb_folding import DUCKDB_VARIABLE_SIZE
from dbmeta_app.preflight.pg_folding import NOT_FOLDED, VARIABLE_SIZE

__all__ = [
    "Budget",
    "Measures",
    "glot_view_outputs",
    "measure_postgres",
    "measure_sqlglot",
    "merge_outputs",
    "over_budget",
    "pg_view_outputs",
    "settle_view_outputs",
]

_Key = TypeVar("_Key", bound=Hashable)

# Counts saturate here: an exponential CTE chain must not build integers with thousands of digits.
_CAP: Final = 10**15
_POSTGRES_LIKE: Final = frozenset({"postgresql", "postgres", "sqlite"})


@dataclass(frozen=True, slots=True)
class Budget:
    """The most planning work one preflight may ask of the database (see the module docstring)."""

    max_nodes: int = 100_000
    max_relations: int = 2_000
    max_depth: int = 5_000
    max_query_depth: int = 64
    max_from_items: int = 100
    max_constant_bytes: int = 16_000_000


@dataclass(frozen=True, slots=True)
class Measures:
    """What a query costs to plan, in the units of :class:`Budget`."""

    nodes: int
    relations: int
    depth: int
    from_items: int
    query_depth: int
    constant_bytes: int = 0


def over_budget(measures: Measures, budget: Budget) -> str | None:
    """Say which measure exceeds its limit and by how much, or None when the query fits."""
    checks = (
        (measures.depth, budget.max_depth, "nesting depth", "max_depth"),
        (measures.query_depth, budget.max_query_depth, "levels of nested queries", "max_query_depth"),
        (measures.from_items, budget.max_from_items, "entries in one FROM clause", "max_from_items"),
        (measures.relations, budget.max_relations, "range-table entries (CTEs inlined)", "max_relations"),
        (measures.nodes, budget.max_nodes, "expression nodes (CTEs inlined)", "max_nodes"),
        (
            measures.constant_bytes,
            budget.max_constant_bytes,
            "bytes of constants the planner would build (CTEs inlined)",
            "max_constant_bytes",
        ),
    )
    for value, limit, what, setting in checks:
        if value > limit:
            shown = f"over {_CAP:,}" if value >= _CAP else f"{value:,}"
            ratio = f"{value / limit:.1f}x; " if limit > 0 else ""
            return (
                f"query too complex to plan safely: {shown} {what}, over the limit of {limit:,} "
                f"({ratio}the profile's preflight.{setting})"
            )
    return None


@dataclass
class _Block:
    """One CTE body (or the statement itself, index 0): what it holds outside nested CTE bodies."""

    nodes: int = 0
    relations: int = 0
    constant_bytes: int = 0
    query_depth: int = 0  # query levels inside it, its own body counting 1
    refs: list[tuple[int, int]] = field(
        default_factory=list
    )  # (CTE referenced, query level of the reference)
    referenced: int = 0  # references to this CTE, as written
    inline: bool = True
    recursive: bool = False
    base: int = 0  # the query level the block starts at


@dataclass(frozen=True, slots=True)
class _Total:
    nodes: int
    relations: int
    query_depth: int
    constant_bytes: int = 0


class _Scope:
    """The CTE names visible at a point of the query, resolved to block indexes."""

    __slots__ = ("hidden", "names", "outer")

    def __init__(self, names: dict[str, int], outer: _Scope | None = None, hidden: range = range(0)) -> None:
        self.names = names
        self.outer = outer
        self.hidden = hidden  # later siblings, which a non-recursive CTE's body cannot see yet

    def find(self, name: str) -> int | None:
        scope: _Scope | None = self
        while scope is not None:
            target = scope.names.get(name)
            if target is None or target not in scope.hidden:
                return target
            scope = scope.outer
        return None

    def clause(self, own: list[str], first: int, recursive: bool) -> tuple[_Scope, list[_Scope]]:
        """Scopes of a WITH clause met here: its query's, and each of its CTE bodies'."""
        names = self.names
        if self.hidden:  # resolve through the hidden siblings once, so lookups below stay O(1)
            names = {n: t for n in self.names if (t := self.find(n)) is not None}
        body = _Scope({**names, **{name: first + i for i, name in enumerate(own)}})
        if recursive:
            return body, [body] * len(own)
        outer = _Scope(names)
        return body, [
            _Scope(body.names, outer=outer, hidden=range(first + i, first + len(own)))
            for i in range(len(own))
        ]


def _combine(blocks: list[_Block], inlined: list[bool]) -> _Total:
    """Totals of the statement: inlined CTEs counted at each reference (nested there), the others once."""
    totals: dict[int, _Total] = {}
    active: set[int] = set()
    for start in range(len(blocks)):
        # Iterative post-order: a CTE's total needs the totals of the inlined CTEs it references.
        stack: list[tuple[int, bool]] = [(start, False)]
        while stack:
            index, expanded = stack.pop()
            block = blocks[index]
            if expanded:
                nodes, relations, depth = block.nodes, block.relations, block.query_depth
                constant = block.constant_bytes
                for target, level in block.refs:
                    # A self-reference, a cycle (the server refuses it) or a materialised CTE adds nothing.
                    if target != index and target not in active and inlined[target]:
                        nodes = min(_CAP, nodes + totals[target].nodes)
                        relations = min(_CAP, relations + totals[target].relations)
                        depth = max(depth, level + totals[target].query_depth)
                        constant = min(_CAP, constant + totals[target].constant_bytes)
                totals[index] = _Total(nodes, relations, depth, constant)
                active.discard(index)
            elif index not in totals and index not in active:
                active.add(index)
                stack.append((index, True))
                stack.extend((t, False) for t, _ in block.refs if t not in totals and t not in active)
    nodes, relations, depth = totals[0].nodes, totals[0].relations, totals[0].query_depth
    constant = totals[0].constant_bytes
    for index, block in enumerate(blocks[1:], start=1):
        if block.referenced == 0:
            # Never referenced: parsed, not planned; its own size only.
            nodes, relations = min(_CAP, nodes + block.nodes), min(_CAP, relations + block.relations)
            depth = max(depth, block.query_depth)
        elif not inlined[index]:  # planned once, on its own
            nodes = min(_CAP, nodes + totals[index].nodes)
            relations = min(_CAP, relations + totals[index].relations)
            depth = max(depth, totals[index].query_depth)
            constant = min(_CAP, constant + totals[index].constant_bytes)
    return _Total(nodes, relations, depth, constant)


def _inline_rule(blocks: list[_Block], dialect: str) -> list[bool]:
    postgres_like = dialect in _POSTGRES_LIKE
    out = [False]
    for block in blocks[1:]:
        if block.recursive:
            out.append(False)  # a work table, planned once
        elif postgres_like:
            out.append(block.inline or block.referenced == 1)
        else:
            out.append(True)
    return out


# --- PostgreSQL (pglast) ---------------------------------------------------------------------------

_PG_RELATION_NODES: Final = (pg.RangeSubselect, pg.RangeFunction, pg.RangeTableFunc, pg.JoinExpr)


def _pg_children(node: pg.Node) -> Iterator[Any]:
    for attribute in node:
        value = getattr(node, attribute, None)
        if isinstance(value, pg.Node | tuple | list):
            yield attribute, value


def _pg_from_items(from_clause: Any) -> int:
    count = 0
    stack = list(from_clause or ())
    while stack:
        item = stack.pop()
        if isinstance(item, pg.JoinExpr):
            stack.extend(side for side in (item.larg, item.rarg) if side is not None)
        else:
            count += 1
    return count


def measure_postgres(root: pg.Node, outputs: Mapping[str, Any] | None = None) -> Measures:
    """Measure a pglast statement tree (iteratively: the tree may be thousands of levels deep).

    ``outputs``: constant columns of relations the statement reads that are not in its text (the views it
    reads, by column name: :func:`pg_view_outputs`), counted like its own derived tables' constants.
    """
    folded = _pg_folded_calls(root)
    blocks = [_Block()]
    depth = from_items = 0
    # (value, owning block, visible CTEs, depth in the tree, query nesting level)
    stack: list[tuple[Any, int, _Scope, int, int]] = [(root, 0, _Scope({}), 1, 0)]
    inlined = _pg_inline_constants(root, outputs or {})
    pulled_up = sum(_pg_folded_calls(inlined).values()) if inlined is not root else 0
    while stack:
        value, owner, scope, level, query = stack.pop()
        if isinstance(value, tuple | list):
            stack.extend((item, owner, scope, level, query) for item in value if item is not None)
            continue
        if not isinstance(value, pg.Node):
            continue
        block = blocks[owner]
        block.nodes += 1
        depth = max(depth, level)
        if id(value) in folded:
            block.constant_bytes = min(_CAP, block.constant_bytes + folded[id(value)])
        if isinstance(value, pg.SelectStmt):
            query += 1
            block.query_depth = max(block.query_depth, query - block.base)
            from_items = max(from_items, _pg_from_items(value.fromClause))
            if value.op is not None and value.op != SetOperation.SETOP_NONE:
                for side in (value.larg, value.rarg):
                    if isinstance(side, pg.SelectStmt) and side.op in (None, SetOperation.SETOP_NONE):
                        block.relations += 1  # each branch becomes a subquery entry
            body_scope = scope
            clause = value.withClause
            if isinstance(clause, pg.WithClause):
                ctes = [cte for cte in clause.ctes or () if isinstance(cte, pg.CommonTableExpr)]
                first = len(blocks)
                body_scope, cte_scopes = scope.clause(
                    [cte.ctename or "" for cte in ctes], first, bool(clause.recursive)
                )
                for cte, cte_scope in zip(ctes, cte_scopes, strict=True):
                    never = cte.ctematerialized == CTEMaterialize.CTEMaterializeNever
                    blocks.append(_Block(nodes=2, inline=never, base=query))
                    stack.append((cte.ctequery, len(blocks) - 1, cte_scope, level + 2, query))
            for attribute, child in _pg_children(value):
                if attribute in ("larg", "rarg"):  # a UNION's branches are queries of this same level
                    stack.append((child, owner, body_scope, level + 1, query - 1))
                elif attribute != "withClause":
                    stack.append((child, owner, body_scope, level + 1, query))
            continue
        if isinstance(value, pg.RangeVar):
            block.relations += 1
            if not value.schemaname and not value.catalogname:
                _reference(blocks, owner, scope.find(value.relname or ""), query)
        elif isinstance(value, _PG_RELATION_NODES):
            block.relations += 1
        for _, child in _pg_children(value):
            stack.append((child, owner, scope, level + 1, query))
    total = _combine(blocks, _inline_rule(blocks, "postgresql"))
    constant = max(total.constant_bytes, pulled_up)
    return Measures(total.nodes, total.relations, depth, from_items, total.query_depth, constant)


# Functions whose result can be much larger than their arguments, and how much (see _pg_call_bound).
_PG_SIZED: Final = frozenset(
    {
        "repeat",
        "lpad",
        "rpad",
        "array_fill",
        "replace",
        "regexp_replace",
        "format",
        "array_replace",
        "array_to_string",
        "concat_ws",
        "regexp_match",
        "bpchar",
        "bit",
    }
)
# At most this many times the size of their arguments: escaping (encode 'escape' writes \ooo for a byte,
# JSON \u00XX for a control character), quoting, multi-byte characters in, or markup around, the result.
_PG_GROWING: Final = {
    "encode": 4,
    "translate": 4,
    "to_json": 6,
    "to_jsonb": 6,
    "array_to_json": 6,
    "row_to_json": 6,
    "json_build_array": 6,
    "json_build_object": 6,
    "jsonb_build_array": 6,
    "jsonb_build_object": 6,
    "json_object": 6,
    "jsonb_object": 6,
    "jsonb_pretty": 6,
    "quote_literal": 2,
    "quote_ident": 2,
    "quote_nullable": 2,
    "xmlelement": 6,
    "xmlforest": 6,
    "xmlconcat": 2,
    "string_to_array": 16,
    "regexp_split_to_array": 16,
    "regexp_matches": 16,
    "convert": 4,
    "convert_to": 4,
    "convert_from": 4,
    # reviewed: at most this many times their arguments (a sum, a part, a re-encoding of them)
    **dict.fromkeys(
        (
            "abbrev anytextcat array_append array_cat array_dims array_larger array_prepend array_remove "
            "array_smaller bitand bitcat bitnot bitor bitshiftleft bitshiftright bitxor bpchar_larger "
            "bpchar_smaller btrim byteacat cash_words chr col_description concat current_query current_schemas "
            "current_setting daterange datemultirange decode enum_range format_type host initcap int4range "
            "int4multirange int8range int8multirange json_array_element json_array_element_text "
            "json_extract_path json_extract_path_text json_object_field json_object_field_text json_strip_nulls "
            "json_typeof jsonb_array_element jsonb_array_element_text jsonb_concat jsonb_delete jsonb_delete_path "
            "jsonb_extract_path jsonb_extract_path_text jsonb_insert jsonb_object_field jsonb_object_field_text "
            "jsonb_set jsonb_set_lax jsonb_strip_nulls jsonb_typeof left lower ltrim md5 multirange "
            "multirange_intersect multirange_minus multirange_union nummultirange numrange obj_description "
            "oidvectortypes overlay parse_ident range_intersect range_merge range_minus range_union "
            "regexp_substr reverse right rtrim set_bit set_byte setweight sha224 sha256 sha384 sha512 "
            "shobj_description split_part strip substr substring text text_larger text_smaller textcat "
            "timeofday to_ascii trim_array tsmultirange tsquery_and tsquery_not tsquery_or tsquery_phrase "
            "tsrange tstzmultirange tstzrange tsvector_concat unistr upper version xml xmlcomment xmlconcat2 "
            "ts_delete ts_filter ts_lexize json_to_record jsonb_to_record txid_current_snapshot"
        ).split(),
        1,
    ),
    **dict.fromkeys(("array_positions", "to_char", "to_hex", "to_tsvector", "tsvector_to_array"), 4),
    **dict.fromkeys(("to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery"), 4),
    **dict.fromkeys(("json_to_tsvector", "jsonb_to_tsvector", "array_to_tsvector", "ts_headline"), 4),
    **dict.fromkeys(("like_escape", "similar_escape", "similar_to_escape"), 2),
    "normalize": 18,  # one code point decomposes into at most 18 (NFKD of U+FDFA)
}
_UNBOUNDED: Final = _CAP
_PG_PADDED: Final = frozenset({"bpchar", "char", "character", "bit"})
_PG_NOT_CONSTANT: Final = (pg.ColumnRef, pg.SubLink, pg.ParamRef, pg.SelectStmt, pg.RangeVar)
_WIDTH: Final = re.compile(r"%(?:\d+\$)?-?(\d+|\*)")


def _pg_folded_calls(root: pg.Node) -> dict[int, int]:
    """Bound, per call of constants the planner folds, the bytes of its result (by node id).

    Post-order over the tree: a node's bound is known once its children's are; a column, a sub-query or a
    parameter makes everything above it non-constant (never folded while planning).
    """
    size: dict[int, int | None] = {}  # node id → bound of its value's bytes, None: not a constant
    calls: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, done = stack.pop()
        if isinstance(value, tuple | list):
            stack.extend((item, False) for item in value if item is not None)
            continue
        if not isinstance(value, pg.Node):
            continue
        if not done:
            stack.append((value, True))
            stack.extend((child, False) for _, child in _pg_children(value))
            continue
        if isinstance(value, _PG_NOT_CONSTANT):
            size[id(value)] = None
            continue
        if isinstance(value, pg.A_Const):
            literal = _pg_literal(value)
            size[id(value)] = len(literal.encode()) if isinstance(literal, str) else 16
            continue
        children = [_pg_size(child, size) for _, child in _pg_children(value)]
        if any(child is None for child in children):
            size[id(value)] = None
            continue
        total = min(_CAP, sum(c for c in children if c is not None) + 16)
        if isinstance(value, pg.TypeCast):
            # a fixed-length type pads the value to its length: 'x'::char(10485760), B'1'::bit(83886080)
            type_name = value.typeName
            padded = type_name is not None and _pg_name((type_name.names or ("",))[-1]) in _PG_PADDED
            typmods = type_name.typmods if type_name is not None and padded else None
            length = max((_pg_int(m) or 0 for m in typmods or ()), default=0)
            if length:
                calls[id(value)] = size[id(value)] = min(_CAP, total + 4 * length)
                continue
        call = value if isinstance(value, pg.FuncCall) and value.funcname else None
        name = _pg_name((call.funcname or ("",))[-1]) if call is not None else ""
        if call is not None and _pg_not_folded(call, name):
            size[id(value)] = None  # an aggregate, a window function, a set: not evaluated while planning
        elif call is not None and (name in _PG_SIZED or name in _PG_GROWING or name in VARIABLE_SIZE):
            # what it builds is counted: by a reviewed bound, else unbounded (a built-in whose result can
            # be of any size: jsonb_path_query_array of constants grows exponentially with its path).
            # Any other call of constants (a fixed-size result, a routine of the database) builds no more
            # than its arguments.
            bound = _pg_call_bound(name, list(call.args or ()), size, total)
            calls[id(value)] = bound
            size[id(value)] = bound
        else:
            size[id(value)] = total
    return calls


_INLINE_ROUNDS: Final = 3  # a constant column defined by another one: (SELECT n FROM (SELECT 1 AS n) a) b


def _pg_inline_constants(root: pg.Node, seed: Mapping[str, Any] | None = None) -> pg.Node:
    """A copy of the tree where each column of a derived table, CTE, one-row VALUES or function in FROM whose
    value is a constant is that constant; the tree itself when there is none.

    Conservative where names cannot tell: columns are matched by name alone (a table's column of the same name
    counts as the constant too), of several constants with one name the largest counts, an unnamed output has
    the name PostgreSQL gives it (``?column?``, the function's or the type's), and a column of a ``SELECT *``
    renamed by an alias list is the largest constant below it: never less than the planner may build.
    """
    tree = root
    for _ in range(_INLINE_ROUNDS):
        outputs: dict[str, Any] = dict(seed or {})
        for name, expr in _pg_outputs(tree):
            if _pg_constant(expr) and (name not in outputs or _pg_weight(expr) > _pg_weight(outputs[name])):
                outputs[name] = expr
        if not outputs or not _pg_replace(tree, outputs, dry=True):
            return tree
        tree = copy.deepcopy(tree)
        _pg_replace(tree, outputs, dry=False)
    return tree


def pg_view_outputs(view: pg.Node, seed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The constant columns a reader of a view sees (name → constant expression), its own derived tables'
    and ``seed``'s (the constant columns of the views it reads) inlined first."""
    inlined = _pg_inline_constants(view, seed)
    out: dict[str, Any] = {}
    if isinstance(inlined, pg.SelectStmt) and isinstance(view, pg.SelectStmt):
        # named as written (an inlined column keeps its name: SELECT p.n FROM params p is still n)
        for written, target in zip(view.targetList or (), inlined.targetList or (), strict=False):
            if isinstance(target, pg.ResTarget) and target.val is not None and _pg_constant(target.val):
                name = (target.name or _pg_implicit_name(getattr(written, "val", None))).lower()
                if name not in out or _pg_weight(target.val) > _pg_weight(out[name]):
                    out[name] = target.val
    return out


def merge_outputs(*many: Mapping[str, Any]) -> dict[str, Any]:
    """Constant columns by name from several relations: of two with one name, the larger counts (pglast or
    sqlglot expressions)."""
    out: dict[str, Any] = {}
    for outputs in many:
        for name, expr in outputs.items():
            if name not in out or _weight(expr) > _weight(out[name]):
                out[name] = expr
    return out


def settle_view_outputs(
    reads: Mapping[_Key, Iterable[_Key]],
    outputs_of: Callable[[_Key, Mapping[str, Any]], Mapping[str, Any]],
) -> dict[_Key, tuple[dict[str, Any], dict[str, Any]]]:
    """Per view (a key of ``reads``, which maps it to the views it reads): the constant columns of the views it
    reads, transitively, by name (its seed: what to measure its definition with), and its own constant columns,
    ``outputs_of(view, seed)`` (:func:`pg_view_outputs`, :func:`glot_view_outputs`). Each view is settled after
    the views it reads, so a constant renamed by a view of a view of it is still that constant; a cycle (which
    the engines refuse to create) is cut."""
    out: dict[_Key, tuple[dict[str, Any], dict[str, Any]]] = {}
    active: set[_Key] = set()
    for start in reads:
        # Iterative post-order: a view may read a long chain of views.
        stack: list[tuple[_Key, bool]] = [(start, False)]
        while stack:
            key, expanded = stack.pop()
            if key in out:
                continue
            if expanded:
                below = [part for read in reads.get(key, ()) if read in out for part in out[read]]
                seed = merge_outputs(*below)
                out[key] = (seed, dict(outputs_of(key, seed)))
                active.discard(key)
            elif key not in active:
                active.add(key)
                stack.append((key, True))
                stack.extend(
                    (r, False) for r in reads.get(key, ()) if r in reads and r not in out and r not in active
                )
    return out


def _weight(expr: Any) -> float:
    return _glot_weight(expr) if isinstance(expr, exp.Expr) else _pg_weight(expr)


def _pg_weight(expr: Any) -> float:
    """How large a constant may make what is built from it: an integer's value, a text's length, else any."""
    literal = _pg_literal(expr)
    if isinstance(literal, int):
        return literal
    if isinstance(literal, str):
        return _pg_int(expr) or len(literal)
    return math.inf


def _pg_implicit_name(expr: Any) -> str:
    """The name PostgreSQL gives an output column written without one (FigureColname)."""
    if isinstance(expr, pg.ColumnRef) and expr.fields and isinstance(expr.fields[-1], pg.String):
        return _pg_name(expr.fields[-1])
    if isinstance(expr, pg.FuncCall) and expr.funcname:
        return _pg_name(expr.funcname[-1])
    if isinstance(expr, pg.TypeCast) and expr.typeName is not None and expr.typeName.names:
        return _pg_name(expr.typeName.names[-1])
    return "?column?"


def _pg_outputs(root: pg.Node) -> Iterator[tuple[str, Any]]:
    for value in _pg_walk(root):
        query: Any = None
        names: tuple[Any, ...] = ()
        if isinstance(value, pg.RangeSubselect):
            query, names = value.subquery, tuple(value.alias.colnames or ()) if value.alias else ()
        elif isinstance(value, pg.CommonTableExpr):
            query, names = value.ctequery, tuple(value.aliascolnames or ())
        elif isinstance(value, pg.RangeFunction) and value.alias is not None:
            # FROM int4(100000000) AS n: a scalar function's one column is named by the alias (or its list)
            calls = [
                item[0]
                for item in value.functions or ()
                if isinstance(item, tuple | list)
                and item
                # a set-returning function runs when the query does, not while it is planned
                and not (
                    isinstance(item[0], pg.FuncCall)
                    and _pg_not_folded(item[0], _pg_name((item[0].funcname or ("",))[-1]))
                )
            ]
            labels = [_pg_name(n) for n in value.alias.colnames or ()] or [value.alias.aliasname or ""]
            yield from ((label, call) for label, call in zip(labels, calls, strict=False) if label)
            continue
        if not isinstance(query, pg.SelectStmt):
            continue
        if query.valuesLists and len(query.valuesLists) == 1:
            row = list(query.valuesLists[0])
            yield from ((_pg_name(n), e) for n, e in zip(names, row, strict=False))
        targets = [t for t in query.targetList or () if isinstance(t, pg.ResTarget)]
        if names and any(isinstance(t.val, pg.ColumnRef) and _pg_star(t.val) for t in targets):
            # (SELECT * FROM …) AS b(m): which constant m renames is not read here; the largest below counts
            below = [e for _, e in _pg_outputs(query) if _pg_constant(e)]
            if below:
                largest = max(below, key=_pg_weight)
                yield from ((_pg_name(n), largest) for n in names)
        for i, target in enumerate(targets):
            if target.val is not None:
                name = (
                    _pg_name(names[i]) if i < len(names) else (target.name or _pg_implicit_name(target.val))
                )
                yield name.lower(), target.val


def _pg_star(ref: pg.ColumnRef) -> bool:
    return any(isinstance(field, pg.A_Star) for field in ref.fields or ())


def _pg_walk(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, tuple | list):
            stack.extend(item for item in value if item is not None)
        elif isinstance(value, pg.Node):
            yield value
            stack.extend(child for _, child in _pg_children(value))


def _pg_constant(expr: Any) -> bool:
    return not any(isinstance(node, _PG_NOT_CONSTANT) for node in _pg_walk(expr))


def _pg_replace(root: pg.Node, outputs: dict[str, Any], *, dry: bool) -> bool:
    """Replace (in place) the column references named in ``outputs``; tell whether there was any."""
    found = False
    for node in list(_pg_walk(root)):
        for attribute, child in _pg_children(node):
            if isinstance(child, tuple):
                items = [_pg_column_value(item, outputs) for item in child]
                if any(new is not None for new in items):
                    found = True
                    if not dry:
                        fresh = tuple(
                            old if new is None else copy.deepcopy(new)
                            for old, new in zip(child, items, strict=True)
                        )
                        setattr(node, attribute, fresh)
            elif (new := _pg_column_value(child, outputs)) is not None:
                found = True
                if not dry:
                    setattr(node, attribute, copy.deepcopy(new))
    return found


def _pg_column_value(node: Any, outputs: dict[str, Any]) -> Any:
    if isinstance(node, pg.ColumnRef) and node.fields and isinstance(node.fields[-1], pg.String):
        return outputs.get(_pg_name(node.fields[-1]))
    return None


def _pg_size(child: Any, size: dict[int, int | None]) -> int | None:
    if isinstance(child, tuple | list):
        parts = [_pg_size(item, size) for item in child if item is not None]
        if any(part is None for part in parts):
            return None
        return min(_CAP, sum(p for p in parts if p is not None))
    if isinstance(child, pg.Node):
        return size.get(id(child), 0)
    return 0


def _pg_not_folded(call: pg.FuncCall, name: str) -> bool:
    aggregate = (
        call.agg_star or call.agg_distinct or call.agg_order or call.agg_filter or call.agg_within_group
    )
    return bool(aggregate or call.over is not None or name in NOT_FOLDED)


def _times_literal(count_node: Any, unit: int, total: int) -> int:
    count = _pg_int(count_node)
    return _UNBOUNDED if count is None else min(_CAP, total + unit * max(count, 0))


def _pg_name(node: Any) -> str:
    return str(getattr(node, "sval", "") or "").lower()


def _pg_literal(node: Any) -> str | int | None:
    """The value of a literal (through casts): a string or an integer, else None."""
    while isinstance(node, pg.TypeCast):
        node = node.arg
    if isinstance(node, pg.A_Const) and not node.isnull:
        value = node.val
        if isinstance(value, pg.Integer):
            return int(value.ival or 0)
        if isinstance(value, pg.String):
            return str(value.sval)
    return None


def _char_bytes(literal: str | int | None) -> int:
    if not isinstance(literal, str):
        return 4  # not a literal string: any character
    return max((len(c.encode()) for c in literal), default=1)


def _pg_int(node: Any) -> int | None:
    literal = _pg_literal(node)
    if isinstance(literal, str) and literal.strip().lstrip("-").isdigit():
        return int(literal)
    return literal if isinstance(literal, int) else None


def _pg_call_bound(name: str, args: list[Any], size: dict[int, int | None], total: int) -> int:
    """Bound the bytes of a constant call's result from its arguments; unbounded when they cannot tell."""
    sizes = [_pg_size(arg, size) or 0 for arg in args]
    if name in _PG_GROWING:
        return min(_CAP, total * _PG_GROWING[name] + 64)
    if name in ("bpchar", "bit") and len(args) >= 2:
        return _times_literal(args[1], 4, total)  # the cast functions: bpchar(text, length, explicit)
    if name == "concat_ws" and args:
        return min(_CAP, total + sizes[0] * len(args))  # the separator between every two values
    if name == "array_replace" and len(args) >= 3:
        return min(_CAP, total + (sizes[0] + 1) * sizes[2])
    if name == "array_to_string" and len(args) >= 2:
        return min(_CAP, total + (sizes[0] + 1) * sum(sizes[1:]))
    if name == "regexp_match" and len(args) >= 2:
        return min(_CAP, total + (sizes[1] + 1) * sizes[0])  # each group of the pattern: up to the text
    if name not in _PG_SIZED:
        return _UNBOUNDED
    if name == "repeat" and len(args) == 2:
        return _times_literal(args[1], sizes[0], total)
    if name in ("lpad", "rpad") and len(args) >= 2:
        # `length` characters, of the text and the fill: as many bytes as their widest character (4 unknown)
        parts = [_pg_literal(args[0]), _pg_literal(args[2]) if len(args) > 2 else " "]
        return _times_literal(args[1], max(_char_bytes(part) for part in parts), total)
    if name == "array_fill" and len(args) >= 2:
        dims = args[1]
        while isinstance(dims, pg.TypeCast):
            dims = dims.arg
        if isinstance(dims, pg.A_ArrayExpr):
            counts = [_pg_int(e) for e in dims.elements or ()]
        else:
            text = _pg_literal(dims)
            cells_text = text.strip("{}").split(",") if isinstance(text, str) else ["?"]
            counts = [int(p) if p.strip().isdigit() else None for p in cells_text]
        if not counts or any(c is None for c in counts):
            return _UNBOUNDED
        cells = 1
        for count in counts:
            cells = min(_CAP, cells * max(count or 0, 0))
        return min(_CAP, total + cells * (sizes[0] + 8))
    if name in ("replace", "regexp_replace") and len(args) >= 3:
        # every position of the text may be replaced (a pattern that matches the empty string)
        return min(_CAP, total + (sizes[0] + 1) * sizes[2])
    if name == "format" and args:
        template = _pg_literal(args[0])
        if not isinstance(template, str):
            return _UNBOUNDED
        width = 0
        for match in _WIDTH.finditer(template):
            if match.group(1) == "*":
                return _UNBOUNDED  # the width is an argument: say so by refusing to guess
            width = min(_CAP, width + int(match.group(1)))
        return min(_CAP, 2 * total + 4 * width)  # %L doubles quotes
    return _UNBOUNDED


def _reference(blocks: list[_Block], owner: int, target: int | None, query: int) -> None:
    if target is None:
        return
    blocks[owner].refs.append((target, query - blocks[owner].base))
    blocks[target].referenced += 1
    if target == owner:
        blocks[target].recursive = True


# --- other dialects (sqlglot) ----------------------------------------------------------------------

_GLOT_RELATION_NODES: Final = (exp.Subquery, exp.Lateral, exp.Unnest)


def _glot_from_items(select: exp.Select) -> int:
    count = 1 if select.args.get("from_") is not None else 0
    return count + len(select.args.get("joins") or ()) + len(select.args.get("laterals") or ())


# The same bound on other engines (DuckDB folds constants while planning, in the service's own process).
_GLOT_NOT_CONSTANT: Final = (exp.Column, exp.Subquery, exp.Select, exp.Placeholder, exp.Parameter, exp.Table)
_GLOT_GROWING: Final = {
    "to_json": 6,
    "json_quote": 6,
    "json_object": 6,
    "json_array": 6,
    "to_base64": 2,
    "base64": 2,
    "hex": 2,
    "to_hex": 2,
    "quote": 2,
    "translate": 4,
    "row_to_json": 6,
    "array_to_json": 6,
    "json_pretty": 6,
    "bin": 8,
    "regexp_escape": 2,
    "strftime": 4,
    "nfc_normalize": 3,
    **dict.fromkeys(("lower", "upper", "lcase", "ucase"), 3),  # a case mapping may lengthen a character
    **dict.fromkeys(
        ("string_split", "str_split", "split", "string_split_regex", "regexp_split_to_array"), 16
    ),
    **dict.fromkeys(("regexp_extract_all", "array_grade_up", "list_grade_up", "grade_up"), 16),
    # reviewed: no more than their arguments (a part, a sum, a reordering of them)
    **dict.fromkeys(
        (
            "array_cat array_concat list_cat list_concat array_distinct list_distinct array_extract "
            "list_extract list_element element_at array_slice list_slice array_sort list_sort "
            "array_reverse_sort list_reverse_sort array_value list_value list_pack array_intersect "
            "list_intersect array_zip list_zip flatten chr concat current_database current_query "
            "current_schema current_schemas current_setting date_part datepart dayname monthname decode encode "
            "enum_code enum_first enum_last enum_range enum_range_boundary from_base64 from_hex from_binary "
            "unhex greatest least left right left_grapheme right_grapheme ltrim rtrim trim md5 sha1 sha256 "
            "overlay parse_dirname parse_dirpath parse_filename parse_path path_join regexp_extract reverse "
            "row struct_pack map map_concat map_entries map_extract map_extract_value map_from_entries "
            "map_keys map_values json_extract json_extract_path json_extract_path_text json_extract_string "
            "json_value json_keys json_type json_merge_patch json_strip_nulls substring substr typeof "
            "array_append list_append array_prepend list_prepend list_reverse array_reverse"
        ).split(),
        1,
    ),
}
_GLOT_RANDOM: Final = frozenset(
    {
        "randomstring",
        "randomfixedstring",
        "randomprintableascii",
        "randomstringutf8",
        "randomblob",
        "zeroblob",
    }
)
_GLOT_REPLACE: Final = frozenset({"replaceall", "replaceregexpall", "replaceone", "replaceregexpone"})
_DIGITS: Final = re.compile(r"\d+")


def _glot_int(node: Any) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        return int(node.this)
    if isinstance(node, exp.Cast | exp.Paren | exp.Subquery):
        return _glot_int(node.this)
    if _glot_scalar_of_constants(node):  # (SELECT 16000000): the same value
        return _glot_int(node.expressions[0])
    return None


def _glot_scalar_of_constants(node: Any) -> bool:
    """A SELECT of one expression with no FROM: the engines evaluate it while planning, like the expression."""
    return (
        isinstance(node, exp.Select)
        and len(node.expressions) == 1
        and not any(node.args.get(k) for k in ("from_", "joins", "where", "group", "having", "with_"))
    )


def _glot_folded_calls(root: exp.Expr, dialect: str = "") -> dict[int, int]:
    """Bound, per call of constants an engine may fold while planning, the bytes of its result (by node id)."""
    size: dict[int, int | None] = {}
    calls: dict[int, int] = {}
    # breadth-first, then backwards: every node after all of its descendants
    for node in reversed(list(root.walk(bfs=True))):
        inner = node.this if isinstance(node, exp.Subquery) else node
        if isinstance(node, exp.Subquery | exp.Select) and _glot_scalar_of_constants(inner):
            # (SELECT <constant>) is a constant too: MariaDB and DuckDB evaluate it while planning
            size[id(node)] = size.get(id(inner.expressions[0]))
            continue
        if isinstance(node, _GLOT_NOT_CONSTANT) or (
            isinstance(node, exp.GenerateSeries) and isinstance(node.parent, exp.Table | exp.From)
        ):
            size[id(node)] = None
            continue
        if isinstance(node, exp.Literal):
            size[id(node)] = len(str(node.this).encode()) if node.is_string else 16
            continue
        children = [size.get(id(child), 0) for child in node.iter_expressions()]
        if any(child is None for child in children):
            size[id(node)] = None
            continue
        total = min(_CAP, sum(c for c in children if c is not None) + 16)
        bound = _glot_call_bound(node, size, total, dialect) if isinstance(node, exp.Func) else None
        if bound is not None:
            calls[id(node)] = bound
        size[id(node)] = total if bound is None else bound
    return calls


def _glot_inline_constants(root: exp.Expr, seed: Mapping[str, exp.Expr] | None = None) -> exp.Expr:
    """The sqlglot counterpart of :func:`_pg_inline_constants` (an unnamed output is named by its text)."""
    tree = root
    for _ in range(_INLINE_ROUNDS):
        outputs: dict[str, exp.Expr] = dict(seed or {})
        for name, expr in _glot_outputs(tree):
            if _glot_constant(expr) and (
                name not in outputs or _glot_weight(expr) > _glot_weight(outputs[name])
            ):
                outputs[name] = expr
        columns = [c for c in tree.find_all(exp.Column) if c.name.lower() in outputs]
        if not columns:
            return tree
        tree = tree.copy()
        for column in [c for c in tree.find_all(exp.Column) if c.name.lower() in outputs]:
            column.replace(outputs[column.name.lower()].copy())
    return tree


def glot_view_outputs(
    view: exp.Expr, seed: Mapping[str, exp.Expr] | None = None, columns: Sequence[str] = ()
) -> dict[str, exp.Expr]:
    """The sqlglot counterpart of :func:`pg_view_outputs`: the constant columns a reader of a view sees (name →
    constant expression), its own derived tables' and ``seed``'s (the views it reads) inlined first.

    ``columns``: the view's column list (``CREATE VIEW v (m) AS …``), which renames its outputs. An output is
    named as the engines name it (its alias, a column's name, else its text: DuckDB's ``"100000007"``); a
    ``*`` renamed by a column list counts the largest constant below it (seed included), as in a derived table.
    """
    if not isinstance(view, exp.Select):
        return {}  # a set operation's columns are not constants of the reader's
    inlined = _glot_inline_constants(view, seed)
    if not isinstance(inlined, exp.Select) or len(inlined.expressions) != len(view.expressions):
        return {}
    names = [c.lower() for c in columns]
    out: dict[str, exp.Expr] = {}
    if names and any(isinstance(p, exp.Star) or p.is_star for p in view.expressions):
        below = [
            e for e in (*(seed or {}).values(), *(e for _, e in _glot_outputs(inlined))) if _glot_constant(e)
        ]
        if below:
            largest = max(below, key=_glot_weight)
            out.update(dict.fromkeys(names, largest))
        return out
    for i, (written, projection) in enumerate(zip(view.expressions, inlined.expressions, strict=True)):
        if isinstance(written, exp.Star) or written.is_star:
            continue  # the columns of what it reads: in the seed already, by their names
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if not _glot_constant(value):
            continue
        name = names[i] if i < len(names) else _glot_implicit_name(written)
        if name not in out or _glot_weight(value) > _glot_weight(out[name]):
            out[name] = value
    return out


def _glot_implicit_name(projection: exp.Expr) -> str:
    if projection.alias:
        return projection.alias.lower()
    if isinstance(projection, exp.Column):
        return projection.name.lower()
    return projection.sql().lower()


def _glot_weight(expr: exp.Expr) -> float:
    value = _glot_int(expr)
    if value is not None:
        return value
    if isinstance(expr, exp.Literal) and expr.is_string:
        return len(str(expr.this))
    return math.inf


def _glot_outputs(root: exp.Expr) -> Iterator[tuple[str, exp.Expr]]:
    for source in root.find_all(exp.Subquery, exp.CTE):
        query = source.this
        alias = source.args.get("alias")
        names = [c.name.lower() for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
        if isinstance(query, exp.Values) and len(query.expressions) == 1:
            row = query.expressions[0]
            yield from zip(names, row.expressions if isinstance(row, exp.Tuple) else [row], strict=False)
        elif isinstance(query, exp.Select):
            if names and any(isinstance(p, exp.Star) or p.is_star for p in query.expressions):
                # (SELECT * FROM …) AS b(m): which constant m renames is not read here; the largest below counts
                below = [e for _, e in _glot_outputs(query) if _glot_constant(e)]
                if below:
                    largest = max(below, key=_glot_weight)
                    yield from ((n, largest) for n in names)
            for i, projection in enumerate(query.expressions):
                value = projection.this if isinstance(projection, exp.Alias) else projection
                if isinstance(value, exp.Column | exp.Star):
                    continue
                # an unnamed output is named by its text (DuckDB: the column "100000000")
                name = names[i] if i < len(names) else (projection.alias or value.sql()).lower()
                yield name, value
    for values in root.find_all(exp.Values):  # FROM (VALUES (…)) AS v(n): the alias sits on the VALUES
        alias = values.args.get("alias")
        if isinstance(alias, exp.TableAlias) and len(values.expressions) == 1:
            row = values.expressions[0]
            cells = row.expressions if isinstance(row, exp.Tuple) else [row]
            yield from zip((c.name.lower() for c in alias.columns), cells, strict=False)


def _glot_constant(expr: exp.Expr) -> bool:
    return not any(isinstance(node, _GLOT_NOT_CONSTANT) for node in expr.walk())


def _glot_call_bound(node: exp.Func, size: dict[int, int | None], total: int, dialect: str) -> int | None:
    """Bound what a call of constants builds, for the functions whose result can outgrow their arguments."""

    def of(arg: Any) -> int:
        return (size.get(id(arg)) or 0) if isinstance(arg, exp.Expr) else 0

    def times(arg: Any, unit: int) -> int:
        count = _glot_int(arg)
        return _UNBOUNDED if count is None else min(_CAP, total + unit * count)

    name = node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()
    args = list(node.expressions) if isinstance(node, exp.Anonymous) else []
    if isinstance(node, exp.Repeat):
        return times(node.args.get("times"), of(node.this))
    if isinstance(node, exp.GenerateSeries):  # range(n), generate_series(a, b[, step]) as a list value
        start, end = _glot_int(node.args.get("start")), _glot_int(node.args.get("end"))
        step = _glot_int(node.args.get("step")) if node.args.get("step") is not None else 1
        bounds = [v for v in (start, end) if v is not None]
        if len(bounds) != len([k for k in ("start", "end") if node.args.get(k) is not None]) or not step:
            return _UNBOUNDED
        return min(_CAP, total + 16 * (abs(max(bounds) - min(bounds, default=0)) // step + 1))
    if name in ("list_resize", "array_resize") and len(args) >= 2:
        return times(args[1], of(args[0]) + 8)
    if isinstance(node, exp.Pad):
        return times(node.expression, 4)
    if isinstance(node, exp.Space):
        return times(node.this, 1)
    if isinstance(node, exp.Replace | exp.RegexpReplace):
        return min(_CAP, total + (of(node.this) + 1) * of(node.args.get("replacement")))
    if name in _GLOT_REPLACE and len(args) >= 3:
        return min(_CAP, total + (of(args[0]) + 1) * of(args[2]))
    if name == "arraywithconstant" and len(args) >= 2:
        return times(args[0], of(args[1]) + 8)
    if name in _GLOT_RANDOM and args:
        return times(args[0], 4)
    if name in ("printf", "format", "sformat") or isinstance(node, exp.Format):
        template = node.this if isinstance(node, exp.Format) else (args[0] if args else None)
        if not (isinstance(template, exp.Literal) and template.is_string):
            return _UNBOUNDED
        # every number in the template may be a width: conservative, and exact for '%9d' / '{:>9}'
        widths = sum(int(n) for n in _DIGITS.findall(str(template.this)))
        return min(_CAP, 2 * total + 4 * widths)
    if name in _GLOT_GROWING:
        return min(_CAP, total * _GLOT_GROWING[name])
    lambdas = [arg for arg in node.iter_expressions() if isinstance(arg, exp.Lambda)]
    if lambdas:
        # a lambda over a constant list runs once per element: list_transform(range(n), lambda x: …)
        values = sum(of(arg) for arg in node.iter_expressions() if not isinstance(arg, exp.Lambda))
        return min(_CAP, total + (values + 1) * (sum(of(arg) for arg in lambdas) + 16))
    if dialect == "duckdb" and name in DUCKDB_VARIABLE_SIZE:
        return _UNBOUNDED  # a result of any size, and no reviewed bound
    return None


def measure_sqlglot(root: exp.Expr, dialect: str, outputs: Mapping[str, exp.Expr] | None = None) -> Measures:
    """Measure a sqlglot statement tree for a dialect (iteratively).

    ``outputs``: constant columns of relations the statement reads that are not in its text (the views it
    reads, by column name: :func:`glot_view_outputs`), counted like its own derived tables' constants.
    """
    folded = _glot_folded_calls(root, dialect)
    inlined = _glot_inline_constants(root, outputs)
    pulled_up = sum(_glot_folded_calls(inlined, dialect).values()) if inlined is not root else 0
    blocks = [_Block()]
    depth = from_items = 0
    stack: list[tuple[exp.Expr, int, _Scope, int, int]] = [(root, 0, _Scope({}), 1, 0)]
    while stack:
        node, owner, scope, level, query = stack.pop()
        block = blocks[owner]
        block.nodes += 1
        depth = max(depth, level)
        if id(node) in folded:
            block.constant_bytes = min(_CAP, block.constant_bytes + folded[id(node)])
        if isinstance(node, exp.Select | exp.SetOperation):
            query += 1
            block.query_depth = max(block.query_depth, query - block.base)
        if isinstance(node, exp.Select):
            from_items = max(from_items, _glot_from_items(node))
        if isinstance(node, exp.SetOperation):
            for side in (node.this, node.expression):
                if isinstance(side, exp.Select):
                    block.relations += 1
        body_scope = scope
        clause = node.args.get("with_")
        if isinstance(clause, exp.With):
            ctes = [cte for cte in clause.expressions if isinstance(cte, exp.CTE)]
            first = len(blocks)
            body_scope, cte_scopes = scope.clause(
                [cte.alias_or_name.lower() for cte in ctes], first, bool(clause.args.get("recursive"))
            )
            for cte, cte_scope in zip(ctes, cte_scopes, strict=True):
                blocks.append(_Block(nodes=2, inline=cte.args.get("materialized") is False, base=query))
                if isinstance(cte.this, exp.Expr):
                    stack.append((cte.this, len(blocks) - 1, cte_scope, level + 2, query))
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            block.relations += 1
            if not node.args.get("db"):
                _reference(blocks, owner, scope.find(node.name.lower()), query)
        elif isinstance(node, _GLOT_RELATION_NODES):
            block.relations += 1
        branches = (node.this, node.expression) if isinstance(node, exp.SetOperation) else ()
        for child in node.iter_expressions():
            if child is not clause:
                same_level = any(child is branch for branch in branches)
                stack.append((child, owner, body_scope, level + 1, query - 1 if same_level else query))
    total = _combine(blocks, _inline_rule(blocks, dialect))
    constant = max(total.constant_bytes, pulled_up)
    return Measures(total.nodes, total.relations, depth, from_items, total.query_depth, constant)
