"""The docs tell the truth: every setting, metric and TTL they name exists in the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dbmeta_app import metrics  # noqa: F401 - registers the metrics
from dbmeta_app.cache import redis_cache
from dbmeta_app.cache.redis_cache import CACHE_TTL
from dbmeta_app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    p
    for p in ["README.md", "REDIS_CACHE_SETUP.md", "REDIS_CACHE.md", "infra/k8s/REDIS_DEPLOYMENT.md"]
    if (ROOT / p).exists()
]
# Names that are not dbmeta settings: third-party or build-time variables the docs mention on purpose.
NOT_SETTINGS = {
    "HOST",  # `make run`'s variables, not the service's
    "PORT",
    "HF_HUB_OFFLINE",
    "TORCH_INDEX_URL",
    "TRANSFORMERS_OFFLINE",
    "PATH",
    "CI",
    "GET",
    "SET",
    "PX",
    "PTTL",
    "DEL",
    "PUBLISH",
    "INFO",
    "NOAUTH",
    "WRONGPASS",
    "CLIENT",
    "LIST",
    "ADMIN",
    "DEBUG",
    "WARNING",
    "ERROR",
    "MISS",
    "HIT",
    "JSON",
    "PK",
    "FK",
    "CSV",
    "TLS",
    "LRU",
    "SQL",
    "EXPLAIN",
}
SETTINGS = {name.upper() for name in Settings.model_fields}


def _metric_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


@pytest.mark.parametrize("doc", DOCS)
def test_every_env_variable_named_in_the_docs_is_a_setting(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", text))
    # ${NAME} references and Secret keys are the operator's own variables; module constants are code.
    own = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text)) | set(
        re.findall(r"from-literal=([A-Z][A-Z0-9_]*)=", text)
    )
    constants = {n for n in named if hasattr(redis_cache, n)}
    unknown = sorted(n for n in named - own - constants if n not in SETTINGS and n not in NOT_SETTINGS)
    assert unknown == [], f"{doc} names settings the code does not have: {unknown}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_metric_named_in_the_docs_is_exported(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = set(re.findall(r"`(dbmeta_[a-z_]+)`", text)) - {"dbmeta_app", "dbmeta_bench"}
    exported = _metric_names()
    unknown = sorted(n for n in named if n not in exported)
    assert unknown == [], f"{doc} names metrics the service does not export: {unknown}"


def test_the_ttl_table_matches_cache_ttl() -> None:
    text = (ROOT / "REDIS_CACHE_SETUP.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\| (\d+) s \|$", text, flags=re.M)
    assert {kind for kind, _ in rows} == set(CACHE_TTL)
    for kind, seconds in rows:
        assert CACHE_TTL[kind] == int(seconds), kind


def test_the_developer_doc_states_the_same_ttls() -> None:
    text = (ROOT / "REDIS_CACHE.md").read_text(encoding="utf-8")
    for kind, seconds in CACHE_TTL.items():
        assert f"`{kind}` {seconds} s" in text
