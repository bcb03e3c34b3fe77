"""Catalog reads per dialect family: the whole schema in a fixed number of queries, and a cheap fingerprint.

Each module (``clickhouse``, ``duckdb``; a Trino module would be one more) has the same two functions:
``reflect(conn, include, exclude) -> list[Table]`` and ``fingerprint(conn, include, exclude) -> str``.
PostgreSQL and MySQL keep theirs in :mod:`dbmeta_app.schema.reflect` and :mod:`dbmeta_app.schema.fingerprint`.
"""
