"""Read what the routine policy needs from a PostgreSQL catalog: a cached part and a live part.

Blocking; every function takes a connection inside the caller's (read-only) transaction and never raises
for a well-formed database. The cached part (``load_catalog``) is valid while the definitions fingerprint
(``FINGERPRINT_SQL``: every row version of the catalogs it is read from) stays the same; the live part
(``read_live``) is one cheap query run in the EXPLAIN's own transaction, and carries the fingerprint.
Requires PostgreSQL 12 or newer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pglast
import pglast.parser
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dbmeta_app.db.session import caller_search_path
from dbmeta_app.preflight import view_memo
from dbmeta_app.preflight.budget import (
    DatabaseCalls,
    measure_postgres,
    pg_bounded_by_arguments,
    pg_extension_unbounded,
    pg_sized_by_name,
    pg_view_outputs,
    settle_view_outputs,
)
from dbmeta_app.preflight.guard import POSTGRES_DENIED_FUNCTIONS, POSTGRES_DENIED_PREFIXES, is_denied_function
from dbmeta_app.preflight.pg_folding import EXTENSION_DIMENSIONS
from dbmeta_app.preflight.pg_members import STOCK_MEMBERS, member_digest
from dbmeta_app.preflight.reach import Name, Reach
from dbmeta_app.preflight.routines import (
    EXTENSION_DENIED,
    EXTENSION_DENIED_SYMBOLS,
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
    extension_modules,
)
from dbmeta_app.preflight.view_memo import VIEW_WORK_SECONDS, ViewMemo, WorkClock, too_big_to_parse

log = logging.getLogger(__name__)

__all__ = [
    "FINGERPRINT_SQL",
    "VIEW_WORK_SECONDS",
    "ViewMemo",
    "load_catalog",
    "read_fingerprint",
    "read_live",
    "resolve_relations",
]


class _OutOfTime(Exception):
    """The view work of one catalog read used up VIEW_WORK_SECONDS."""


# Each row version of these catalogs (oid and xmin: a new version on every CREATE, REPLACE, ALTER,
# RENAME), hashed and summed with a per-catalog salt, plus the row count (a DROP). Only the rows users can
# create are read, through the oid indexes, so it costs about half a millisecond. pg_class is left out on
# purpose (ANALYZE, TRUNCATE and new indexes rewrite its rows all the time): relations are resolved live.
# A sum can be kept: an owner who burns transaction ids (100,000 take 0.3 s) can replace two views in
# transactions whose ids it chose so that the hashes still sum alike (a birthday search over 2^19 ids each).
# So the newest xmin is part of it too (every change after a read writes a higher one), and the
# database's datfrozenxid, which has moved by the time ids wrap around and could be reused.
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
    ("pg_opfamily", "oid", "oid >= 16384"),
    ("pg_range", "rngtypid", "rngtypid >= 16384"),
    ("pg_am", "oid", "oid >= 16384"),
    ("pg_attrdef", "oid", "true"),
    ("pg_foreign_table", "ftrelid", "true"),
    ("pg_foreign_server", "oid", "true"),
    ("pg_foreign_data_wrapper", "oid", "true"),
)
FINGERPRINT_SQL: Final = (
    "(SELECT count(*)::text || ':' || coalesce(sum(h), 0)::text || ':' || coalesce(max(x), 0)::text || ':' || "
    "(SELECT datfrozenxid::text FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
    "FROM ("
    + " UNION ALL ".join(
        f"SELECT pg_catalog.hashint8(({key}::int8 << 32) # xmin::text::int8 # {salt}) AS h, xmin::text::int8 AS x "
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
       ext.name,
       coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner), false),
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc b
               WHERE b.proname = p.proname AND b.oid < 16384 AND b.oid <> p.oid),
       EXISTS (SELECT 1 FROM pg_catalog.pg_proc b
               WHERE b.proname = p.proname AND b.oid < 16384 AND b.oid <> p.oid
                 AND b.proargtypes = p.proargtypes),
       CASE WHEN ext.name IS NOT NULL AND octet_length(p.prosrc) <= :body_max THEN p.prosrc END,
       CASE WHEN ext.name IS NOT NULL THEN octet_length(p.prosrc) END,
       CASE WHEN ext.name IS NOT NULL THEN p.probin END,
       CASE WHEN ext.name IS NOT NULL AND p.proargdefaults IS NOT NULL THEN
         CASE WHEN octet_length(p.proargdefaults::text) <= :body_max THEN p.proargdefaults::text ELSE '' END
       END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
LEFT JOIN LATERAL (
  SELECT x.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid
  WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
    AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e' LIMIT 1
) AS ext(name) ON true
WHERE p.oid >= 16384 OR p.proname = ANY(CAST(:denied AS name[])) OR p.proname LIKE ANY(CAST(:patterns AS text[]))
"""
)

# What each built-in internal symbol is called as a function: an extension's LANGUAGE internal member runs the
# built-in its prosrc names (``AS 'pg_terminate_backend' LANGUAGE internal``), so it is judged as that built-in.
_INTERNAL_SYMBOLS: Final = sa.text(
    """
SELECT p.prosrc, array_agg(DISTINCT p.proname::text)
FROM pg_catalog.pg_proc p
WHERE p.oid < 16384 AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'internal')
GROUP BY p.prosrc
"""
)

# Per type name, the functions a CHECK constraint of a domain of that name calls (by oid, from the stored
# expression: built-ins too), and whether its expression is too large to read. A SQL function of an extension
# that casts to that name is judged by them.
_DOMAIN_CHECKS: Final = sa.text(
    """
SELECT t.typname::text,
       CASE WHEN octet_length(k.conbin::text) <= :tree_max THEN k.conbin::text END
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_type t ON t.oid = k.contypid
WHERE k.contype = 'c' AND k.contypid <> 0 AND k.conbin IS NOT NULL
"""
)
# What a value of each of these types (an extension member's argument, result and default types) holds and runs:
# the closure through domains' base types, arrays' elements, composites' attributes and ranges' subtypes (types
# created in the database only, as _LIVE), with each reached type's input and output functions and, for a domain,
# its CHECK constraints' stored expressions (NULL: too large to read). The planner coerces a member's arguments
# and a SQL member's result to their declared types, so a domain's CHECK there runs when the call is folded.
_MEMBER_TYPES: Final = sa.text(
    """
WITH RECURSIVE closure(root, oid) AS (
  SELECT x.oid, x.oid FROM unnest(CAST(:types AS oid[])) AS x(oid)
  UNION
  SELECT c.root, y.oid
  FROM closure c
  CROSS JOIN LATERAL (
    SELECT typbasetype, typelem, typrelid FROM pg_catalog.pg_type WHERE oid = c.oid OFFSET 0
  ) AS t
  CROSS JOIN LATERAL (
    SELECT t.typbasetype UNION ALL SELECT t.typelem
    UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = c.oid
    UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = c.oid
  ) AS y(oid)
  WHERE c.oid >= 16384 AND y.oid <> 0
)
SELECT c.root, c.oid, pg_catalog.format_type(c.oid, NULL), t.typinput::oid, t.typoutput::oid,
       ARRAY(SELECT CASE WHEN octet_length(k.conbin::text) <= :tree_max THEN k.conbin::text ELSE '' END
             FROM pg_catalog.pg_constraint k
             WHERE k.contypid = c.oid AND k.contype = 'c' AND k.conbin IS NOT NULL)
FROM closure c
JOIN pg_catalog.pg_type t ON t.oid = c.oid
"""
)
_CALLED_OIDS: Final = re.compile(r":(?:funcid|opfuncid|aggfnoid|winfnoid) ([0-9]+)")
#: The nodes an argument default of an extension member may hold: constants, casts and calls of them (every
#: call judged); anything else (a subquery, a CASE, a parameter, a sequence) refuses the member (fail closed).
_DEFAULT_NODES: Final = frozenset(
    {"CONST", "FUNCEXPR", "OPEXPR", "RELABELTYPE", "COERCEVIAIO", "ARRAYEXPR", "ARRAYCOERCEEXPR",
     "CASETESTEXPR", "COERCETODOMAIN", "COLLATEEXPR"}
)  # fmt: skip
_TREE_NODE: Final = re.compile(r"\\.|\{([A-Z_]+)")
_TREE_TYPES: Final = re.compile(
    r":(?:consttype|funcresulttype|opresulttype|resulttype|array_typeid|element_typeid) ([0-9]+)"
)
_CALLED_OPERATORS: Final = re.compile(r":opno ([0-9]+)")
_PROC_NAMES: Final = sa.text(
    "SELECT p.oid::int, p.proname FROM pg_catalog.pg_proc p WHERE p.oid = ANY(CAST(:oids AS oid[]))"
)

# The user's operators, and built-in ones linked to a user's as commutator or negator (only a superuser can
# link to an operator it does not own): the planner swaps in an operator's commutator (a column on the right)
# and negator (NOT), and calls their functions and estimators, so those count as reached (transitively).
_OPERATORS: Final = sa.text(
    """
SELECT o.oid, n.nspname, o.oprname, o.oprleft, o.oprright, o.oprcode::oid, o.oprrest::oid, o.oprjoin::oid,
       CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE pg_catalog.format_type(o.oprleft, NULL) END,
       CASE WHEN o.oprright = 0 THEN 'NONE' ELSE pg_catalog.format_type(o.oprright, NULL) END,
       EXISTS (SELECT 1 FROM pg_catalog.pg_operator b WHERE b.oprname = o.oprname AND b.oid < 16384),
       EXISTS (SELECT 1 FROM pg_catalog.pg_operator b WHERE b.oprname = o.oprname AND b.oid < 16384
                 AND b.oprleft = o.oprleft AND b.oprright = o.oprright),
       o.oprcom, o.oprnegate, fn.nspname, f.proname
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
LEFT JOIN pg_catalog.pg_proc f ON f.oid = o.oprcode
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
WHERE o.oid >= 16384 OR o.oprcom >= 16384 OR o.oprnegate >= 16384
"""
)

