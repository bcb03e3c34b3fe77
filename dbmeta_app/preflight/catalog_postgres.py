"""Read what the routine policy needs from a PostgreSQL catalog: a cached part and a live part.

Blocking; every function takes a connection inside the caller's (read-only) transaction and never raises
for a well-formed database. The cached part (``load_catalog``) is valid while the definitions fingerprint
(``FINGERPRINT_SQL``: every row version of the catalogs it is read from) stays the same; the live part
(``read_live``) is one cheap query run in the EXPLAIN's own transaction, and carries the fingerprint.
Requires PostgreSQL 12 or newer.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

import pglast
import pglast.parser
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dbmeta_app.db.session import caller_search_path
from dbmeta_app.preflight.budget import measure_postgres, pg_view_outputs, settle_view_outputs
from dbmeta_app.preflight.guard import POSTGRES_DENIED_FUNCTIONS, POSTGRES_DENIED_PREFIXES, is_denied_function
from dbmeta_app.preflight.reach import Name, Reach
from dbmeta_app.preflight.routines import (
    EXTENSION_DENIED,
    FIRST_USER_OID,
    TRUSTED_EXTENSIONS,
    TRUSTED_LANGUAGES,
    PgCast,
    PgCatalog,
    PgHit,
    PgLive,
    PgOperator,
    PgRelation,
    PgRoutine,
)

log = logging.getLogger(__name__)

__all__ = ["FINGERPRINT_SQL", "load_catalog", "read_fingerprint", "read_live", "resolve_relations"]

# Each row version of these catalogs (oid and xmin: a new version on every CREATE, REPLACE, ALTER,
# RENAME), hashed and summed with a per-catalog salt, plus the row count (a DROP). Only the rows users can
# create are read, through the oid indexes, so it costs about half a millisecond. pg_class is left out on
# purpose (ANALYZE, TRUNCATE and new indexes rewrite its rows all the time): relations are resolved live.
_FINGERPRINT_PARTS: Final = (
    ("pg_proc", "oid", "oid >= 16384"),
    ("pg_operator", "oid", "oid >= 16384"),
    ("pg_cast", "oid", "oid >= 16384"),
    ("pg_rewrite", "oid", "oid >= 16384"),
    ("pg_index", "indexrelid", "indexrelid >= 16384"),
    ("pg_constraint", "oid", "contype = 'c'"),
    ("pg_policy", "oid", "true"),
    ("pg_statistic_ext", "oid", "true"),
    ("pg_inherits", "inhrelid", "true"),
    ("pg_partitioned_table", "partrelid", "true"),
    ("pg_extension", "oid", "true"),
    ("pg_namespace", "oid", "true"),
    ("pg_opclass", "oid", "oid >= 16384"),
    ("pg_amproc", "oid", "oid >= 16384"),
    ("pg_amop", "oid", "oid >= 16384"),
    ("pg_am", "oid", "oid >= 16384"),
    ("pg_attrdef", "oid", "true"),
    ("pg_foreign_table", "ftrelid", "true"),
    ("pg_foreign_server", "oid", "true"),
    ("pg_foreign_data_wrapper", "oid", "true"),
)
FINGERPRINT_SQL: Final = (
    "(SELECT count(*)::text || ':' || coalesce(sum(h), 0)::text FROM ("
    + " UNION ALL ".join(
        f"SELECT pg_catalog.hashint8(({key}::int8 << 32) # xmin::text::int8 # {salt}) AS h "
        f"FROM pg_catalog.{table} WHERE {where}"
        for salt, (table, key, where) in enumerate(_FINGERPRINT_PARTS, start=1)
    )
    + ") AS parts)"
)

_LIKE_ESCAPES: Final = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})

_ROUTINES: Final = sa.text(
    """
SELECT p.oid, n.nspname, p.proname, p.proargtypes::oid[], p.prorettype, l.lanname,
       pg_catalog.oidvectortypes(p.proargtypes),
       (SELECT x.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
        WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
          AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e' LIMIT 1),
       coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner), false),
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc b
               WHERE b.proname = p.proname AND b.oid < 16384 AND b.oid <> p.oid),
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc b
               WHERE b.proname = p.proname AND b.oid < 16384 AND b.oid <> p.oid
                 AND b.proargtypes = p.proargtypes)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.oid >= 16384 OR p.proname = ANY(CAST(:denied AS name[])) OR p.proname LIKE ANY(CAST(:patterns AS text[]))
