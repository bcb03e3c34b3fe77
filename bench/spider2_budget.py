"""The prompt-budget bar on the Spider 2.0-lite development half: gold columns inside a 4,000-token top-10.

    python bench/spider2_budget.py [--max-tokens 4000] [--top-k 10]

Reads ``../shared/bench/spider2dev/`` directly (tables.json → one in-memory Snapshot per profile, no
database) and, per question:
1. ranks the profile's tables with the service's in-process keyword retrieval (BM25 over the table
   documents + the same fusion and FK expansion as the hybrid search; no model, no Milvus);
2. makes the table set: the top-k, where every gold slot (``gold_tables`` is a list of slots, each a
   list of interchangeable tables, e.g. the shards of a family) that the top-k misses gets one of its
   tables in place of the lowest-ranked non-gold table (appended last: the first to be cut);
3. renders the set within --max-tokens with ``schema.fit.render_within`` and the request's column
   relevance (``search.columns``), exactly as the schema item does.

The questions carry no gold SQL and no gold columns, so the gold columns are a PROXY, per gold table:
- columns the question names: every word of the column's name (its leaf for a nested field) appears among
  the question's words (the index's normalisation: identifiers split, plurals folded, stop words out);
- join keys: ``*_id``/``*_key``/``id`` columns whose name another chosen gold table also has.
Caveat: the renderer ranks columns by the question's words too, so the proxy favours it; the join-key part
and questions whose named columns compete for room in wide tables are what this measures.

Prints, in the same run: the share of questions whose proxy gold columns are all shown (budgeted), the
same share for a naive cut of the plain rendering at the same estimated tokens, and the share whose plain
rendering fits at all; and the estimate against MiniLM's WordPiece token count of the budgeted texts.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._tokens import wordpiece_counter
from dbmeta_app.schema.fit import estimate_tokens, render_within
from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.schema.render import render_table, rendered_tables
from dbmeta_app.search.columns import column_relevance
from dbmeta_app.search.documents import lexical_terms
from dbmeta_app.search.keyword import KeywordIndex

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "spider2dev"
_JOIN = re.compile(r"(?:^|_)(?:id|key)$", re.IGNORECASE)


def load_snapshots(path: Path) -> dict[str, Snapshot]:
    """One Snapshot per profile from tables.json (columns: name, type, description)."""
    data = json.loads((path / "tables.json").read_text())
    out: dict[str, Snapshot] = {}
    for db in data["dbs"]:
        tables = []
        for schema in db["schemas"]:
            for t in schema["tables"]:
                columns = tuple(
                    Column(name, ctype, comment=desc or None) for name, ctype, desc in t["columns"]
                )
                tables.append(
                    Table(schema["schema"], t["name"], columns=columns, comment=t.get("description") or None)
                )
        dialect = {"sqlite": "sqlite", "bigquery": "bigquery", "snowflake": "snowflake"}[db["engine"]]
        out[db["profile"]] = Snapshot.build(db["profile"], dialect, tables)
    return out


def proxy_gold_columns(question: str, tables: Sequence[Table]) -> dict[str, set[str]]:
    """Per gold table, the columns the question names plus the join keys the gold tables share."""
    words = set(lexical_terms(question))
    gold: dict[str, set[str]] = {}
    for table in tables:
        named = set()
        for column in table.columns:
            leaf = set(lexical_terms(column.name.rsplit(".", 1)[-1]))
            if leaf and leaf <= words:
                named.add(column.name)
        gold[table.key] = named
    for table in tables:
        others = {c.name.lower() for t in tables if t is not table for c in t.columns if _JOIN.search(c.name)}
        gold[table.key] |= {
            c.name for c in table.columns if _JOIN.search(c.name) and c.name.lower() in others
        }
    return gold


def naive_cut(snapshot: Snapshot, keys: Sequence[str], max_tokens: int) -> dict[str, set[str]]:
    """Columns shown when the plain rendering is cut at max_tokens estimated tokens (line by line)."""
    shown: dict[str, set[str]] = {k: set() for k in keys}
    used = 0
    for key in keys:
        table = snapshot.tables[key]
        lines = render_table(table, snapshot, False).splitlines()
        used += estimate_tokens(lines[0])
        for column, line in zip(table.columns, lines[1:], strict=False):
            used += estimate_tokens(line)
            if used > max_tokens:
                return shown
            shown[key].add(column.name)
    return shown


@dataclass
class Outcome:
    has_gold: bool
    budgeted: bool
    naive: bool
    plain_fits: bool
    retrieved_all: bool
    truncated: bool


def evaluate(
    snapshot: Snapshot, index: KeywordIndex, q: dict[str, Any], top_k: int, max_tokens: int
) -> tuple[Outcome, str]:
    ranked = [name for h in index.search(q["question"], top_k) for name in h.tables]  # as the schema item
    chosen: list[str] = []
    missing: list[str] = []
    for slot in q["gold_tables"]:
        present = [k for k in slot if k in snapshot.tables]
        hit = next((k for k in ranked if k in present), None)
        if hit is not None:
            chosen.append(hit)
        elif present:
            chosen.append(present[0])
            missing.append(present[0])
    keys = list(ranked)
    for key in missing:  # replace the lowest-ranked non-gold table, appended last
        spare = next((k for k in reversed(keys) if k not in chosen), None)
        if spare is not None and len(keys) >= top_k:
            keys.remove(spare)
        keys.append(key)
    gold = proxy_gold_columns(q["question"], [snapshot.tables[k] for k in chosen])
    relevance = column_relevance(snapshot, rendered_tables(snapshot, keys), q["question"])
    fitted = render_within(snapshot, keys, max_tokens, relevance)
    shown = {t.key: set(t.shown) for t in fitted.tables}
    naive = naive_cut(snapshot, keys, max_tokens)
    plain = estimate_tokens("\n\n".join(render_table(snapshot.tables[k], snapshot, False) for k in keys))
    outcome = Outcome(
        has_gold=any(gold.values()),
        budgeted=all(cols <= shown.get(k, set()) for k, cols in gold.items()),
        naive=all(cols <= naive.get(k, set()) for k, cols in gold.items()),
        plain_fits=plain <= max_tokens,
        retrieved_all=not missing,
        truncated=fitted.truncated,
    )
    return outcome, fitted.text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-tokens", type=int, default=4000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    snapshots = load_snapshots(args.data)
    indexes = {p: KeywordIndex.build(s) for p, s in snapshots.items()}
    questions = [
        json.loads(line) for line in (args.data / "questions.jsonl").read_text().splitlines() if line
    ]
    outcomes: list[Outcome] = []
    texts: list[str] = []
    for q in questions:
        outcome, text = evaluate(
            snapshots[q["profile"]], indexes[q["profile"]], q, args.top_k, args.max_tokens
        )
        outcomes.append(outcome)
        texts.append(text)
    n = len(outcomes)
    with_gold = [o for o in outcomes if o.has_gold]

    def share(items: list[Outcome], attr: str) -> str:
        hits = sum(getattr(o, attr) for o in items)
        return f"{hits}/{len(items)} = {100 * hits / len(items):.1f}%"

    print(
        f"{n} questions, {len(snapshots)} profiles; table set = top {args.top_k} (keyword retrieval) + gold slots"
    )
    print(f"gold slots all in the keyword top {args.top_k}: {share(outcomes, 'retrieved_all')}")
    print(f"questions with >= 1 proxy gold column: {len(with_gold)}/{n}")
    print(f"plain rendering fits {args.max_tokens} estimated tokens: {share(outcomes, 'plain_fits')}")
    print(f"budgeted renderings truncated: {share(outcomes, 'truncated')}")
    print(
        f"proxy gold columns all shown, budgeted (schema.fit), all questions:   {share(outcomes, 'budgeted')}"
    )
    print(
        f"proxy gold columns all shown, budgeted, questions with gold columns:  {share(with_gold, 'budgeted')}"
    )
    print(
        f"proxy gold columns all shown, naive cut of the plain text, all:        {share(outcomes, 'naive')}"
    )
    print(
        f"proxy gold columns all shown, naive cut, questions with gold columns:  {share(with_gold, 'naive')}"
    )
    count = wordpiece_counter()
    estimates = [estimate_tokens(t) for t in texts]
    real = [count(t) for t in texts]
    ratios = [r / e for r, e in zip(real, estimates, strict=True) if e]
    print(
        f"budgeted texts: estimated tokens max {max(estimates)}, median {statistics.median(estimates):.0f}; "
        f"MiniLM WordPiece max {max(real)}, median {statistics.median(real):.0f}; "
        f"WordPiece/estimate median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
        f"texts over {args.max_tokens} WordPiece tokens: {sum(r > args.max_tokens for r in real)}"
    )


if __name__ == "__main__":
    main()