# The members of operator families that call an untrusted routine or operator. The planner takes btree and
# hash families' operators and support functions from the types themselves: equivalence classes and
# merge-join estimates (btree families of an equality operator), array and record comparison, GREATEST/
# LEAST, DISTINCT and sorting (a type's default btree/hash class), a range's subtype class.
_FAMILY_MEMBERS: Final = sa.text(
    """
SELECT f.oid, am.amname, quote_ident(n.nspname) || '.' || quote_ident(f.opfname),
       ap.amproclefttype, ap.amprocrighttype, true, ap.amproc::oid,
       'support function ' || ap.amprocnum::text
FROM pg_catalog.pg_amproc ap
JOIN pg_catalog.pg_opfamily f ON f.oid = ap.amprocfamily
JOIN pg_catalog.pg_namespace n ON n.oid = f.opfnamespace
JOIN pg_catalog.pg_am am ON am.oid = f.opfmethod
WHERE ap.amproc::oid = ANY(CAST(:procs AS oid[]))
UNION ALL
SELECT f.oid, am.amname, quote_ident(n.nspname) || '.' || quote_ident(f.opfname),
       ao.amoplefttype, ao.amoprighttype, false, ao.amopopr,
       'operator ' || ao.amopstrategy::text
FROM pg_catalog.pg_amop ao
JOIN pg_catalog.pg_opfamily f ON f.oid = ao.amopfamily
JOIN pg_catalog.pg_namespace n ON n.oid = f.opfnamespace
JOIN pg_catalog.pg_am am ON am.oid = f.opfmethod
WHERE ao.amopopr = ANY(CAST(:operators AS oid[]))
"""
)

# Range types: the selectivity estimators call subtype_diff, range input and constructors call canonical
# and the subtype operator class's comparison.
_RANGES: Final = sa.text(
    """
SELECT r.rngtypid, r.rngmultitypid, r.rngsubdiff::oid, r.rngcanonical::oid, oc.opcfamily,
       quote_ident(n.nspname) || '.' || quote_ident(oc.opcname)
FROM pg_catalog.pg_range r
JOIN pg_catalog.pg_opclass oc ON oc.oid = r.rngsubopc
JOIN pg_catalog.pg_namespace n ON n.oid = oc.opcnamespace
"""
)