"""
)

_OPERATORS: Final = sa.text(
    """
SELECT o.oid, n.nspname, o.oprname, o.oprleft, o.oprright, o.oprcode::oid, o.oprrest::oid, o.oprjoin::oid,
       CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE pg_catalog.format_type(o.oprleft, NULL) END,
       CASE WHEN o.oprright = 0 THEN 'NONE' ELSE pg_catalog.format_type(o.oprright, NULL) END,
       EXISTS (SELECT 1 FROM pg_catalog.pg_operator b WHERE b.oprname = o.oprname AND b.oid < 16384),
       EXISTS (SELECT 1 FROM pg_catalog.pg_operator b WHERE b.oprname = o.oprname AND b.oid < 16384
                 AND b.oprleft = o.oprleft AND b.oprright = o.oprright)
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE o.oid >= 16384
"""
)

_CASTS: Final = sa.text(
    """
SELECT c.castsource, c.casttarget, c.castcontext::text, c.castfunc::oid,
       pg_catalog.format_type(c.castsource, NULL), pg_catalog.format_type(c.casttarget, NULL)
FROM pg_catalog.pg_cast c
WHERE c.oid >= 16384 AND c.castfunc <> 0
"""
)

# What the planner evaluates for a relation, and the untrusted routine or operator it calls: one row per
# (relation or domain, how, routine). Column defaults (pg_attrdef of stored values) and triggers are
# not evaluated by a SELECT's plan; a virtual generated column (PostgreSQL 18) is.
_HITS: Final = sa.text(
    """
WITH refs AS (
  SELECT d.classid, d.objid, d.refclassid, d.refobjid
  FROM pg_catalog.pg_depend d
  WHERE (d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = ANY(CAST(:procs AS oid[])))
     OR (d.refclassid = 'pg_catalog.pg_operator'::regclass AND d.refobjid = ANY(CAST(:operators AS oid[])))
)
SELECT 'r' AS owner, i.indrelid AS owner_oid,
       'index ' || quote_ident(ns.nspname) || '.' || quote_ident(ic.relname) AS via,
       r.refclassid = 'pg_catalog.pg_proc'::regclass AS is_proc, r.refobjid
FROM refs r
JOIN pg_catalog.pg_index i ON r.classid = 'pg_catalog.pg_class'::regclass AND r.objid = i.indexrelid
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_namespace ns ON ns.oid = ic.relnamespace
UNION ALL
SELECT 'r', c.oid, 'partition key', r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_class c ON r.classid = 'pg_catalog.pg_class'::regclass AND r.objid = c.oid
WHERE c.relkind = 'p'
UNION ALL
SELECT CASE WHEN k.conrelid <> 0 THEN 'r' ELSE 't' END,
       CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END,
       'check constraint ' || quote_ident(k.conname),
       r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_constraint k ON r.classid = 'pg_catalog.pg_constraint'::regclass AND r.objid = k.oid
WHERE k.contype = 'c'
UNION ALL
SELECT 'r', p.polrelid, 'row-level security policy ' || quote_ident(p.polname),
       r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_policy p ON r.classid = 'pg_catalog.pg_policy'::regclass AND r.objid = p.oid
UNION ALL
SELECT 'r', s.stxrelid, 'statistics object ' || quote_ident(s.stxname),
       r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_statistic_ext s ON r.classid = 'pg_catalog.pg_statistic_ext'::regclass AND r.objid = s.oid
UNION ALL
SELECT 'r', w.ev_class, '', r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_rewrite w ON r.classid = 'pg_catalog.pg_rewrite'::regclass AND r.objid = w.oid
WHERE w.ev_type = '1'
UNION ALL
SELECT 'r', a.adrelid, 'generated column ' || quote_ident(att.attname),
       r.refclassid = 'pg_catalog.pg_proc'::regclass, r.refobjid
