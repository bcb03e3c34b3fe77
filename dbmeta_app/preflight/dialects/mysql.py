"""MySQL / MariaDB preflight rules beyond the common ones (sqlglot's MySQL dialect).

The server's own schemas are not the warehouse: ``mysql`` holds logins and password hashes
(``mysql.global_priv``, ``mysql.user``), ``information_schema.PROCESSLIST`` / ``performance_schema`` /
``sys`` other sessions' statements. MariaDB reads a row found by its primary key while planning (a "const
table") and evaluates some constant subqueries, so a plan can tell what such a row holds even when the answer
repeats no value of it (``preflight/echo.py``): a preflight query does not read these schemas at all.
"""

from __future__ import annotations

from typing import Final

from sqlglot import exp

SYSTEM_SCHEMAS: Final = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


def tree_problem(tree: exp.Expr) -> str | None:
    """Return why a parsed MySQL/MariaDB query reads the server's system schemas, or None."""
    for table in tree.find_all(exp.Table):
        if table.db and table.db.lower() in SYSTEM_SCHEMAS:
            return (
                f"{table.db}.{table.name} is in the server's system schema {table.db.lower()} (logins, grants, "
                "other sessions' statements): a preflight query reads only the warehouse's tables"
            )
    return None