_CASTS: Final = sa.text(
    """
SELECT c.castsource, c.casttarget, c.castcontext::text, c.castfunc::oid,
       pg_catalog.format_type(c.castsource, NULL), pg_catalog.format_type(c.casttarget, NULL),
       tn.nspname, t.typname, fn.nspname, f.proname
FROM pg_catalog.pg_cast c
JOIN pg_catalog.pg_type t ON t.oid = c.casttarget
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
JOIN pg_catalog.pg_proc f ON f.oid = c.castfunc
JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
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
# a colon, not a bind parameter, to SQLAlchemy). A rule tree over :tree_max is not built (a view with one is
# refused whole, _VIEW_DEFINITIONS; a materialized view's rule is not planned when it is read).
_BUILTIN_HITS: Final = sa.text(
    """
WITH exprs(owner, owner_oid, via, tree) AS (
  SELECT 'r', w.ev_class, '',
         CASE WHEN octet_length(w.ev_action::text) <= :tree_max THEN w.ev_action::text ELSE '' END
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

# The expressions of a table's own definitions that the planner folds whenever it plans a query on the table (index
# expressions and predicates, CHECK constraints for constraint exclusion, row-level security policies, a partition
# key, a virtual generated column; extended statistics' expressions below), as SQL text without the names of
# their table or index (identical definitions share one measure), when their stored tree calls something: a call
# of constants there is folded like one in the query (an index on (a || repeat('x', 300000000)) built 300 MB on
# every plan of a query on its empty table). Trees over :tree_max are not deparsed (the table is refused).
_TABLE_EXPRESSIONS: Final = sa.text(
    """
WITH defs(relid, via, tree, sql, kind) AS (
  SELECT k.conrelid, 'check constraint ' || quote_ident(k.conname), k.conbin::text,
         CASE WHEN octet_length(k.conbin::text) <= :tree_max THEN pg_catalog.pg_get_expr(k.conbin, k.conrelid) END,
         'expression'
  FROM pg_catalog.pg_constraint k WHERE k.contype = 'c' AND k.conrelid <> 0 AND k.conbin IS NOT NULL
  UNION ALL
  SELECT p.polrelid, 'row-level security policy ' || quote_ident(p.polname), p.polqual::text,
         CASE WHEN octet_length(p.polqual::text) <= :tree_max THEN pg_catalog.pg_get_expr(p.polqual, p.polrelid) END,
         'expression'
  FROM pg_catalog.pg_policy p WHERE p.polqual IS NOT NULL
  UNION ALL
  SELECT p.polrelid, 'row-level security policy ' || quote_ident(p.polname), p.polwithcheck::text,
         CASE WHEN octet_length(p.polwithcheck::text) <= :tree_max
              THEN pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) END,
         'expression'
  FROM pg_catalog.pg_policy p WHERE p.polwithcheck IS NOT NULL
  UNION ALL
  SELECT i.indrelid, 'index ' || quote_ident(ns.nspname) || '.' || quote_ident(ic.relname), e.tree::text,
         CASE WHEN octet_length(e.tree::text) <= :tree_max THEN pg_catalog.pg_get_expr(e.tree, i.indrelid) END,
         'expression'
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_namespace ns ON ns.oid = ic.relnamespace
  CROSS JOIN LATERAL (VALUES (i.indexprs), (i.indpred)) AS e(tree)  -- its expressions, its predicate
  WHERE e.tree IS NOT NULL
  UNION ALL
  SELECT pt.partrelid, 'partition key', pt.partexprs::text,
         CASE WHEN octet_length(pt.partexprs::text) <= :tree_max THEN pg_catalog.pg_get_partkeydef(pt.partrelid) END,
         'partition key'
  FROM pg_catalog.pg_partitioned_table pt WHERE pt.partexprs IS NOT NULL
  UNION ALL
  SELECT a.adrelid, 'generated column ' || quote_ident(att.attname), a.adbin::text,
         CASE WHEN octet_length(a.adbin::text) <= :tree_max THEN pg_catalog.pg_get_expr(a.adbin, a.adrelid) END,
         'expression'
  FROM pg_catalog.pg_attrdef a
  JOIN pg_catalog.pg_attribute att ON att.attrelid = a.adrelid AND att.attnum = a.adnum
  WHERE att.attgenerated NOT IN ('', 's')
)
SELECT relid, via, sql, kind FROM defs WHERE tree ~ ':(funcid|opfuncid) [0-9]'
"""
)
# PostgreSQL 14+: the expressions of extended statistics, folded when the planner loads a table's statistics objects.
_STATISTICS_EXPRESSIONS: Final = sa.text(
    """
SELECT s.stxrelid, 'statistics object ' || quote_ident(s.stxname),
       CASE WHEN octet_length(s.stxexprs::text) <= :tree_max
            THEN pg_catalog.array_to_string(pg_catalog.pg_get_statisticsobjdef_expressions(s.oid), ', ') END,
       'expression'
FROM pg_catalog.pg_statistic_ext s
WHERE s.stxexprs IS NOT NULL AND s.stxexprs::text ~ ':(funcid|opfuncid) [0-9]'
"""
)

# A view reads the relations its rule depends on (a materialized view's rule is not expanded when read), each as
# many times as the rule's range tables name it (every RANGETBLENTRY of kind 0, a relation, in the stored tree:
# a self-join, a subquery, a CTE body each count; a table named twice is opened twice by the planner). The tree's size
# is read from its header (octet_length of a stored value does not build it); a tree over :tree_max is not read
# (the view is refused whole, _VIEW_DEFINITIONS) and its reads count once each. A relation pg_depend names that
# the tree's text does not (another server's output format) counts once: never fewer than the distinct reads.
# The last column says whether the rule holds a CTE: its reads are then counted per reference (_rule_reads).
_VIEW_READS: Final = sa.text(
    """
WITH rules AS (
  SELECT w.oid, w.ev_class, octet_length(w.ev_action::text) <= :tree_max AS readable,
         CASE WHEN octet_length(w.ev_action::text) <= :tree_max
              THEN strpos(w.ev_action::text, '{COMMONTABLEEXPR') > 0 ELSE false END AS has_cte
  FROM pg_catalog.pg_rewrite w
  JOIN pg_catalog.pg_class v ON v.oid = w.ev_class AND v.relkind = 'v'
  WHERE w.ev_type = '1' AND w.oid >= 16384
),
deps AS (
  SELECT DISTINCT r.ev_class, d.refobjid
  FROM rules r
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_catalog.pg_class'::regclass
  WHERE d.refobjid <> r.ev_class
),
counted AS (
  SELECT r.ev_class, CAST(m.x[1] AS oid) AS refobjid, count(*) AS times
  FROM rules r
  JOIN pg_catalog.pg_rewrite w ON w.oid = r.oid
  CROSS JOIN LATERAL regexp_matches(CASE WHEN r.readable THEN w.ev_action::text ELSE '' END, '\\:rtekind 0 \\:relid ([0-9]+)', 'g') AS m(x)
  WHERE r.readable
  GROUP BY 1, 2
)
SELECT d.ev_class, d.refobjid, greatest(coalesce(c.times, 1), 1),
       EXISTS (SELECT 1 FROM rules r WHERE r.ev_class = d.ev_class AND r.has_cte)
FROM deps d LEFT JOIN counted c ON c.ev_class = d.ev_class AND c.refobjid = d.refobjid
"""
)

# The stored rules of views with a CTE (within :tree_max, _VIEW_READS): the planner inlines a CTE once per
# reference, so what its query reads is counted per reference (_rule_reads), which the range tables alone do not say.
_VIEW_RULES: Final = sa.text(
    """
SELECT w.ev_class, w.ev_action::text
FROM pg_catalog.pg_rewrite w
WHERE w.ev_class = ANY(CAST(:oids AS oid[])) AND w.ev_type = '1' AND octet_length(w.ev_action::text) <= :tree_max
"""
)
# The tokens of a stored rule (nodeToString) that say what it reads: a query, a CTE (its name), whether it is
# recursive, a relation's range-table entry, a CTE reference (name, query levels up, self-reference), and braces.
# A backslash escapes the next character of a token (a name "c{x" is c\{x): it is skipped.
_RULE_TOKENS: Final = re.compile(
    r"\\.|(\{QUERY)\b|\{COMMONTABLEEXPR :ctename ((?:\\.|[^\s\\])+)|:cterecursive (true)\b"
    r"|:rtekind 0 :relid ([0-9]+)"
    r"|:rtekind 6 :ctename ((?:\\.|[^\s\\])+) :ctelevelsup ([0-9]+) :self_reference (true|false)"
    r"|(\{)|(\})"
)
#: A count of reads never exceeds this (a chain of CTEs doubling within one rule is refused long before).
_READS_CAP: Final = 1_000_000_000
_INHERITS: Final = sa.text("SELECT inhparent, inhrelid FROM pg_catalog.pg_inherits")

# The definitions of the views users made: the planner folds their constants into every query that reads them.
# Read with quote_all_identifiers on: a word the server takes for a name but a newer grammar (the parser's)
# reserves, like system_user on PostgreSQL 15, is then quoted and parses.
# Bounded: the stored rule's size is read from its header first (cheap); a rule over :tree_max is not deparsed
# at all. The length of the others is measured on the server as the database prints it (quote_all_identifiers
# off: the cap is on the definition, like the other dialects' stored text), and only those within the cap are
# fetched, quoted (_VIEW_TEXTS): a definition over the cap never leaves the server.
_VIEW_LENGTHS: Final = sa.text(
    """
SELECT v.oid, v.tree, length(v.definition)
FROM (
  SELECT c.oid, octet_length(w.ev_action::text) AS tree,
         CASE WHEN octet_length(w.ev_action::text) <= :tree_max THEN pg_catalog.pg_get_viewdef(c.oid) END
           AS definition
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_rewrite w ON w.ev_class = c.oid AND w.ev_type = '1'
  WHERE c.relkind = 'v' AND c.oid >= 16384
  OFFSET 0
) AS v
"""
)
_VIEW_TEXTS: Final = sa.text(
    "SELECT x.oid, pg_catalog.pg_get_viewdef(x.oid) FROM unnest(CAST(:oids AS oid[])) AS x(oid)"
)
_GET_QUOTING: Final = sa.text("SELECT pg_catalog.current_setting('quote_all_identifiers')")
_SET_QUOTING: Final = sa.text("SELECT pg_catalog.set_config('quote_all_identifiers', :value, true)")

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

# Upward too, to what a query makes of a value without naming its type: an array of it (ARRAY[x], array_agg) and a
# range's multirange (multirange(r), range_agg); those are values of the query, not types it casts to (is_cast).
# Lookups by oid go through LATERAL subqueries (OFFSET 0: never flattened into a hash join) so that each
# is an index probe, never a scan of pg_class or pg_type. Built-in types are not followed: only types created in
# the database can be spared. The closure has no depth bound: UNION drops a row seen before, so a type that
# leads back to itself (a composite and its array) ends it, and every user type a value can hold is reached,
# however deep in composites, domains, arrays and ranges.
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
closure(oid, is_cast) AS (
  SELECT oid, is_cast FROM seed
  UNION
  SELECT x.oid, c.is_cast AND NOT x.up
  FROM closure c
  CROSS JOIN LATERAL (
    SELECT typbasetype, typelem, typarray, typrelid FROM pg_catalog.pg_type WHERE oid = c.oid OFFSET 0
  ) AS t
  CROSS JOIN LATERAL (
    SELECT t.typbasetype, false UNION ALL SELECT t.typelem, false UNION ALL SELECT t.typarray, true
    UNION ALL SELECT a.atttypid, false FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL SELECT r.rngsubtype, false FROM pg_catalog.pg_range r WHERE r.rngtypid = c.oid
    UNION ALL SELECT r.rngtypid, false FROM pg_catalog.pg_range r WHERE r.rngmultitypid = c.oid
    UNION ALL SELECT r.rngmultitypid, true FROM pg_catalog.pg_range r WHERE r.rngtypid = c.oid
  ) AS x(oid, up)
  WHERE c.oid >= 16384 AND x.oid <> 0
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


def _make_routine(row: Sequence[Any], reason: str, denied: bool) -> PgRoutine:
    oid, schema, name, args, returns, _, identity, _, _, builtin_name, twin = row[:11]
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


def _routine(row: Sequence[Any], internal: Mapping[str, Sequence[str]]) -> PgRoutine | None:
    """Return the routine of a catalog row if it is not trusted by default, else None.

    A member of a trusted extension is trusted for what it runs, never for its membership (a superuser can
    ``ALTER EXTENSION … ADD FUNCTION`` anything): a C function only when it is a symbol of the extension's own
    library that is not excluded, an internal one when the built-in its symbol names is trusted. A SQL one is
    None here and judged by its body afterwards; every member left is then judged by the types of its arguments
    and result and by its argument defaults (``_extension_members``)."""
    oid, _, name, _, _, language, _, extension, owner_super = row[:9]
    body, _, probin = row[11:14]  # row[14]: its argument defaults' tree (_extension_members)
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
    elif language == "c":
        symbol = str(body or "")
        if probin not in extension_modules(extension):
            reason = (
                f"a C function of extension {extension} that runs {symbol or '?'} of library {probin}, "
                "not the extension's own"
            )
        elif symbol in EXTENSION_DENIED_SYMBOLS.get(extension, frozenset()):
            denied = True
            reason = f"runs {symbol} of extension {extension}, which changes session state"
        else:
            return None
    elif language == "internal":
        symbol = str(body or "")
        names = internal.get(symbol)
        if names is None:
            reason = (
                f"an internal function of extension {extension} running {symbol or '?'}, no built-in's symbol"
            )
        elif is_denied_function(symbol, "postgresql") or any(
            is_denied_function(n, "postgresql") for n in names
        ):
            denied = True
            reason = (
                f"an internal function of extension {extension} that runs the built-in {symbol}, on the "
                "service's deny list"
            )
        else:
            return None
    else:
        return None  # SQL: judged by its body (_extension_members)
    return _make_routine(row, reason, bool(denied))


#: Parse-tree nodes a SQL function body of a trusted extension may hold: one SELECT of expressions over its
#: parameters and constants (what the extensions' own SQL functions are). Anything else (FROM, subqueries,
#: column references, SET, other statements) makes the function untrusted: its reach is not followed further.
_BODY_NODES: Final = frozenset(
    {
        "RawStmt", "SelectStmt", "ResTarget", "FuncCall", "A_Expr", "TypeCast", "TypeName", "String",
        "A_Const", "Integer", "Float", "Boolean", "BitString", "ParamRef", "CaseExpr", "CaseWhen",
        "A_Indirection", "A_Indices", "BoolExpr", "NullTest", "CoalesceExpr", "MinMaxExpr", "List",
        "A_ArrayExpr", "RowExpr", "BooleanTest",
    }
)  # fmt: skip
_SELECT_KEYS: Final = frozenset({"targetList", "limitOption", "op"})
_FUNC_KEYS: Final = frozenset({"funcname", "args", "funcformat", "location"})
#: A_Expr kinds whose name is the operator the planner calls (BETWEEN and the like are refused).
_OPERATOR_KINDS: Final = frozenset(
    {"AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL", "AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT", "AEXPR_NULLIF",
     "AEXPR_IN", "AEXPR_LIKE", "AEXPR_ILIKE"}
)  # fmt: skip


@dataclass
class _Body:
    """What a SQL function's body calls: functions (schema or None, name), operator symbols, cast target names."""

    functions: set[tuple[str | None, str]]
    operators: set[str]
    types: set[str]


#: The most a trusted SQL member's body may fold of its own constants (``repeat('x', 80)``, a format string …):
#: PostgreSQL inlines a SQL function into the query, and folds ``$1 || repeat('x', 300000000)`` whatever ``$1`` is
#: (602 MB for ``EXPLAIN SELECT pad_it(a) FROM t``).
BODY_CONSTANTS_MAX: Final = 1_000_000


def _body_constants(text: str) -> int:
    """What a SQL body's calls of constants build (its parameters are not constants); any routine it calls counts as
    its arguments (the body's calls are judged apart), a jsonpath of constants or an unbounded one as unknown."""
    try:
        tree = pglast.parse_sql(text)[0].stmt
    except (pglast.parser.ParseError, RecursionError, IndexError):
        return 0  # judged by _sql_body
    return 0 if tree is None else measure_postgres(tree, {}, vouched=_vouch_all).constant_bytes


def _sql_body(text: str) -> _Body | str:
    """The calls of a SQL function body, or why it is not judged (fail closed)."""
    if not text.strip():
        return "its body is not SQL text the service can read (BEGIN ATOMIC)"
    if view_memo.paren_depth(text) > view_memo.STORED_DEPTH_MAX:
        return "its body is nested too deeply for the service to parse"
    try:
        tree = json.loads(pglast.parser.parse_sql_json(text))
    except (pglast.parser.ParseError, RecursionError, ValueError) as exc:
        return f"its body could not be parsed by the service ({type(exc).__name__})"
    statements = tree.get("stmts") or []
    if len(statements) != 1:
        return "its body is not a single SELECT"
    body = _Body(set(), set(), set())

    def names(items: Any) -> list[str]:
        return [str(item.get("String", {}).get("sval", "")) for item in items or ()]

    stack: list[Any] = [statements[0]["stmt"]]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for kind, value in node.items():
            if kind not in _BODY_NODES:
                return f"its body holds {kind}, more than the service judges in an extension's SQL function"
            if not isinstance(value, dict):
                continue
            if kind == "SelectStmt" and (set(value) - _SELECT_KEYS or value.get("op") != "SETOP_NONE"):
                return "its body is more than a SELECT of expressions"
            if kind == "FuncCall":
                if set(value) - _FUNC_KEYS:
                    return "its body calls a function with a clause the service does not judge"
                parts = names(value.get("funcname"))
                body.functions.add((parts[-2] if len(parts) > 1 else None, parts[-1]))
            elif kind == "A_Expr":
                if value.get("kind") not in _OPERATOR_KINDS:
                    return f"its body holds {value.get('kind')}, more than the service judges"
                body.operators.add(names(value.get("name"))[-1])
            elif kind == "CaseExpr" and value.get("arg") is not None:
                body.operators.add("=")
            elif kind == "MinMaxExpr":
                body.operators.update(("<", ">"))
            elif kind == "TypeName":
                body.types.add(names(value.get("names"))[-1])
            elif kind == "TypeCast":
                body.types.add(names((value.get("typeName") or {}).get("names"))[-1])
                stack.append(value.get("arg"))
                continue
            if kind in ("A_Const", "String", "Integer", "Float", "Boolean", "BitString", "ParamRef"):
                continue  # values, not nodes, below
            stack.extend(v for k, v in value.items() if k not in ("funcname", "name", "names"))
    return body


@dataclass
class _TypeReach:
    """What a value of one type runs (the closure of _MEMBER_TYPES): per routine oid, how it is reached."""

    name: str
    calls: dict[int, str]
    types: set[int]  # the types reached (itself included)
    unreadable: str = ""  # a domain CHECK too large to read: the member is refused


def _default_problem(tree: str, body_max: int) -> tuple[str, set[int], set[int]]:
    """Why an extension member's argument defaults are not judged (fail closed), the routines they call and the
    types of their nodes (judged like the member's own types)."""
    if not tree:
        return f"its argument defaults are over the {body_max:,} characters read", set(), set()
    for match in _TREE_NODE.finditer(tree):
        node = match.group(1)
        if node is not None and node not in _DEFAULT_NODES:
            return f"an argument default holds {node}, more than the service judges", set(), set()
    return (
        "",
        {int(x) for x in _CALLED_OIDS.findall(tree)},
        {int(x) for x in _TREE_TYPES.findall(tree)},
    )


def _member_types(
    conn: Connection, roots: set[int], operator_procs: Mapping[int, tuple[int, ...]], tree_max: int
) -> dict[int, _TypeReach]:
    """Per root type, what a value of it runs: each reached domain's CHECK calls (operators by their functions)
    and each reached type's input and output functions."""
    out: dict[int, _TypeReach] = {}
    if not roots:
        return out
    rows = list(conn.execute(_MEMBER_TYPES, {"types": sorted(roots), "tree_max": tree_max}))
    names = {int(oid): str(name) for _, oid, name, *_ in rows}
    for root, oid, name, typinput, typoutput, checks in rows:
        reach = out.setdefault(int(root), _TypeReach(names.get(int(root), str(root)), {}, set()))
        reach.types.add(int(oid))
        held = "" if int(oid) == int(root) else f", which holds {name}"
        for proc, what in ((typinput, "input function"), (typoutput, "output function")):
            if proc:
                reach.calls.setdefault(int(proc), f"{held}, whose {what} is")
        for tree in checks or ():
            if not tree:
                reach.unreadable = f"{held}, a domain whose CHECK is too large to read"
                continue
            called = {int(x) for x in _CALLED_OIDS.findall(tree)}
            for opno in _CALLED_OPERATORS.findall(tree):
                called.update(operator_procs.get(int(opno), ()))
            for proc in called:
                reach.calls.setdefault(proc, f"{held}, a domain whose CHECK calls")
    return out


def _extension_members(
    conn: Connection,
    pending: list[Sequence[Any]],
    routines: list[PgRoutine],
    candidates: list[PgOperator],
    casts: list[tuple[int, int, str, int, str, str]],
    body_max: int,
    internal: Mapping[str, Sequence[str]] | None = None,
) -> list[PgRoutine]:
    """Judge the members of trusted extensions that their language left trusted (C of the extension's own
    library, internal running a trusted built-in, SQL) by what the planner runs when it folds a call of one:

    - a SQL one's body: it calls only trusted routines (built-ins off the deny list, trusted members, never an
      untrusted overload of a name it calls unqualified), through operators whose functions are trusted, and casts
      only to types with no untrusted cast or domain CHECK;
    - every one's argument and result types (and the types of its defaults), followed through domains, arrays,
      composites and ranges: no domain CHECK, input or output function reached calls an untrusted routine, and no
      untrusted cast ends in one of them (the planner coerces arguments, and a SQL function's result, to them);
    - every one's argument defaults (folded into a call that omits them, even one of columns): constants, casts and
      calls only, each call trusted and building at most a fixed multiple of its arguments (not ``repeat``, a
      jsonpath, a member that builds more: ``_builds_more``): a default of ``repeat('y', 300000000)`` took the
      backend to 1.5 GB on EXPLAIN of ``WHERE similarity2(a) > 0.5``.

    To a fixpoint (a member calling a refused member is refused). Return the refused ones."""
    bodies: dict[int, _Body | str] = {}
    folded: dict[int, int] = {}  # what a SQL body's own constants build when a call of it is inlined
    for row in pending:
        if row[5] != "sql":
            continue
        text, length = row[11], row[12]
        if text is None:
            bodies[int(row[0])] = (
                f"its body is {int(length or 0):,} characters long, over the {body_max:,} read"
            )
        else:
            bodies[int(row[0])] = _sql_body(str(text))
            if isinstance(bodies[int(row[0])], _Body):
                folded[int(row[0])] = _body_constants(str(text))
    type_calls: dict[str, set[int]] = defaultdict(set)
    unreadable_types: set[str] = set()
    operator_procs = {operator.oid: operator.procs for operator in candidates}
    if any(isinstance(b, _Body) and b.types for b in bodies.values()):
        for type_name, tree in conn.execute(_DOMAIN_CHECKS, {"tree_max": body_max}):
            if tree is None:
                unreadable_types.add(str(type_name))
                continue
            calls = type_calls[str(type_name)]
            calls.update(int(x) for x in _CALLED_OIDS.findall(str(tree)))
            for opno in _CALLED_OPERATORS.findall(str(tree)):
                calls.update(operator_procs.get(int(opno), ()))
    defaults: dict[int, tuple[str, set[int], set[int]]] = {}
    roots: set[int] = set()
    for row in pending:
        roots.update(int(a) for a in row[3] or ())
        roots.add(int(row[4]))
        if row[14] is not None:
            defaults[int(row[0])] = _default_problem(str(row[14]), body_max)
            roots.update(defaults[int(row[0])][2])
    type_reach = _member_types(conn, {t for t in roots if t >= FIRST_USER_OID}, operator_procs, _tree_max())
    # what the defaults call, by name: a built-in is sized by its name, a member by what it is
    default_calls = sorted({proc for _, calls, _ in defaults.values() for proc in calls})
    names: dict[int, str] = (
        {int(oid): str(name) for oid, name in conn.execute(_PROC_NAMES, {"oids": default_calls})}
        if default_calls
        else {}
    )
    sized = _sized_as_arguments({int(row[0]): row for row in pending}, internal or {})

    by_oid = {r.oid: r for r in routines}
    user_made: set[int] = set()
    sources = sorted({cast[0] for cast in casts})
    if sources:
        user_made = {int(oid) for oid, _, made in conn.execute(_TYPES, {"oids": sources}) if made}
    refused: list[PgRoutine] = []
    changed = True
    while changed:
        changed = False
        untrusted = set(by_oid)
        by_name: dict[str, list[PgRoutine]] = defaultdict(list)
        for routine in by_oid.values():
            by_name[routine.name].append(routine)
        bad_casts = {
            target: (source_name, target_name)
            for _, target, _, proc, source_name, target_name in casts
            if proc in untrusted
        }

        for row in pending:
            oid = int(row[0])
            if oid in by_oid:
                continue
            extension, args, returns = row[7], {int(a) for a in row[3] or ()}, int(row[4])
            body = bodies.get(oid)
            reason, denied = "", False
            if isinstance(body, str):
                reason = body
            elif body is not None:
                reason, denied = _body_problem(
                    body,
                    args,
                    returns,
                    by_name,
                    untrusted,
                    candidates,
                    casts,
                    user_made,
                    type_calls,
                    unreadable_types,
                )
            if not reason and folded.get(oid, 0) > BODY_CONSTANTS_MAX:
                reason = (
                    f"its body's constants make the planner build {folded[oid]:,} bytes whenever it inlines a call "
                    f"of it, whatever the arguments (over {BODY_CONSTANTS_MAX:,})"
                )
            if not reason and oid in defaults:
                problem, calls, types = defaults[oid]
                reason = problem
                for proc in sorted(calls):
                    if reason:
                        break
                    if proc in untrusted:
                        routine = by_oid[proc]
                        reason = f"an argument default calls {routine.signature} ({routine.reason})"
                        denied = routine.denied
                    elif not sized(proc, names.get(proc, "")):
                        reason = (
                            f"an argument default calls {names.get(proc, proc)}(), which builds more than a fixed "
                            "multiple of its arguments, and the planner folds a default into every call that omits it"
                        )
                for type_oid in sorted(types):
                    if not reason:
                        reason, denied = _type_problem(type_reach, by_oid, type_oid, "argument default's")
            if not reason:
                reason, denied = _type_problem(type_reach, by_oid, returns, "result")
            for type_oid in sorted(args):
                if not reason:
                    reason, denied = _type_problem(type_reach, by_oid, type_oid, "argument")
            for type_oid in sorted(args | {returns}):
                reach = type_reach.get(type_oid)
                if reason or reach is None:
                    continue
                for reached in sorted(reach.types & set(bad_casts)):
                    source_name, target_name = bad_casts[reached]
                    reason = (
                        f"its type {reach.name} is the target of the cast from {source_name} to {target_name}, "
                        "which is untrusted (the planner coerces arguments and results with it)"
                    )
                    break
            if reason:
                language = {"sql": "a SQL", "c": "a C", "internal": "an internal"}.get(str(row[5]), "a")
                routine = _make_routine(
                    row, f"{language} function of extension {extension}: {reason}", denied
                )
                by_oid[oid] = routine
                refused.append(routine)
                changed = True
    return refused


def _type_problem(
    type_reach: Mapping[int, _TypeReach], by_oid: Mapping[int, PgRoutine], type_oid: int, where: str
) -> tuple[str, bool]:
    """Why a value of this type runs an untrusted routine (a domain CHECK, an input or output function), or ""."""
    reach = type_reach.get(type_oid)
    if reach is None:
        return "", False
    if reach.unreadable:
        return f"its {where} type {reach.name}{reach.unreadable}", False
    for proc, how in sorted(reach.calls.items()):
        routine = by_oid.get(proc)
        if routine is not None:
            return (
                f"its {where} type {reach.name}{how} {routine.signature} ({routine.reason})",
                routine.denied,
            )
    return "", False


def _body_problem(
    body: _Body,
    args: set[int],
    returns: int,
    by_name: Mapping[str, list[PgRoutine]],
    untrusted: set[int],
    candidates: list[PgOperator],
    casts: list[tuple[int, int, str, int, str, str]],
    user_made: set[int],
    type_calls: Mapping[str, set[int]],
    unreadable_types: set[str],
) -> tuple[str, bool]:
    """Why a SQL member's parsed body is not trusted (and whether for a denied routine), or ("", False)."""
    for schema, name in sorted(body.functions, key=lambda c: (c[0] or "", c[1])):
        if schema in (None, "pg_catalog") and is_denied_function(name, "postgresql"):
            return f"its body calls {name}(), on the service's deny list", True
        bad = [
            r
            for r in by_name.get(name, ())
            if schema is None or r.schema == schema or (schema == "pg_catalog" and r.oid < 16384)
        ]
        if bad:
            return f"its body calls {bad[0].signature} ({bad[0].reason})", any(r.denied for r in bad)
    for operator in candidates:
        if operator.symbol in body.operators and untrusted.intersection(operator.procs):
            return f"its body uses operator {operator.signature}, which reaches an untrusted routine", False
    for source, _target, context, proc, source_name, target_name in casts:
        if proc not in untrusted:
            continue
        source_end = source_name.rsplit(".", 1)[-1].strip('"')
        target_end = target_name.rsplit(".", 1)[-1].strip('"')
        # A cast runs on a value of its source type: one the body can have (its parameters, its result, a type it
        # casts to, or any type not made by a user: built-ins and extensions' types come out of the calls it
        # makes); explicit ones only when the body casts to the target, implicit and assignment ones on any call.
        has_source = source in args | {returns} or source_end in body.types or source not in user_made
        if has_source and (context in ("i", "a") or target_end in body.types):
            return f"its body can run the cast from {source_name} to {target_name}, which is untrusted", False
    for type_name in sorted(body.types):
        if type_name in unreadable_types or type_calls.get(type_name, set()) & untrusted:
            return f"its body casts to {type_name}, a domain whose CHECK is not trusted", False
    return "", False


def load_catalog(
    conn: Connection, fingerprint: str, memo: ViewMemo | None = None, view_seconds: float = VIEW_WORK_SECONDS
) -> PgCatalog:
    """Read the catalog facts the policy judges by (a few queries; cache them under the fingerprint).

    Type names in messages are spelled with an empty search path (schema-qualified unless built in), so
    they do not depend on the session that happened to read them; the path is restored afterwards.
    """
    path = conn.execute(_GET_PATH).scalar_one()
    conn.execute(_SET_PATH, {"path": "pg_catalog"})
    try:
        return _load_catalog(conn, fingerprint, memo if memo is not None else ViewMemo(), view_seconds)
    finally:
        conn.execute(_SET_PATH, {"path": path})


def _load_catalog(conn: Connection, fingerprint: str, memo: ViewMemo, view_seconds: float) -> PgCatalog:
    patterns = [prefix.translate(_LIKE_ESCAPES) + "%" for prefix in POSTGRES_DENIED_PREFIXES]
    body_max = view_memo.VIEW_DEFINITION_MAX
    rows = list(
        conn.execute(
            _ROUTINES,
            {"denied": sorted(POSTGRES_DENIED_FUNCTIONS), "patterns": patterns, "body_max": body_max},
        )
    )
    internal: dict[str, list[str]] = {}
    if any(row[7] is not None and row[5] == "internal" for row in rows):
        internal = {str(symbol): list(names) for symbol, names in conn.execute(_INTERNAL_SYMBOLS)}
    routines: list[PgRoutine] = []
    pending: list[Sequence[Any]] = []
    for row in rows:
        routine = _routine(row, internal)
        if routine is not None:
            routines.append(routine)
        elif int(row[0]) >= FIRST_USER_OID:
            pending.append(row)  # a member of a trusted extension: judged by its body, types and defaults
    candidates = _operator_candidates(conn)
    cast_rows = list(conn.execute(_CASTS))
    all_casts = [
        (int(source), int(target), str(context), int(proc), str(source_name), str(target_name))
        for source, target, context, proc, source_name, target_name, *_ in cast_rows
    ]
    # A C member runs a symbol of its library, whatever it is named: a member that runs the symbol of an unbounded
    # one (PostGIS's ST_Buffer is 'buffer') builds what that one does. Keyed apart from the internal symbols.
    for member in pending:
        if member[5] == "c":
            internal.setdefault(_c_symbol(member), []).append(str(member[2]).lower())
    if pending:
        routines += _extension_members(conn, pending, routines, candidates, all_casts, body_max, internal)
    untrusted = {routine.oid for routine in routines}
    # the trusted SQL and internal members under the name of a function the budget sizes by name (sized as what
    # they are named, they would fold what their body or symbol builds: repeat() as similarity())
    # ... and the user's operators and casts whose function is not sized as its arguments (repeat(), a namesake, a
    # member under another name): folding one of constants calls it. A member's body that uses one builds what it
    # builds, so that member is a namesake too, and so on: until nothing changes (each round only adds).
    all_fold_casts = [
        PgCast(
            int(row[0]),
            int(row[1]),
            str(row[2]),
            int(row[3]),
            f"cast from {row[4]} to {row[5]}",
            target_schema=str(row[6]),
            target_type=str(row[7]),
            runs=(str(row[8]), str(row[9])),
        )
        for row in cast_rows
    ]
    members = {int(row[0]): row for row in pending if int(row[0]) not in untrusted}
    folds: tuple[set[str], set[str]] = (set(), set())  # the symbols and cast target types of those
    while True:
        sized = _sized_as_arguments(members, internal, *folds)
        folded_operators = [
            dataclasses.replace(o, runs=runs, run_oids=oids)
            for o in candidates
            for runs, oids in [_unsized(o.runs, o.run_oids, sized)]
            if runs
        ]
        folded_casts = [c for c in all_fold_casts if not sized(c.proc, c.runs[1])]
        found = ({o.symbol for o in folded_operators}, {c.target_type.lower() for c in folded_casts})
        if found == folds:
            break
        folds = found
    namesakes = [
        _make_routine(row, "a member of a trusted extension named like a function sized by its name", False)
        for row in members.values()
        if _namesake(row, internal, *folds)
    ]
    operators = [operator for operator in candidates if untrusted.intersection(operator.procs)]
    casts = [
        PgCast(source, target, context, proc, f"cast from {source_name} to {target_name}")
        for source, target, context, proc, source_name, target_name in all_casts
        if proc in untrusted
    ]
    hits, domain_hits = _hits(conn, sorted(untrusted), sorted(o.oid for o in operators))
    # what the planner calls on values the query does not show (statistics, sorting, hashing) is never sized: a
    # trusted member that builds more than its arguments counts there (range subtype_diff, btree support …)
    heavy = [
        _make_routine(
            row,
            f"a {row[5]} function of extension {row[7]} that builds more than a fixed multiple of its arguments, "
            "which the planner calls on values the query does not show",
            False,
        )
        for row in members.values()
        if _builds_more(row, internal, *folds)
    ]
    type_hits = _type_hits(
        conn,
        sorted(untrusted | {r.oid for r in heavy}),
        sorted({o.oid for o in operators} | {o.oid for o in folded_operators}),
    )
    relations, complete = _relations(
        conn, hits, memo, view_seconds, ViewCalls.of(namesakes, folded_operators, folded_casts)
    )
    type_oids = {t for r in routines for t in (*r.args, r.returns)}
    type_oids |= {t for o in operators for t in (o.left, o.right) if t}
    type_oids |= {t for c in casts for t in (c.source, c.target)} | set(domain_hits) | set(type_hits)
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
        type_hits=type_hits,
        complete=complete,
        namesakes=namesakes,
        folded_operators=folded_operators,
        folded_casts=folded_casts,
        heavy=heavy,
    )


def _sized_as_arguments(
    members: Mapping[int, Sequence[Any]],
    internal: Mapping[str, Sequence[str]],
    operators: Iterable[str] = (),
    casts: Iterable[str] = (),
) -> Callable[[int, str], bool]:
    """Whether folding a call of the function ``oid`` (named ``name``) builds at most a fixed multiple of its
    arguments, or a reviewed fixed size (pgvector's dimensions). A built-in by its name; a trusted extension's member
    by what it is (``_builds_more``): the extensions' own C operator and cast functions (PostGIS's
    ``geometry_overlaps``, pgvector's ``vector_lt`` …) are, and so are SQL members that call only such functions (a
    namesake never is; ``operators``, ``casts``: see ``_builds_more``). A routine the policy refuses is judged there.
    An operator or a cast whose functions all are is sized as its operands."""

    def sized(oid: int, name: str) -> bool:
        row = members.get(oid)
        if row is not None:
            return not _builds_more(row, internal, operators, casts)
        return oid >= FIRST_USER_OID or pg_bounded_by_arguments(name) or name.lower() in EXTENSION_DIMENSIONS

    return sized


def _unsized(
    runs: Sequence[tuple[str, str]], oids: Sequence[int], sized: Callable[[int, str], bool]
) -> tuple[tuple[tuple[str, str], ...], tuple[int, ...]]:
    """The functions of an operator that are not sized as their arguments (and their oids)."""
    kept = [(run, oid) for run, oid in zip(runs, oids, strict=True) if not sized(oid, run[1])]
    return tuple(run for run, _ in kept), tuple(oid for _, oid in kept)


#: Types a cast pads to its length (``$1::char(10485760)``): sized by the cast's value, not its argument.
_PADDED_TYPES: Final = frozenset({"bpchar", "char", "character", "bit"})


def _c_symbol(row: Sequence[Any]) -> str:
    """The key of a C member's library and symbol among the internal symbols (``c:`` keeps the two apart)."""
    return f"c:{str(row[13] or '').lower()}:{str(row[11] or '').lower()}"


def _namesake(
    row: Sequence[Any],
    internal: Mapping[str, Sequence[str]],
    operators: Iterable[str] = (),
    casts: Iterable[str] = (),
) -> bool:
    """Whether a trusted member of a trusted extension has the name of a function the budget sizes by name (a
    built-in's, a reviewed extension function's) but builds more than a fixed multiple of its arguments
    (``_builds_more``). A member exactly as its extension ships it (``pg_members.STOCK_MEMBERS``: citext's
    ``replace``, pgcrypto's ``pgp_sym_encrypt``) is what the reviewed sizing of its name is about, and never one."""
    return (
        pg_sized_by_name("", str(row[2]))
        and member_digest(row[7], row[2], row[6], row[5], row[11], row[13]) not in STOCK_MEMBERS
        and _builds_more(row, internal, operators, casts)
    )


def _builds_more(
    row: Sequence[Any],
    internal: Mapping[str, Sequence[str]],
    operators: Iterable[str] = (),
    casts: Iterable[str] = (),
) -> bool:
    """Whether folding a call of a trusted member may build more than a fixed multiple of its arguments: a SQL body,
    or the built-in an internal symbol names, that calls ``repeat``, ``lpad``, a jsonpath, a routine the budget does
    not size, or casts to a padded type, or uses one of ``operators`` or casts to one of ``casts`` (the user's
    operators and cast targets whose function is not sized as its arguments); a C function named, or whose symbol
    is named, like an unbounded extension function, or running the symbol of a member that is (``internal`` also
    holds the members by library and symbol: ``_c_symbol``); any other language (not trusted: judged by the
    policy)."""
    name, language, body = str(row[2]), row[5], row[11]
    if language == "c":
        symbol = str(body or "").lower()
        names = {name.lower(), *internal.get(_c_symbol(row), ())}  # every member that runs this symbol
        return any(pg_extension_unbounded(n) for n in names) or (
            symbol != name.lower() and pg_extension_unbounded(symbol)
        )
    if language == "internal":
        return not all(pg_bounded_by_arguments(runs) for runs in internal.get(str(body or ""), ("?",)))
    if language != "sql":
        return True
    judged = _sql_body(str(body or ""))
    if isinstance(judged, str):
        return True  # not read: it was refused as a routine anyway, and is of unknown size here too
    return (
        bool(judged.types & (_PADDED_TYPES | set(casts)))
        or bool(judged.operators & set(operators))
        or not all(pg_bounded_by_arguments(runs) for _, runs in judged.functions)
    )


def _operator_candidates(conn: Connection) -> list[PgOperator]:
    """The user's operators with every routine they reach: their function and estimators, and through their
    commutator and negator, transitively (the planner swaps those in and calls what they call). Those that
    reach an untrusted routine are the policy's."""
    rows: dict[int, Sequence[Any]] = {int(row[0]): row for row in conn.execute(_OPERATORS)}

    def signature(oid: int) -> str:
        row = rows[oid]
        return f"{row[1]}.{row[2]}({row[8]}, {row[9]})"

    out: list[PgOperator] = []
    for oid, row in rows.items():
        # Breadth first, so each routine is named with the shortest chain of links to it.
        procs: list[int] = []
        paths: list[str] = []
        # the functions it folds with: its own, its commutator's and negator's
        runs: list[tuple[str, str]] = []
        run_oids: list[int] = []
        queue: deque[tuple[int, str]] = deque([(oid, "")])
        seen = {oid}
        while queue:
            current, path = queue.popleft()
            here = rows.get(current)
            if here is None:
                continue  # a built-in linked to nothing of the user's: its own routines are built-in
            if here[15] is not None and int(here[5]) not in run_oids:
                runs.append((str(here[14]), str(here[15])))
                run_oids.append(int(here[5]))
            for proc in (here[5], here[6], here[7]):
                if proc and int(proc) not in procs:
                    procs.append(int(proc))
                    paths.append(path)
            for link, kind in ((here[12], "commutator"), (here[13], "negator")):
                if link and int(link) not in seen:
                    seen.add(int(link))
                    label = f"{kind} {signature(int(link))}" if int(link) in rows else f"{kind} {int(link)}"
                    queue.append((int(link), f"{path}{label} → "))
        out.append(
            PgOperator(
                oid=oid,
                schema=row[1],
                symbol=row[2],
                left=int(row[3]),
                right=int(row[4]),
                procs=tuple(procs),
                signature=signature(oid),
                builtin_name=bool(row[10]),
                builtin_twin=bool(row[11]),
                paths=tuple(paths),
                runs=tuple(runs),
                run_oids=tuple(run_oids),
            )
        )
    return out


def _type_hits(conn: Connection, procs: list[int], operators: list[int]) -> dict[int, tuple[PgHit, ...]]:
    """Per type, what the planner calls for any value of it that reaches an untrusted routine or operator (or one
    that builds more than its arguments: ``procs``, ``operators``): the members of btree and hash operator families
    on it, and a range type's subtype_diff, canonical function and subtype operator class (a multirange's are its
    range's)."""
    by_type: dict[int, list[PgHit]] = defaultdict(list)
    by_family: dict[int, list[PgHit]] = defaultdict(list)
    if procs or operators:
        for family, method, name, left, right, is_proc, target, what in conn.execute(
            _FAMILY_MEMBERS, {"procs": procs, "operators": operators}
        ):
            member = PgHit(via=what, proc=int(target)) if is_proc else PgHit(via=what, operator=int(target))
            by_family[int(family)].append(member)
            if method in ("btree", "hash"):
                hit = PgHit(
                    via=f"{method} operator family {name} ({what})",
                    proc=member.proc,
                    operator=member.operator,
                )
                for type_oid in {int(left), int(right)}:
                    if type_oid and hit not in by_type[type_oid]:
                        by_type[type_oid].append(hit)
    untrusted = set(procs)
    for range_oid, multirange_oid, subdiff, canonical, family, opclass in conn.execute(_RANGES):
        hits: list[PgHit] = []
        if subdiff and int(subdiff) in untrusted:
            hits.append(PgHit(via="range subtype_diff", proc=int(subdiff)))
        if canonical and int(canonical) in untrusted:
            hits.append(PgHit(via="range canonical function", proc=int(canonical)))
        for member in by_family.get(int(family), ()):
            hits.append(
                PgHit(
                    via=f"range subtype operator class {opclass} ({member.via})",
                    proc=member.proc,
                    operator=member.operator,
                )
            )
        for type_oid in (int(range_oid), int(multirange_oid)):
            if type_oid:
                by_type[type_oid].extend(hit for hit in hits if hit not in by_type[type_oid])
    return {k: tuple(v) for k, v in by_type.items() if v}


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
        rows += conn.execute(
            _BUILTIN_HITS, {"procs": builtins, "alternatives": alternatives, "tree_max": _tree_max()}
        )
    for owner, owner_oid, via, is_proc, target in rows:
        hit = PgHit(via=via, proc=int(target)) if is_proc else PgHit(via=via, operator=int(target))
        bucket = by_relation if owner == "r" else by_domain
        if hit not in bucket[int(owner_oid)]:
            bucket[int(owner_oid)].append(hit)
    return by_relation, {k: tuple(v) for k, v in by_domain.items()}


def _relations(
    conn: Connection,
    hits: dict[int, list[PgHit]],
    memo: ViewMemo,
    view_seconds: float,
    calls: ViewCalls | None = None,
) -> tuple[list[PgRelation], bool]:
    """Build the relations that matter: with hits, views (and what they read), parents of children; and
    whether every view's definition was measured (not: some are refused until the next read)."""
    reads: dict[int, list[int]] = defaultdict(list)
    times: dict[int, list[int]] = defaultdict(list)
    with_cte: set[int] = set()
    for view, read, count, has_cte in conn.execute(_VIEW_READS, {"tree_max": _tree_max()}):
        reads[int(view)].append(int(read))
        times[int(view)].append(int(count))
        if has_cte:
            with_cte.add(int(view))
    if with_cte:
        for view, text in conn.execute(_VIEW_RULES, {"oids": sorted(with_cte), "tree_max": _tree_max()}):
            counted = _rule_reads(str(text))
            times[int(view)] = [
                max(t, counted.get(r, 0), 1) for r, t in zip(reads[int(view)], times[int(view)], strict=True)
            ]
    children: dict[int, list[int]] = defaultdict(list)
    for parent, child in conn.execute(_INHERITS):
        children[int(parent)].append(int(child))
    constants, unparsed, complete = _view_constants(conn, reads, memo, view_seconds, calls or ViewCalls())
    table_bytes, table_problems, tables_done = _table_constants(
        conn, calls or ViewCalls(), memo, view_seconds
    )
    complete = complete and tables_done
    for oid, problem in table_problems.items():
        unparsed.setdefault(oid, problem)
    oids = set(hits) | set(reads) | set(children) | set(constants) | set(unparsed)
    oids |= {oid for oid, built in table_bytes.items() if built}
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
                reads=tuple(reads.get(oid, ())),
                read_times=tuple(times.get(oid, ())),
                children=tuple(children.get(oid, ())),
                constant_bytes=(constants[oid][0] if oid in constants else 0) + table_bytes.get(oid, 0),
                outputs=tuple(constants[oid][1].items()) if oid in constants else (),
                problem=unparsed.get(oid, ""),
            )
        )
    return out, complete


