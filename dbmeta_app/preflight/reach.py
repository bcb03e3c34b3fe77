"""What a parsed query reaches by name: functions, operators, casts and relations, for the routine policy.

Pure: no I/O. The guard calls these on the tree of the statement it will send, and keeps the result in its
verdict; ``preflight/routines.py`` later resolves the names against the live catalog. Everything is collected
conservatively (a name that might be a call is reported as one): the resolver, not this module, decides.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import sqlglot
from pglast import ast as pg
from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

__all__ = [
    "IMPLICIT_OPERATORS",
    "PG_WORD_OPERATORS",
    "Name",
    "Reach",
    "called_names",
    "mysql_reach",
    "postgres_reach",
]

#: Operators a query uses without writing them: joins (USING/NATURAL), IN, CASE, GROUP BY, ORDER BY,
#: DISTINCT, UNION, min/max, window partitions all compare with the types' default operators.
IMPLICIT_OPERATORS: Final = ("=", "<>", "<", ">", "<=", ">=")

# pglast spells BETWEEN and friends as words; they compare with these operators.
PG_WORD_OPERATORS: Final[dict[str, tuple[str, ...]]] = {
    "BETWEEN": (">=", "<="),
    "NOT BETWEEN": ("<", ">"),
    "BETWEEN SYMMETRIC": (">=", "<="),
    "NOT BETWEEN SYMMETRIC": ("<", ">"),
}
_WORD: Final = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@dataclass(frozen=True, slots=True, order=True)
class Name:
    """A possibly schema-qualified name as written (PostgreSQL: already case-folded by the parser)."""

    schema: str | None
    name: str
    quoted: bool = False  # MySQL: written in backquotes (a quoted name is never a keyword)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class Reach:
    """The names one query reaches; resolved against the catalog by the routine policy."""

    functions: tuple[Name, ...] = ()  # called by name: functions, aggregates, windows, TABLESAMPLE methods
    attributes: tuple[str, ...] = ()  # a field after a dot: a column, or a one-argument function (t.fn)
    operators: tuple[Name, ...] = ()  # written operator symbols (schema only in OPERATOR(s.op))
    types: tuple[Name, ...] = ()  # types cast to: CAST, ::, typed literals, column definition lists
    relations: tuple[Name, ...] = ()  # tables and views read (references to a CTE in scope excluded)
    aliases: tuple[str, ...] = ()  # column names the query defines itself (output names, alias lists)


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


# --- PostgreSQL (pglast) ---------------------------------------------------------------------------


def _pg_string(node: object) -> str | None:
    return node.sval if isinstance(node, pg.String) and node.sval is not None else None


def _pg_name(parts: Iterable[object] | None) -> Name | None:
    """Turn a pglast name list into a Name (a leading catalog name is dropped: it must be this database)."""
    names = [_pg_string(part) for part in parts or ()]
    if not names or any(name is None for name in names) or len(names) > 3:
        return None
    clean = [name for name in names if name is not None]
    return Name(clean[-2] if len(clean) >= 2 else None, clean[-1])


def _pg_children(node: pg.Node, skip: str | None = None) -> Iterator[Any]:
    for attribute in node:
        if attribute == skip:
            continue
        value = getattr(node, attribute, None)
        if isinstance(value, pg.Node | tuple | list):
            yield value


def postgres_reach(root: pg.Node | None) -> Reach:
    """Collect what a pglast statement reaches by name, with CTE names resolved by their scope."""
    functions: list[Name] = []
    attributes: list[str] = []
    operators: list[Name] = []
    types: list[Name] = []
    relations: list[Name] = []
    aliases: list[str] = []
    # Iterative: a deep tree must not overflow the stack. Each item carries the CTE names visible there.
    stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())]
    while stack:
        item, ctes = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend((child, ctes) for child in item)
            continue
        if not isinstance(item, pg.Node):
            continue
        if isinstance(item, pg.SelectStmt) and item.withClause is not None:
            with_clause = item.withClause
            entries = [cte for cte in with_clause.ctes or () if isinstance(cte, pg.CommonTableExpr)]
            names = [cte.ctename for cte in entries if cte.ctename]
            for index, cte in enumerate(entries):
                # A CTE sees the ones before it; a RECURSIVE list sees all of them (itself included).
                visible = names if with_clause.recursive else names[:index]
                stack.append((cte, ctes | frozenset(visible)))
            stack.extend((child, ctes | frozenset(names)) for child in _pg_children(item, skip="withClause"))
            continue
        _pg_collect(item, ctes, functions, attributes, operators, types, relations, aliases)
        stack.extend((child, ctes) for child in _pg_children(item))
    return Reach(
        functions=_unique(functions),
        attributes=_unique(attributes),
        operators=_unique(operators),
        types=_unique(types),
        relations=_unique(relations),
        aliases=_unique(aliases),
    )


def _pg_collect(
    node: pg.Node,
    ctes: frozenset[str],
    functions: list[Name],
    attributes: list[str],
    operators: list[Name],
    types: list[Name],
    relations: list[Name],
    aliases: list[str],
) -> None:
    if isinstance(node, pg.RangeVar) and node.relname:
        if not node.schemaname and node.relname in ctes:
            return
        relations.append(Name(node.schemaname or None, node.relname))
    elif isinstance(node, pg.FuncCall):
        name = _pg_name(node.funcname)
        if name is not None:
            functions.append(name)
            types.append(name)  # `typename(x)` is a cast when no function has that name
    elif isinstance(node, pg.RangeTableSample):
        name = _pg_name(node.method)
        if name is not None:
            functions.append(name)  # the sampling method is a handler function
    elif isinstance(node, pg.ColumnRef):
        # `a.b.c`: b and c may be columns, or functions called with attribute notation.
        attributes.extend(name for name in (_pg_string(f) for f in (node.fields or ())[1:]) if name)
    elif isinstance(node, pg.A_Indirection):
        attributes.extend(name for name in (_pg_string(f) for f in node.indirection or ()) if name)
    elif isinstance(node, pg.A_Expr):
        name = _pg_name(node.name)
        if name is not None:
            words = PG_WORD_OPERATORS.get(name.name.upper()) if name.schema is None else None
            operators.extend(Name(None, symbol) for symbol in words) if words else operators.append(name)
    elif isinstance(node, pg.SubLink):
        name = _pg_name(node.operName)
        if name is not None:
            operators.append(name)
    elif isinstance(node, pg.SortBy):
        name = _pg_name(node.useOp)
        if name is not None:
            operators.append(name)
    elif isinstance(node, pg.TypeName):
        name = _pg_name(node.names)
        if name is not None:
            types.append(name)
    elif isinstance(node, pg.ResTarget) and node.name:
        aliases.append(node.name)
    elif isinstance(node, pg.Alias):
        aliases.extend(name for name in (_pg_string(c) for c in node.colnames or ()) if name)
    elif isinstance(node, pg.CommonTableExpr):
        aliases.extend(name for name in (_pg_string(c) for c in node.aliascolnames or ()) if name)
    elif isinstance(node, pg.ColumnDef | pg.RangeTableFuncCol) and node.colname:
        aliases.append(node.colname)


# --- MySQL / MariaDB (sqlglot) ---------------------------------------------------------------------


def mysql_reach(tree: exp.Expr, tokens: list[Token]) -> Reach:
    """Collect what a MySQL-family statement reaches: calls from its tokens, relations from its tree.

    ``tokens`` are those of the exact text sent to the server: sqlglot may spell a function differently
    from the input, and the server resolves the name it reads (built-in first, then UDF, then stored).
    """
    return Reach(functions=mysql_calls(tokens), relations=_glot_relations(tree))


def _matching(tokens: list[Token], start: int) -> int:
    """Return the index of the parenthesis closing the one at `start` (the last index if none does)."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[index].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def _cte_names(tokens: list[Token]) -> set[int]:
    """Return the positions of CTE names (``WITH r (n) AS (...)``: r is followed by "(" but not called)."""
    names: set[int] = set()
    for index, token in enumerate(tokens):
        if token.token_type != TokenType.WITH:
            continue
        at = index + 1
        if at < len(tokens) and tokens[at].text.upper() == "RECURSIVE":
            at += 1
        while at < len(tokens):
            names.add(at)
            at += 1
            if at < len(tokens) and tokens[at].token_type == TokenType.L_PAREN:
                at = _matching(tokens, at) + 1  # the column list
            if at < len(tokens) and tokens[at].token_type == TokenType.ALIAS:
                at += 1
            if at >= len(tokens) or tokens[at].token_type != TokenType.L_PAREN:
                break
            at = _matching(tokens, at) + 1  # the body (its own calls are found by the caller)
            if at >= len(tokens) or tokens[at].token_type != TokenType.COMMA:
                break
            at += 1
    return names


