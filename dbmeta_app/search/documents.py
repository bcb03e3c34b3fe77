"""The text indexed for each table: pure functions, no I/O.

Every table yields one table-level document and one document per column; a snapshot with
several schemas also yields one document per schema. Each document carries two texts: the
natural-language ``text`` that is embedded, and the normalised ``lexical`` terms that Milvus
scores with BM25. Documents are grouped per table (and per schema); a group's content hash
covers all of its documents and the embedding model, so a sync re-embeds exactly the groups
whose hash changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from dbmeta_app.schema.families import collapse, detect_families, without_relative_modifiers
from dbmeta_app.schema.models import Column, Snapshot, Table

# Bump when the document format changes: every hash changes, so everything is re-embedded.
DOCUMENT_FORMAT = "2"

KIND_TABLE = "table"
KIND_COLUMN = "column"
KIND_SCHEMA = "schema"
KIND_EXAMPLE = "example"  # a query example whose SQL fits the schema
KIND_STALE_EXAMPLE = "stale_example"  # one that does not: indexed, never searched

# Milvus VARCHAR limits are in bytes; keep a margin under the field sizes of the collection.
MAX_NAME_BYTES = 2048  # table keys and schema names
MAX_TEXT_BYTES = 16_000
MAX_LEXICAL_BYTES = 60_000

_CHUNK = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script

# English function words and the verbs of request phrasing ("list the ...", "how many ...").
# They carry no table signal, and the Milvus Lite analyzer ignores stop-word filters.
_STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either every
    few for from further had has have having he her here hers him his how i if in into is it its
    just me more most my no nor not of off on once only or other our out over own same she
    should so some such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom whose why will
    with would you your
    among calculate describe display find give indicate list mention please provide show state
    tell
    """.split()
)


@dataclass(frozen=True, slots=True)
class Document:
    """One indexed row: a table, one of its columns, or a schema."""

    id: str  # primary key in the collection, unique per snapshot
    kind: str  # KIND_TABLE | KIND_COLUMN | KIND_SCHEMA | KIND_EXAMPLE | KIND_STALE_EXAMPLE
    group: str  # the table key (table and column rows), the schema name, or the example id
    schema: str  # the table's schema, "" when the database has none
    text: str  # embedded
    lexical: str  # BM25 terms


@dataclass(frozen=True, slots=True)
class DocumentGroup:
    """The documents re-embedded together when their content hash changes."""

    kind: str  # KIND_TABLE | KIND_SCHEMA | KIND_EXAMPLE: (kind, key) identifies a group
    key: str  # the table key, the schema name, or the example id
    documents: tuple[Document, ...]
    content_hash: str


def split_identifier(name: str) -> list[str]:
    """Split an identifier into lower-case words (snake_case, camelCase, ABBRWord, digits)."""
    return list(_split_identifier(name))


# A warehouse repeats its column names across tables: an index build splits each name once, not per use.
@lru_cache(maxsize=1 << 16)
def _split_identifier(name: str) -> tuple[str, ...]:
    words: list[str] = []
    for chunk in _CHUNK.findall(name):
        start = 0
        for i in range(1, len(chunk)):
            prev, char = chunk[i - 1], chunk[i]
            following = chunk[i + 1] if i + 1 < len(chunk) else ""
            if (
                (prev.islower() and char.isupper())  # orderDate
                or (prev.isupper() and char.isupper() and following.islower())  # HTTPServer
                or (prev.isalpha() and char.isdigit())  # K12, player_X1
                or (prev.isdigit() and char.isupper())  # 4Id (but "1k" stays one word)
            ):
                words.append(chunk[start:i].lower())
                start = i
        words.append(chunk[start:].lower())
    return tuple(words)


def humanize(name: str) -> str:
    """Turn an identifier into space-separated words."""
    return " ".join(split_identifier(name)) or name