@dataclass
class _RuleQuery:
    """One query of a stored rule: its lexical parent, its CTEs (name → index), the relations its range table
    names, its CTE references (name, levels up), and the queries nested in it that are not CTE bodies."""

    parent: int | None
    ctes: dict[str, int]
    relids: dict[int, int]
    refs: list[tuple[str, int]]
    children: list[int]


def _rule_reads(text: str) -> dict[int, int]:
    """How many times the planner may read each relation of a view's stored rule (nodeToString text): the range
    tables' relations, each subquery's and sublink's once, and each CTE's as many times as it is referenced (the
    planner inlines a CTE once per reference; a MATERIALIZED one is planned once, counted per reference too), a
    recursive CTE's twice per reference, CTEs referencing CTEs multiplied through. Linear in the text: each
    query's reads are computed once (memoised), iteratively."""
    queries: list[_RuleQuery] = []
    bodies: list[int | None] = []  # per CTE, its query
    recursive: list[bool] = []
    stack: list[tuple[str, int]] = []  # open braces: ("q", query), ("c", CTE), ("o", -1)
    current: list[int] = []  # open queries
    ctes: list[int] = []  # open CTEs
    for match in _RULE_TOKENS.finditer(text):
        query, cte_name, is_recursive, relid, ref_name, levels, self_ref, opening, closing = match.groups()
        if query is not None:
            parent = current[-1] if current else None
            queries.append(_RuleQuery(parent, {}, {}, [], []))
            index = len(queries) - 1
            if stack and stack[-1][0] == "c":
                bodies[stack[-1][1]] = index
            elif parent is not None:
                queries[parent].children.append(index)
            stack.append(("q", index))
            current.append(index)
        elif cte_name is not None:
            bodies.append(None)
            recursive.append(False)
            if current:
                queries[current[-1]].ctes[cte_name] = len(bodies) - 1
            stack.append(("c", len(bodies) - 1))
            ctes.append(len(bodies) - 1)
        elif is_recursive is not None:
            if ctes:
                recursive[ctes[-1]] = True
        elif relid is not None:
            if current:
                here = queries[current[-1]].relids
                here[int(relid)] = here.get(int(relid), 0) + 1
        elif ref_name is not None:
            if current and self_ref == "false":
                queries[current[-1]].refs.append((ref_name, int(levels)))
        elif opening is not None:
            stack.append(("o", -1))
        elif closing is not None and stack:
            kind, _ = stack.pop()
            if kind == "q":
                current.pop()
            elif kind == "c":
                ctes.pop()

    def deps(index: int) -> list[tuple[int, int]]:
        """The queries this one's reads include: (query, times)."""
        out = [(child, 1) for child in queries[index].children]
        for name, levels in queries[index].refs:
            owner: int | None = index
            for _ in range(levels):
                owner = None if owner is None else queries[owner].parent
            cte = None if owner is None else queries[owner].ctes.get(name)
            body = None if cte is None else bodies[cte]
            if cte is not None and body is not None:
                out.append((body, 2 if recursive[cte] else 1))
        return out

    memo: dict[int, dict[int, int]] = {}
    for root in range(len(queries)):
        if queries[root].parent is not None or root in memo:
            continue
        work: list[tuple[int, bool]] = [(root, False)]
        active: set[int] = set()
        while work:
            index, expanded = work.pop()
            if index in memo:
                continue
            if not expanded:
                if index in active:
                    continue  # a cycle (a recursive CTE's body): what is already counted
                active.add(index)
                work.append((index, True))
                work.extend((dep, False) for dep, _ in deps(index) if dep not in memo and dep not in active)
                continue
            total = dict(queries[index].relids)
            for dep, factor in deps(index):
                for oid, count in memo.get(dep, {}).items():
                    total[oid] = min(_READS_CAP, total.get(oid, 0) + factor * count)
            memo[index] = total
            active.discard(index)
    out: dict[int, int] = {}
    for root in range(len(queries)):
        if queries[root].parent is None:
            for oid, count in memo.get(root, {}).items():
                out[oid] = min(_READS_CAP, out.get(oid, 0) + count)
    return out