FROM refs r
JOIN pg_catalog.pg_attrdef a ON r.classid = 'pg_catalog.pg_attrdef'::regclass AND r.objid = a.oid
JOIN pg_catalog.pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
WHERE att.attgenerated NOT IN ('', 's')
UNION ALL
SELECT 'r', i.indrelid,
       'index ' || quote_ident(ns.nspname) || '.' || quote_ident(ic.relname)
         || ' (operator class ' || quote_ident(oc.opcname) || ')',
       true, ap.amproc::oid
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_namespace ns ON ns.oid = ic.relnamespace
CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS k(opclass)
JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily = oc.opcfamily
WHERE ap.amproc::oid = ANY(CAST(:procs AS oid[]))
UNION ALL
SELECT 'r', i.indrelid,
       'index ' || quote_ident(ns.nspname) || '.' || quote_ident(ic.relname)
         || ' (operator class ' || quote_ident(oc.opcname) || ')',
       false, ao.amopopr
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_namespace ns ON ns.oid = ic.relnamespace
CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS k(opclass)
JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily
WHERE ao.amopopr = ANY(CAST(:operators AS oid[]))
UNION ALL
SELECT 'r', pt.partrelid, 'partition key (operator class ' || quote_ident(oc.opcname) || ')',
       true, ap.amproc::oid
FROM pg_catalog.pg_partitioned_table pt
CROSS JOIN LATERAL unnest(pt.partclass::oid[]) AS k(opclass)
JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily = oc.opcfamily
WHERE ap.amproc::oid = ANY(CAST(:procs AS oid[]))
UNION ALL
SELECT 'r', ft.ftrelid, 'foreign data wrapper ' || quote_ident(w.fdwname), true, w.fdwhandler::oid
FROM pg_catalog.pg_foreign_table ft
JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
WHERE w.fdwhandler::oid = ANY(CAST(:procs AS oid[]))
UNION ALL
SELECT 'r', coalesce(i.indrelid, c.oid), 'access method ' || quote_ident(am.amname), true, am.amhandler::oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_am am ON am.oid = c.relam
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
WHERE am.amhandler::oid = ANY(CAST(:procs AS oid[]))
"""
)

# pg_depend records no dependency on a built-in (pinned) function: a view or a check constraint calling
# schema_to_xml or pg_current_xact_id has no row there. The stored expressions themselves name every function
# they call (``:funcid``, ``:opfuncid``, ``:aggfnoid``, ``:winfnoid`` in their node trees): the same places as
# _HITS, searched for the denied built-ins. A tree is only split up when one of them is in it at all (``\\:`` is
# a colon, not a bind parameter, to SQLAlchemy).
_BUILTIN_HITS: Final = sa.text(
    """
WITH exprs(owner, owner_oid, via, tree) AS (
  SELECT 'r', w.ev_class, '', w.ev_action::text
  FROM pg_catalog.pg_rewrite w WHERE w.ev_type = '1' AND w.oid >= 16384
  UNION ALL
  SELECT CASE WHEN k.conrelid <> 0 THEN 'r' ELSE 't' END,
         CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END,
         'check constraint ' || quote_ident(k.conname), k.conbin::text
  FROM pg_catalog.pg_constraint k WHERE k.contype = 'c' AND k.conbin IS NOT NULL
  UNION ALL
  SELECT 'r', p.polrelid, 'row-level security policy ' || quote_ident(p.polname),
         coalesce(p.polqual::text, '') || ' ' || coalesce(p.polwithcheck::text, '')
  FROM pg_catalog.pg_policy p
  UNION ALL
  SELECT 'r', i.indrelid, 'index ' || quote_ident(ns.nspname) || '.' || quote_ident(ic.relname),
         coalesce(i.indexprs::text, '') || ' ' || coalesce(i.indpred::text, '')
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_namespace ns ON ns.oid = ic.relnamespace
  WHERE i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
  UNION ALL
  SELECT 'r', pt.partrelid, 'partition key', pt.partexprs::text
  FROM pg_catalog.pg_partitioned_table pt WHERE pt.partexprs IS NOT NULL
  UNION ALL
  SELECT 'r', a.adrelid, 'generated column ' || quote_ident(att.attname), a.adbin::text
  FROM pg_catalog.pg_attrdef a
  JOIN pg_catalog.pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
  WHERE att.attgenerated NOT IN ('', 's')
)
SELECT DISTINCT e.owner, e.owner_oid, e.via, true, m.oid
FROM exprs e
CROSS JOIN LATERAL (
  SELECT CAST(x[2] AS oid) AS oid
  FROM regexp_matches(e.tree, '\\:(funcid|opfuncid|aggfnoid|winfnoid) ([0-9]+)', 'g') AS x
) AS m
WHERE e.tree ~ ('\\:(funcid|opfuncid|aggfnoid|winfnoid) (' || :alternatives || ')[^0-9]')
  AND m.oid = ANY(CAST(:procs AS oid[]))