def mysql_calls(tokens: list[Token]) -> tuple[Name, ...]:
    """Return every name written directly before "(", with its qualifier (``db.fn(``) if any.

    Not calls: a CTE's name before its column list, and a name after AS or after ")" (a type in
    ``CAST(x AS CHAR(10))``, a derived table's alias before its column list).
    """
    found: list[Name] = []
    ctes = _cte_names(tokens)
    for index, token in enumerate(tokens[:-1]):
        if tokens[index + 1].token_type != TokenType.L_PAREN or index in ctes:
            continue
        if index > 0 and tokens[index - 1].token_type in (TokenType.ALIAS, TokenType.R_PAREN):
            continue
        quoted = token.token_type == TokenType.IDENTIFIER
        if not quoted and not _WORD.match(token.text):
            continue  # punctuation or an operator before a parenthesis, not a name
        schema: str | None = None
        if index >= 2 and tokens[index - 1].token_type == TokenType.DOT:
            qualifier = tokens[index - 2]
            if qualifier.token_type == TokenType.IDENTIFIER or _WORD.match(qualifier.text):
                schema = qualifier.text
        found.append(Name(schema, token.text, quoted))
    return _unique(found)


def _glot_relations(tree: exp.Expr) -> tuple[Name, ...]:
    """Return the tables read, skipping references to a CTE visible where they appear."""
    found: list[Name] = []
    stack: list[tuple[exp.Expr, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, ctes = stack.pop()
        with_clause = node.args.get("with_") or node.args.get("with")
        if isinstance(with_clause, exp.With):
            entries = [cte for cte in with_clause.expressions if isinstance(cte, exp.CTE)]
            names = [cte.alias_or_name for cte in entries]
            recursive = bool(with_clause.args.get("recursive"))
            for index, cte in enumerate(entries):
                visible = names if recursive else names[:index]
                stack.append((cte, ctes | frozenset(visible)))
            inner = ctes | frozenset(names)
            for value in node.args.values():
                if value is not with_clause:
                    stack.extend((child, inner) for child in _glot_values(value))
            continue
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name = node.this.name
            schema = node.text("db") or None
            if schema is None and name in ctes:
                continue
            found.append(Name(schema, name))
        for value in node.args.values():
            stack.extend((child, ctes) for child in _glot_values(value))
    return _unique(found)


def _glot_values(value: object) -> Iterator[exp.Expr]:
    if isinstance(value, exp.Expr):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, exp.Expr))


# --- any dialect, by tokens ------------------------------------------------------------------------

#: Tokens that are values, never a function's name.
_LITERAL_TOKENS: Final = frozenset(
    {
        TokenType.STRING,
        TokenType.NUMBER,
        TokenType.BIT_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEX_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.NATIONAL_STRING,
        TokenType.NATIONAL_RAW_STRING,
        TokenType.RAW_STRING,
        TokenType.UNICODE_STRING,
    }
)


def called_names(sql: str, dialect: str, *, fold_case: bool) -> set[str]:
    """Every name written just before an opening parenthesis: a superset of the functions the text calls.

    Read from the tokens rather than sqlglot's tree, which re-spells the functions it knows; spelled as written
    (ClickHouse: a user-defined function's name is case-sensitive) or lower-cased with ``fold_case`` (DuckDB).
    """
    tokens = sqlglot.tokenize(sql, read=dialect)
    return {
        token.text.lower() if fold_case else token.text
        for token, following in itertools.pairwise(tokens)
        if following.token_type == TokenType.L_PAREN and token.token_type not in _LITERAL_TOKENS
    }
