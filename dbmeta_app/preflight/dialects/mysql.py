"""MySQL / MariaDB preflight rules beyond the common ones (sqlglot's MySQL dialect).

The server's own schemas are not the warehouse: ``mysql`` holds logins and password hashes
(``mysql.global_priv``, ``mysql.user``), ``information_schema.PROCESSLIST`` / ``performance_schema`` /
``sys`` other sessions' statements. MariaDB reads a row found by its primary key while planning (a "const
table") and evaluates some constant subqueries, so a plan can tell what such a row holds even when the answer
repeats no value of it (``preflight/echo.py``): a preflight query does not read these schemas at all.

An XPath expression that does not compile is repeated in the error, whole, and MariaDB compiles it while
planning: an XPath computed from rows (``ExtractValue('<a/>', CONCAT(char(39), (SELECT secret …)))``) puts a
row's value in the answer, and its text can be shaped so that no quoting tells it from the message (a quote
first, hex after a letter, punctuation for its bits). So the XPath of ``ExtractValue`` and ``UpdateXML`` must be
a string literal: its error then repeats what the caller wrote.
"""

from __future__ import annotations

from typing import Final

from sqlglot import exp

SYSTEM_SCHEMAS: Final = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
#: Functions whose second argument is an XPath, compiled while planning and repeated by its error.
XPATH_FUNCTIONS: Final = frozenset({"extractvalue", "updatexml"})


def tree_problem(tree: exp.Expr) -> str | None:
    """Return why a parsed MySQL/MariaDB query reads the server's system schemas or computes an XPath, or None."""
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() in XPATH_FUNCTIONS and len(call.expressions) >= 2:
            xpath = call.expressions[1]
            if not (isinstance(xpath, exp.Literal) and xpath.is_string):
                return (
                    f"{call.name}'s XPath must be a string literal: one computed from rows would be repeated by "
                    "its error (MariaDB compiles it while planning)"
                )
    for table in tree.find_all(exp.Table):
        if table.db and table.db.lower() in SYSTEM_SCHEMAS:
            return (
                f"{table.db}.{table.name} is in the server's system schema {table.db.lower()} (logins, grants, "
                "other sessions' statements): a preflight query reads only the warehouse's tables"
            )
    return None