"""
)

# A view reads the relations its rule depends on (a materialized view's rule is not expanded when read).
_VIEW_READS: Final = sa.text(
    """
SELECT DISTINCT w.ev_class, d.refobjid
FROM pg_catalog.pg_rewrite w
JOIN pg_catalog.pg_class v ON v.oid = w.ev_class AND v.relkind = 'v'
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = w.oid
 AND d.refclassid = 'pg_catalog.pg_class'::regclass
WHERE w.ev_type = '1' AND w.oid >= 16384 AND d.refobjid <> w.ev_class
"""
)

_INHERITS: Final = sa.text("SELECT inhparent, inhrelid FROM pg_catalog.pg_inherits")

# The definitions of the views users made: the planner folds their constants into every query that reads them.
_VIEW_DEFINITIONS: Final = sa.text(
    "SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c WHERE c.relkind = 'v' AND c.oid >= 16384"
)

_RELATIONS: Final = sa.text(
    """
SELECT c.oid, n.nspname, c.relname, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(CAST(:oids AS oid[]))
"""
)

# A type created by a user (not built in, not an extension's, nor an array of one): a value of it can only
# come from a column, a cast or a function result, all of which the policy sees.
_TYPES: Final = sa.text(
    """
SELECT t.oid, pg_catalog.format_type(t.oid, NULL),
       t.oid >= 16384 AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_depend d
         WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid IN (t.oid, t.typelem)
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e')
FROM pg_catalog.pg_type t
WHERE t.oid = ANY(CAST(:oids AS oid[]))
"""
)

# Lookups by oid go through LATERAL subqueries (OFFSET 0: never flattened into a hash join) so that each
# is an index probe, never a scan of pg_class or pg_type. Built-in types are not followed: only types created in the database can be spared.
_LIVE: Final = sa.text(
    f"""
WITH RECURSIVE
rel AS (
  SELECT r.ord, r.oid FROM unnest(CAST(:relations AS oid[])) WITH ORDINALITY AS r(oid, ord)
),
cls AS (
  SELECT rel.oid, c.reltype
  FROM rel CROSS JOIN LATERAL (SELECT reltype FROM pg_catalog.pg_class WHERE oid = rel.oid OFFSET 0) AS c
),
seed AS (
  SELECT a.atttypid AS oid, false AS is_cast
  FROM cls CROSS JOIN LATERAL (
    SELECT atttypid FROM pg_catalog.pg_attribute
    WHERE attrelid = cls.oid AND attnum > 0 AND NOT attisdropped
  ) AS a
  UNION
  SELECT reltype, false FROM cls WHERE reltype <> 0
  UNION
  SELECT x.oid, true FROM unnest(CAST(:types AS oid[])) AS x(oid) WHERE x.oid IS NOT NULL
),
closure(oid, is_cast, depth) AS (
  SELECT oid, is_cast, 0 FROM seed
  UNION
  SELECT x.oid, c.is_cast, c.depth + 1
  FROM closure c
  CROSS JOIN LATERAL (
    SELECT typbasetype, typelem, typarray, typrelid FROM pg_catalog.pg_type WHERE oid = c.oid OFFSET 0
  ) AS t
  CROSS JOIN LATERAL (
    SELECT t.typbasetype UNION ALL SELECT t.typelem UNION ALL SELECT t.typarray
    UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
  ) AS x(oid)
  WHERE c.depth < 4 AND c.oid >= 16384 AND x.oid <> 0
)
SELECT {FINGERPRINT_SQL},
       ARRAY(SELECT oid FROM rel ORDER BY ord),
       ARRAY(SELECT DISTINCT oid FROM closure),
       ARRAY(SELECT DISTINCT oid FROM closure WHERE is_cast),
       ARRAY(SELECT DISTINCT a.attname::text
             FROM cls CROSS JOIN LATERAL (
               SELECT attname FROM pg_catalog.pg_attribute
               WHERE attrelid = cls.oid AND attnum > 0 AND NOT attisdropped
                 AND attname = ANY(CAST(:attributes AS name[]))
             ) AS a)