def _stem(word: str) -> str:
    # Plural folding only: Milvus Lite ignores stemmer filters, and "patients" must meet "patient".
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("sses"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def lexical_terms(text: str) -> list[str]:
    """Normalise free text or identifiers into BM25 terms (split, lower-cased, stop words out)."""
    return [_stem(w) for w in split_identifier(text) if len(w) > 1 and w not in _STOP_WORDS]


def request_terms(text: str) -> list[str]:
    """A request's BM25 terms: like a document's, with the modifiers of relative periods out ("last 7 days")."""
    return lexical_terms(without_relative_modifiers(text))


def lexical_query(text: str) -> str:
    """Normalise a request exactly like the indexed lexical documents."""
    return " ".join(request_terms(text))


def content_hash(texts: Iterable[str], model_id: str) -> str:
    """Hash documents together with the embedding model that encodes them."""
    digest = hashlib.sha256()
    for part in (DOCUMENT_FORMAT, model_id, *texts):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8 without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def row_id(kind: str, *parts: str) -> str:
    """Make a short, collision-free primary key (names may hold any character)."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]
    return f"{kind}:{digest}"


def _column_phrase(column: Column) -> str:
    words = humanize(column.name)
    note = column.text
    # A comment that only restates the name adds nothing but length.
    if note and _squash(note) != _squash(column.name):
        return f"{words} ({note.strip()})"
    return words


def _squash(text: str) -> str:
    return "".join(split_identifier(text))


def table_text(table: Table) -> str:
    """Describe a table in natural language for the embedding model."""
    head = humanize(table.name)
    if table.schema:
        head = f"{head} ({humanize(table.schema)})"
    parts = [head + (f": {table.text.strip()}" if table.text else "")]
    if table.columns:
        parts.append("Columns: " + ", ".join(_column_phrase(c) for c in table.columns))
    refs = sorted({_ref_name(fk.ref_table) for fk in table.foreign_keys})
    if refs:
        parts.append("References: " + ", ".join(refs))
    return truncate_utf8(". ".join(parts), MAX_TEXT_BYTES)


def _ref_name(ref_table: str) -> str:
    return humanize(ref_table.rsplit(".", 1)[-1])


def column_text(table: Table, column: Column) -> str:
    """Describe one column, in the context of its table, for the embedding model."""
    return truncate_utf8(f"{humanize(table.name)}: {_column_phrase(column)}", MAX_TEXT_BYTES)


def table_lexical(table: Table) -> str:
    """Collect a table's BM25 terms; its own name counts twice because names say the most."""
    parts: list[str] = [table.schema or "", table.name, table.name, table.text or ""]
    for column in table.columns:
        parts.extend((column.name, column.text or ""))
    parts.extend(fk.ref_table.rsplit(".", 1)[-1] for fk in table.foreign_keys)
    return truncate_utf8(" ".join(lexical_terms(" ".join(parts))), MAX_LEXICAL_BYTES)


def schema_text(schema: str, tables: Sequence[Table]) -> str:
    """Describe a schema by its tables and their columns (the model reads the first 256 tokens)."""
    body = "; ".join(f"{humanize(t.name)} ({', '.join(humanize(c.name) for c in t.columns)})" for t in tables)
    return truncate_utf8(f"{humanize(schema)}: {body}", MAX_TEXT_BYTES)


def schema_lexical(schema: str, tables: Sequence[Table]) -> str:
    """Collect a schema's distinct BM25 terms (term frequency would only reward wide schemas)."""
    seen: dict[str, None] = {}
    for table in tables:
        for term in lexical_terms(" ".join((schema, table.name, table.text or ""))):
            seen.setdefault(term)
        for column in table.columns:
            for term in lexical_terms(f"{column.name} {column.text or ''}"):
                seen.setdefault(term)
    return truncate_utf8(" ".join(seen), MAX_LEXICAL_BYTES)


def table_group(table: Table, model_id: str) -> DocumentGroup:
    """Build a table's documents (table level and one per column) and their content hash."""
    schema = table.schema or ""
    docs = [
        Document(
            id=row_id(KIND_TABLE, table.key),
            kind=KIND_TABLE,
            group=table.key,
            schema=schema,
            text=table_text(table),
            lexical=table_lexical(table),
        )
    ]
    for column in table.columns:
        docs.append(
            Document(
                id=row_id(KIND_COLUMN, table.key, column.name),
                kind=KIND_COLUMN,
                group=table.key,
                schema=schema,
                text=column_text(table, column),
                # Column rows are searched densely only; an empty text keeps BM25 statistics
                # (document count, average length) those of the table documents.
                lexical="",
            )
        )
    return DocumentGroup(
        kind=KIND_TABLE,
        key=table.key,
        documents=tuple(docs),
        content_hash=content_hash(_hashed_parts(docs), model_id),
    )


def schema_group(schema: str, tables: Sequence[Table], model_id: str) -> DocumentGroup:
    """Build the document of one schema and its content hash."""
    doc = Document(
        id=row_id(KIND_SCHEMA, schema),
        kind=KIND_SCHEMA,
        group=schema,
        schema=schema,
        text=schema_text(schema, tables),
        lexical=schema_lexical(schema, tables),
    )
    return DocumentGroup(
        kind=KIND_SCHEMA,
        key=schema,
        documents=(doc,),
        content_hash=content_hash(_hashed_parts([doc]), model_id),
    )


def _hashed_parts(docs: Sequence[Document]) -> list[str]:
    return [f"{d.id}\x01{d.text}\x01{d.lexical}" for d in docs]


def build_groups(snapshot: Snapshot, model_id: str) -> list[DocumentGroup]:
    """Build every document group of a snapshot: tables first, then schemas (when several).

    A date-sharded family is one table here (its pattern, the newest shard's columns).
    """
    snapshot = collapse(snapshot, detect_families(snapshot))
    groups = [table_group(t, model_id) for t in snapshot.tables.values()]
    by_schema: dict[str, list[Table]] = {}
    for table in snapshot.tables.values():
        if table.schema:
            by_schema.setdefault(table.schema, []).append(table)
    # One schema carries no signal for choosing between schemas.
    if len(by_schema) > 1:
        groups.extend(
            schema_group(name, sorted(tables, key=lambda t: t.name), model_id)
            for name, tables in sorted(by_schema.items())
        )
    return groups


def example_group(example_id: str, text: str, fits: bool, model_id: str) -> DocumentGroup:
    """Build the document of one query example; ``fits`` (its SQL fits the schema) picks its row kind."""
    doc = Document(
        id=row_id(KIND_EXAMPLE, example_id),
        kind=KIND_EXAMPLE if fits else KIND_STALE_EXAMPLE,
        group=example_id,
        schema="",
        text=truncate_utf8(text, MAX_TEXT_BYTES),
        lexical=truncate_utf8(lexical_query(text), MAX_LEXICAL_BYTES),
    )
    # The row kind is hashed too: an example that starts or stops fitting moves partition.
    parts = [doc.kind, *_hashed_parts([doc])]
    return DocumentGroup(
        kind=KIND_EXAMPLE, key=example_id, documents=(doc,), content_hash=content_hash(parts, model_id)
    )
