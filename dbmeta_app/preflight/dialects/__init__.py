"""Per-dialect preflight rules: what the guard refuses beyond the common rules, and how EXPLAIN is read.

One module per dialect family (:func:`dbmeta_app.dialects.dialect_family`); a new dialect (Trino, …) adds a
module here with the same functions: ``tree_problem`` (pure guard rules on a sqlglot tree), the EXPLAIN
statements and how their output becomes estimates and warnings.
"""