"""
)

# Names resolved the way the caller's statement resolves them: run with the database's search_path
# (session.caller_search_path), so every function and type is spelled with its schema and there is no operator.
_AS_CALLER: Final = sa.text(
    """
SELECT pg_catalog.current_schemas(true)::pg_catalog.text[],
       ARRAY(SELECT pg_catalog.to_regclass(x.name)::pg_catalog.oid
             FROM pg_catalog.unnest(CAST(:relations AS pg_catalog.text[])) WITH ORDINALITY AS x(name, ord)
             ORDER BY x.ord),
       ARRAY(SELECT pg_catalog.to_regtype(x.name)::pg_catalog.oid
             FROM pg_catalog.unnest(CAST(:types AS pg_catalog.text[])) WITH ORDINALITY AS x(name, ord)
             ORDER BY x.ord)
"""
)
_FINGERPRINT: Final = sa.text(f"SELECT {FINGERPRINT_SQL}")
_GET_PATH: Final = sa.text("SELECT pg_catalog.current_setting('search_path')")
# Transaction-local: the caller's transaction (the EXPLAIN's) is the only one that sees it.
_SET_PATH: Final = sa.text("SELECT pg_catalog.set_config('search_path', :path, true)")
# A qualified name is looked up by name, not with to_regclass, which raises for a schema the role may not
# use: one such schema must not fail the check of every other relation (an unqualified one: _AS_CALLER).
_RESOLVE: Final = sa.text(
    """
SELECT ARRAY(
  SELECT (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = r.schema AND c.relname = r.name)
  FROM unnest(CAST(:schemas AS text[]), CAST(:names AS text[])) WITH ORDINALITY AS r(schema, name, ord)
  ORDER BY r.ord)
"""
)


def _quote(part: str) -> str:
    return '"' + part.replace('"', '""') + '"'


def qualified(name: Name) -> str:
    """Spell a name for to_regclass/to_regtype: every part quoted, so its syntax is always valid."""
    return f"{_quote(name.schema)}.{_quote(name.name)}" if name.schema else _quote(name.name)


def read_fingerprint(conn: Connection) -> str:
    """Return the definitions fingerprint (one query)."""
    return str(conn.execute(_FINGERPRINT).scalar_one())


def read_live(conn: Connection, reach: Reach) -> PgLive:
    """Read, in the caller's transaction, what the policy must never take from a cache (one query)."""
    with caller_search_path(conn):
        path, relations, types = conn.execute(
            _AS_CALLER,
            {
                "relations": [qualified(name) for name in reach.relations],
                "types": [qualified(name) for name in reach.types],
            },
        ).one()
    row = conn.execute(
        _LIVE,
        {
            "relations": list(relations or ()),
            "types": list(types or ()),
            "attributes": [n[:63] for n in reach.attributes],
        },
    ).one()
    return PgLive(
        fingerprint=str(row[0]),
        search_path=tuple(path or ()),
        relations=tuple(int(oid) if oid is not None else None for oid in row[1] or ()),
        universe=frozenset(int(oid) for oid in row[2] or ()),
        cast_targets=frozenset(int(oid) for oid in row[3] or ()),
        columns=frozenset(row[4] or ()),
    )


def resolve_relations(conn: Connection, names: Sequence[Name]) -> tuple[int | None, ...]:
    """Resolve relation names as the server would (search path included); None for a missing one."""
    if not names:
        return ()
    bare = [qualified(name) for name in names if name.schema is None]
    on_path: Iterable[Any] = ()
    if bare:  # an unqualified name is looked up on the database's own path
        with caller_search_path(conn):
            on_path = conn.execute(_AS_CALLER, {"relations": bare, "types": []}).one()[1] or ()
    found = iter(on_path)
    row = conn.execute(
        _RESOLVE,
        {"schemas": [name.schema for name in names], "names": [name.name for name in names]},
    ).scalar_one()
    oids = [next(found) if name.schema is None else oid for name, oid in zip(names, row or (), strict=True)]
    return tuple(int(oid) if oid is not None else None for oid in oids)