def _table_constants(
    conn: Connection, calls: ViewCalls, memo: ViewMemo, view_seconds: float
) -> tuple[dict[int, int], dict[int, str], bool]:
    """Per table, what the calls of constants in its own definitions (``_TABLE_EXPRESSIONS``) make the planner build
    when it plans a query on it, measured like a view's definition (nothing vouched for, what the database's
    operators and casts run counted); per table, why one could not be measured (refused, fail closed); and whether
    all were measured within ``view_seconds`` (those that were not are refused until the next read, which goes on:
    measures are memoised by the definition's text in ``memo.expressions``)."""
    rows = list(conn.execute(_TABLE_EXPRESSIONS, {"tree_max": _tree_max()}))
    if (conn.dialect.server_version_info or (0,)) >= (14,):
        rows += conn.execute(_STATISTICS_EXPRESSIONS, {"tree_max": _tree_max()})
    clock = WorkClock(view_seconds)
    measure = calls.calls()
    built: dict[int, int] = defaultdict(int)
    problems: dict[int, str] = {}
    live: set[tuple[str, ViewCalls]] = set()
    complete = True
    for relid, via, text, kind in rows:
        oid = int(relid)
        if text is None:
            problems.setdefault(oid, f"its {via} is too long for the service to measure")
            continue
        sql = f"SELECT ({text})" if kind == "expression" else f"CREATE TABLE _t (_c int) PARTITION BY {text}"
        key = (hashlib.sha256(sql.encode()).hexdigest(), calls)
        live.add(key)
        if key not in memo.expressions:
            if not clock.allows():
                complete = False
                problems.setdefault(
                    oid,
                    f"its {via} was not measured yet: the database's definitions take more than {view_seconds:g} s "
                    "to measure (the service goes on at the next preflight)",
                )
                continue
            tree = None
            if not too_big_to_parse(len(sql), sql, view_memo.VIEW_DEFINITION_MAX):
                with contextlib.suppress(pglast.parser.ParseError, RecursionError, IndexError):
                    tree = pglast.parse_sql(sql)[0].stmt
            memo.expressions[key] = (
                -1
                if tree is None
                else measure_postgres(tree, {}, vouched=_vouch_none, calls=measure).constant_bytes
            )
        if memo.expressions[key] < 0:
            problems.setdefault(
                oid, f"its {via} could not be parsed by the service, so it cannot be measured"
            )
        else:
            built[oid] += memo.expressions[key]
    memo.expressions = {k: v for k, v in memo.expressions.items() if k in live}
    return dict(built), problems, complete