def _routine(row: Sequence[Any]) -> PgRoutine | None:
    """Return the routine of a catalog row if it is not trusted by default, else None."""
    oid, schema, name, args, returns, language, identity, extension, owner_super, builtin_name, twin = row
    denied = is_denied_function(name, "postgresql")
    if denied:
        reason = "on the service's deny list: it sleeps, locks, writes, or reaches files or other servers"
    elif oid < FIRST_USER_OID:
        return None
    elif extension is None:
        reason = "user-defined"
    elif extension not in TRUSTED_EXTENSIONS:
        reason = f"from extension {extension}, which is not trusted"
    elif name in EXTENSION_DENIED.get(extension, frozenset()):
        denied = True
        reason = f"changes session state (extension {extension})"
    elif language not in TRUSTED_LANGUAGES:
        reason = f"a {language} function of extension {extension}"
    elif not owner_super:
        reason = f"added to extension {extension} by a role that is not a superuser"
    else:
        return None
    return PgRoutine(
        oid=int(oid),
        schema=schema,
        name=name,
        signature=f"{schema}.{name}({identity})",
        args=tuple(int(a) for a in args or ()),
        returns=int(returns),
        reason=reason,
        denied=denied,
        builtin_name=bool(builtin_name),
        builtin_twin=bool(twin),
    )


def load_catalog(conn: Connection, fingerprint: str) -> PgCatalog:
    """Read the catalog facts the policy judges by (a few queries; cache them under the fingerprint).

    Type names in messages are spelled with an empty search path (schema-qualified unless built in), so
    they do not depend on the session that happened to read them; the path is restored afterwards.
    """
    path = conn.execute(_GET_PATH).scalar_one()
    conn.execute(_SET_PATH, {"path": "pg_catalog"})
    try:
        return _load_catalog(conn, fingerprint)
    finally:
        conn.execute(_SET_PATH, {"path": path})


def _load_catalog(conn: Connection, fingerprint: str) -> PgCatalog:
    patterns = [prefix.translate(_LIKE_ESCAPES) + "%" for prefix in POSTGRES_DENIED_PREFIXES]
    routines = [
        routine
        for routine in (
            _routine(row)
            for row in conn.execute(
                _ROUTINES, {"denied": sorted(POSTGRES_DENIED_FUNCTIONS), "patterns": patterns}
            )
        )
        if routine is not None
    ]
    untrusted = {routine.oid for routine in routines}
    operators: list[PgOperator] = []
    for row in conn.execute(_OPERATORS):
        oid, schema, symbol, left, right, code, rest, join, left_name, right_name, builtin, twin = row
        procs = tuple(int(p) for p in (code, rest, join) if p)
        if not untrusted.intersection(procs):
            continue
        operators.append(
            PgOperator(
                oid=int(oid),
                schema=schema,
                symbol=symbol,
                left=int(left),
                right=int(right),
                procs=procs,
                signature=f"{schema}.{symbol}({left_name}, {right_name})",
                builtin_name=bool(builtin),
                builtin_twin=bool(twin),
            )
        )
    casts = [
        PgCast(int(source), int(target), context, int(proc), f"cast from {source_name} to {target_name}")
        for source, target, context, proc, source_name, target_name in conn.execute(_CASTS)
        if int(proc) in untrusted
    ]
    hits, domain_hits = _hits(conn, sorted(untrusted), sorted(o.oid for o in operators))
    relations = _relations(conn, hits)
    type_oids = {t for r in routines for t in (*r.args, r.returns)}
    type_oids |= {t for o in operators for t in (o.left, o.right) if t}
    type_oids |= {t for c in casts for t in (c.source, c.target)} | set(domain_hits)
    user_types: set[int] = set()
    type_names: dict[int, str] = {}
    if type_oids:
        for oid, type_name, user_made in conn.execute(_TYPES, {"oids": sorted(type_oids)}):
            type_names[int(oid)] = type_name
            if user_made:
                user_types.add(int(oid))
    return PgCatalog.build(
        fingerprint=fingerprint,
        routines=routines,
        operators=operators,
        casts=casts,
        relations=relations,
        user_types=user_types,
        domain_hits=domain_hits,
        type_names=type_names,
    )


def _hits(
    conn: Connection, procs: list[int], operators: list[int]
) -> tuple[dict[int, list[PgHit]], dict[int, tuple[PgHit, ...]]]:
    """Return what the planner evaluates per relation, and per domain type, that calls an untrusted routine."""
    by_relation: dict[int, list[PgHit]] = defaultdict(list)
    by_domain: dict[int, list[PgHit]] = defaultdict(list)
    if not procs and not operators:
        return by_relation, {}
    rows = list(conn.execute(_HITS, {"procs": procs, "operators": operators}))
    builtins = [oid for oid in procs if oid < FIRST_USER_OID]
    if builtins:
        alternatives = "|".join(str(oid) for oid in builtins)
        rows += conn.execute(_BUILTIN_HITS, {"procs": builtins, "alternatives": alternatives})
    for owner, owner_oid, via, is_proc, target in rows:
        hit = PgHit(via=via, proc=int(target)) if is_proc else PgHit(via=via, operator=int(target))
        bucket = by_relation if owner == "r" else by_domain
        if hit not in bucket[int(owner_oid)]:
            bucket[int(owner_oid)].append(hit)
    return by_relation, {k: tuple(v) for k, v in by_domain.items()}


def _relations(conn: Connection, hits: dict[int, list[PgHit]]) -> list[PgRelation]:
    """Build the relations that matter: with hits, views (and what they read), parents of children."""
    reads: dict[int, list[int]] = defaultdict(list)
    for view, read in conn.execute(_VIEW_READS):
        reads[int(view)].append(int(read))
    children: dict[int, list[int]] = defaultdict(list)
    for parent, child in conn.execute(_INHERITS):
        children[int(parent)].append(int(child))
    constants = _view_constants(conn, reads)
    oids = set(hits) | set(reads) | set(children) | set(constants)
    oids |= {oid for values in (*reads.values(), *children.values()) for oid in values}
    out: list[PgRelation] = []
    for oid, schema, name, kind in _chunks(conn, sorted(oids)):
        out.append(
            PgRelation(
                oid=oid,
                schema=schema,
                name=name,
                kind=kind,
                hits=tuple(hits.get(oid, ())),
                reads=tuple(dict.fromkeys(reads.get(oid, ()))),
                children=tuple(children.get(oid, ())),
                constant_bytes=constants[oid][0] if oid in constants else 0,
                outputs=tuple(constants[oid][1].items()) if oid in constants else (),
            )
        )
    return out


def _view_constants(conn: Connection, reads: dict[int, list[int]]) -> dict[int, tuple[int, dict[str, Any]]]:
    """Per user view with constants: the bytes its definition makes the planner build, and its constant
    columns (by name). A view's definition is measured with the constant columns of the views it reads,
    transitively (by name, the larger of two: ``SELECT repeat('x', p.n) FROM params p`` over ``params AS
    SELECT 100000007 AS n`` builds what ``params`` holds; so does a view of a view renaming ``n``)."""
    trees: dict[int, Any] = {}
    for oid, definition in conn.execute(_VIEW_DEFINITIONS):
        try:
            statement = pglast.parse_sql(str(definition))[0].stmt
        except (pglast.parser.ParseError, RecursionError, IndexError):
            log.warning("Could not parse the definition of view %s; its constants are not measured", oid)
            continue
        if statement is not None:
            trees[int(oid)] = statement
    views = {oid: [read for read in reads.get(oid, ()) if read in trees] for oid in trees}
    settled = settle_view_outputs(views, lambda oid, seed: pg_view_outputs(trees[oid], seed))
    out: dict[int, tuple[int, dict[str, Any]]] = {}
    for oid, (seed, outputs) in settled.items():
        constant_bytes = measure_postgres(trees[oid], seed).constant_bytes
        if constant_bytes or outputs:
            out[oid] = (constant_bytes, outputs)
    return out


def _chunks(conn: Connection, oids: list[int], size: int = 10_000) -> Iterable[tuple[int, str, str, str]]:
    for start in range(0, len(oids), size):
        for oid, schema, name, kind in conn.execute(_RELATIONS, {"oids": oids[start : start + size]}):
            yield int(oid), schema, name, kind