def _view_constants(
    conn: Connection,
    reads: dict[int, list[int]],
    memo: ViewMemo,
    view_seconds: float,
    calls: ViewCalls | None = None,
) -> tuple[dict[int, tuple[int, dict[str, Any]]], dict[int, str], bool]:
    """Per user view with constants: the bytes its definition makes the planner build, and its constant
    columns (by name). A view's definition is measured with the constant columns of the views it reads,
    transitively (by name, the larger of two: ``SELECT repeat('x', p.n) FROM params p`` over ``params AS
    SELECT 100000007 AS n`` builds what ``params`` holds; so does a view of a view renaming ``n``).

    Also, per view that is refused whatever it calls, why: a definition that cannot be parsed (what it makes
    the planner fold cannot be measured: fail closed, never accepted unmeasured), or one not measured within
    ``view_seconds`` (then the third value is False: the catalog is incomplete and read again next time).
    Parsing and measuring are memoised in ``memo`` by (oid, digest of the definition). ``calls``: what calls,
    operators and casts of constants run in this database, in any schema (:class:`ViewCalls`)."""
    calls = calls or ViewCalls()
    max_chars = view_memo.VIEW_DEFINITION_MAX
    unparsed: dict[int, str] = {}
    wanted: list[int] = []
    quoting = conn.execute(_GET_QUOTING).scalar_one()
    try:
        conn.execute(_SET_QUOTING, {"value": "off"})
        for oid, tree, length in conn.execute(_VIEW_LENGTHS, {"tree_max": _tree_max()}):
            if length is None:  # the rule is too large to deparse: its definition was never built
                unparsed[int(oid)] = (
                    f"its stored rule is {int(tree):,} bytes, too large for a definition the service parses "
                    f"(at most {max_chars:,} characters), so it was not read"
                )
            elif int(length) > max_chars:
                too_big = too_big_to_parse(int(length), None, max_chars)
                unparsed[int(oid)] = f"{too_big}, so what it makes the planner run cannot be checked"
            else:
                wanted.append(int(oid))
        conn.execute(_SET_QUOTING, {"value": "on"})
        fetched = list(conn.execute(_VIEW_TEXTS, {"oids": wanted})) if wanted else []
    finally:
        conn.execute(_SET_QUOTING, {"value": quoting})
    definitions: list[tuple[int, str]] = []
    for oid, definition in fetched:
        if definition is None:
            continue  # dropped meanwhile
        too_deep = too_big_to_parse(0, str(definition), max_chars)
        if too_deep:
            unparsed[int(oid)] = f"{too_deep}, so what it makes the planner run cannot be checked"
        else:
            definitions.append((int(oid), str(definition)))
    if unparsed:
        log.warning(
            "View definitions: %d too large or deep to parse; queries reading them are refused", len(unparsed)
        )
    text = dict(definitions)
    keys = {oid: (oid, hashlib.sha256(definition.encode()).hexdigest()) for oid, definition in definitions}
    memo.prune(set(keys.values()))
    clock = WorkClock(view_seconds)
    trees: dict[int, Any] = {}  # parsed in this read, only when something about the view is not memoised

    def in_time() -> None:
        # before each unit of work on one view (a parse; a parse and what is measured on it), never inside one
        if not clock.allows():
            raise _OutOfTime

    def tree_of(oid: int) -> Any:
        if oid not in trees:
            trees[oid] = pglast.parse_sql(text[oid])[0].stmt
        return trees[oid]

    late: set[int] = set()
    parsable: list[int] = []
    for oid, _ in definitions:
        key = keys[oid]
        if key not in memo.parsed and key not in memo.errors:
            try:
                in_time()
                if tree_of(oid) is None:
                    raise IndexError("no statement")
                memo.parsed.add(key)
            except _OutOfTime:
                late.add(oid)
                continue
            except (pglast.parser.ParseError, RecursionError, IndexError) as exc:
                log.warning("Could not parse the definition of view %s; a query reading it is refused", oid)
                memo.errors[key] = f"{type(exc).__name__}: {str(exc)[:120]}"
        if key in memo.errors:
            unparsed[oid] = (
                f"its definition could not be parsed by the service ({memo.errors[key]}), so what it makes "
                "the planner fold cannot be measured"
            )
        else:
            parsable.append(oid)

    def outputs_of(oid: int, seed: Mapping[str, Any]) -> dict[str, Any]:
        key = (*keys[oid], tuple(sorted(seed.items())))
        if key not in memo.outputs:
            in_time()
            memo.outputs[key] = dict(pg_view_outputs(tree_of(oid), seed))
        return memo.outputs[key]

    # A view that reads one not parsed in time is measured without its constants: it is late too (below).
    views = {oid: [read for read in reads.get(oid, ()) if read in parsable] for oid in parsable}
    out: dict[int, tuple[int, dict[str, Any]]] = {}
    try:
        settled = settle_view_outputs(views, outputs_of)
    except _OutOfTime:
        settled = {}
        late |= set(parsable)
    for oid, (seed, outputs) in settled.items():
        measured = (*keys[oid], tuple(sorted(seed.items())), calls)
        if measured not in memo.measured:
            try:
                in_time()
            except _OutOfTime:
                late.add(oid)
                continue
            tree = tree_of(oid)
            # strict: a routine a view calls on constants that is neither a built-in nor a reviewed extension
            # function is of unknown size (an extension's member under another name; budget._pg_unknown), and so
            # is one of a namesake's name, or an operator or cast of the user's over such a function, in any schema
            memo.measured[measured] = measure_postgres(
                tree, seed, vouched=_vouch_none, calls=calls.calls()
            ).constant_bytes
        constant_bytes = memo.measured[measured]
        if constant_bytes or outputs:
            out[oid] = (constant_bytes, outputs)
    # Transitively: a view reading a late one was measured with an incomplete seed.
    changed = True
    while changed:
        changed = False
        for oid in parsable:
            if oid not in late and any(read in late for read in reads.get(oid, ())):
                late.add(oid)
                changed = True
    for oid in late:
        out.pop(oid, None)
        unparsed[oid] = (
            f"its definition was not measured yet: the database's view definitions take more than "
            f"{view_seconds:g} s to parse and measure (the service goes on at the next preflight)"
        )
    if late:
        log.warning(
            "View definitions: %d of %d not measured in %g s", len(late), len(definitions), view_seconds
        )
    return out, unparsed, not late


def _tree_max() -> int:
    """The largest stored view rule (bytes of its tree's text) whose definition the service builds and reads."""
    return view_memo.VIEW_DEFINITION_MAX * view_memo.VIEW_RULE_BYTES_PER_CHAR


def _chunks(conn: Connection, oids: list[int], size: int = 10_000) -> Iterable[tuple[int, str, str, str]]:
    for start in range(0, len(oids), size):
        for oid, schema, name, kind in conn.execute(_RELATIONS, {"oids": oids[start : start + size]}):
            yield int(oid), schema, name, kind


@dataclass(frozen=True, slots=True)
class ViewCalls:
    """What calls, operators and casts of constants run in a view's definition (``budget.DatabaseCalls``), in any
    schema: a view is measured once, for every search path. Hashable: part of the memo's key of a measured view."""

    namesakes: frozenset[str] = frozenset()  # names of PgCatalog.namesakes
    operators: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # (symbol, functions it runs)
    casts: tuple[tuple[str, tuple[str, str]], ...] = ()  # (target type name, function)
    implicit: str = ""

    @classmethod
    def of(
        cls, namesakes: Iterable[PgRoutine], operators: Iterable[PgOperator], casts: Iterable[PgCast]
    ) -> ViewCalls:
        casts = list(casts)
        return cls(
            frozenset(r.name.lower() for r in namesakes),
            tuple(sorted({(o.symbol, o.runs) for o in operators})),
            tuple(sorted({(c.target_type.lower(), c.runs) for c in casts})),
            next((f"{c.signature}, an implicit cast" for c in casts if c.context == "i"), ""),
        )

    def calls(self) -> DatabaseCalls:
        """The same as answers to the budget's questions, whatever schema a call names."""
        return DatabaseCalls(
            namesake=lambda _, name: name in self.namesakes,
            operator=lambda _, symbol: [runs for s, fns in self.operators if s == symbol for runs in fns],
            cast=lambda _, type_name: [runs for t, runs in self.casts if t == type_name],
            implicit=self.implicit,
        )


def _vouch_all(schema: str, name: str) -> bool:
    """Every routine a member's body calls is sized as its arguments here (it is judged by what it is elsewhere)."""
    return True


def _vouch_none(schema: str, name: str) -> bool:
    """No routine is vouched for in a view's definition (see ``budget._pg_unknown``)."""
    return False
