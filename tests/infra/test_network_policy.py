"""The db-meta NetworkPolicy: it selects the app pods and lets through exactly what they need.

Ingress: the orchestrator and the Prometheus scraper, on the HTTP port only. Egress: DNS, Redis
(and its sentinels), Milvus and the databases' ports, nothing else. Checked on every overlay as it
renders, plus the runbook's example of narrowing it in an overlay.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ._k8s import (
    OVERLAYS,
    RUNBOOK,
    Doc,
    containers,
    find,
    in_copy,
    of_kind,
    pod_template,
    render_structurally,
    selector_matches,
    workloads,
    write_overlay,
)

RENDERED = {name: render_structurally(directory) for name, directory in OVERLAYS.items()}
IDS = sorted(RENDERED)


def _policy(docs: list[Doc]) -> Doc:
    return find(docs, "NetworkPolicy", "db-meta")


def _pod_labels(doc: Doc) -> dict[str, str]:
    return pod_template(doc)["metadata"]["labels"]  # type: ignore[no-any-return]


def _ports(rule: Doc) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule["ports"]}


def _container_ports(doc: Doc) -> set[int]:
    return {p["containerPort"] for c in containers(doc, init=False) for p in c.get("ports", [])}


@pytest.mark.parametrize("overlay", IDS)
def test_app_policy_selects_the_api_and_index_pods_and_no_redis_pod(overlay: str) -> None:
    docs = RENDERED[overlay]
    selector = _policy(docs)["spec"]["podSelector"]["matchLabels"]
    for doc in workloads(docs):
        is_app = doc["metadata"]["name"] in ("db-meta", "db-meta-index")
        assert selector_matches(selector, _pod_labels(doc)) is is_app, doc["metadata"]["name"]
    assert _policy(docs)["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("overlay", IDS)
def test_every_pod_of_the_overlay_is_selected_by_a_network_policy(overlay: str) -> None:
    docs = RENDERED[overlay]
    policies = of_kind(docs, "NetworkPolicy")
    for doc in workloads(docs):
        assert any(
            selector_matches(p["spec"]["podSelector"]["matchLabels"], _pod_labels(doc)) for p in policies
        ), doc["metadata"]["name"]


def _peers(rules: list[Doc], key: str) -> list[Doc]:
    return [peer for rule in rules for peer in rule[key]]


@pytest.mark.parametrize("overlay", IDS)
def test_no_rule_is_open_to_every_peer_or_every_port(overlay: str) -> None:
    spec = _policy(RENDERED[overlay])["spec"]
    for key, rules in (("from", spec["ingress"]), ("to", spec["egress"])):
        for rule in rules:
            assert rule.get(key) and rule.get("ports"), rule  # an absent list means "all"
        for peer in _peers(rules, key):
            for selector in ("podSelector", "namespaceSelector"):
                if selector in peer:
                    assert peer[selector].get("matchLabels"), (key, peer)  # {} selects everything


@pytest.mark.parametrize("overlay", IDS)
def test_ingress_admits_the_orchestrator_and_the_scraper_on_the_http_port_only(overlay: str) -> None:
    docs = RENDERED[overlay]
    orchestrator, scraper = _policy(docs)["spec"]["ingress"]
    http = _container_ports(find(docs, "Deployment", "db-meta"))
    assert http == {8000}
    for rule in (orchestrator, scraper):
        assert _ports(rule) == {("TCP", 8000)}
        assert all("ipBlock" not in peer for peer in rule["from"])
    (peer,) = orchestrator["from"]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"dbmeta.io/client": "true"}},
        "podSelector": {"matchLabels": {"dbmeta.io/client": "true"}},
    }
    (peer,) = scraper["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


@pytest.mark.parametrize("overlay", IDS)
def test_egress_opens_dns_redis_milvus_and_the_databases_only(overlay: str) -> None:
    docs = RENDERED[overlay]
    dns, redis, milvus, databases = _policy(docs)["spec"]["egress"]

    (peer,) = dns["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert _ports(dns) == {("UDP", 53), ("TCP", 53)}

    # every Redis pod of the overlay (single, or the Sentinel group) is reachable on its own ports
    redis_pods = [d for d in workloads(docs) if d["metadata"]["name"] not in ("db-meta", "db-meta-index")]
    assert redis_pods
    for pod in redis_pods:
        assert any(
            "namespaceSelector" not in peer
            and selector_matches(peer["podSelector"]["matchLabels"], _pod_labels(pod))
            for peer in redis["to"]
        ), pod["metadata"]["name"]
        assert _container_ports(pod) <= {port for _, port in _ports(redis)}
    assert _ports(redis) == {("TCP", 6379), ("TCP", 26379)}

    config = find(docs, "ConfigMap", "db-meta-config")["data"]
    milvus_uri = config["MILVUS_URI"]
    if milvus_uri.startswith("http"):
        assert _ports(milvus) == {("TCP", urlsplit(milvus_uri).port)}
    (peer,) = milvus["to"]
    assert peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "milvus"}}}

    assert _ports(databases) == {("TCP", 5432), ("TCP", 3306)}
    assert all(set(peer) == {"ipBlock"} for peer in databases["to"])


def _runbook_database_ports() -> set[int]:
    """The ports of the database URLs the runbook's example db-meta-db-urls gives (default ports)."""
    text = RUNBOOK.read_text(encoding="utf-8")
    urls = re.findall(r"--from-literal=[A-Z_]+_DATABASE_URL='([^']+)'", text)
    assert urls
    defaults = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
    return {urlsplit(u).port or defaults[urlsplit(u).scheme.split("+")[0]] for u in urls}


def test_the_database_ports_cover_the_runbook_database_urls() -> None:
    databases = _policy(RENDERED["prod"])["spec"]["egress"][3]
    assert _runbook_database_ports() <= {port for _, port in _ports(databases)}


def _runbook_patch() -> list[Doc]:
    """The kustomize patch the runbook gives for narrowing the policy in an overlay."""
    text = RUNBOOK.read_text(encoding="utf-8")
    section = text[text.index("### Network policy") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "the Network policy section shows its patch in a ```yaml block"
    patches = yaml.safe_load(block.group(1))["patches"]
    assert isinstance(patches, list)
    return patches


def test_the_runbook_patch_narrows_callers_and_databases_in_an_overlay(infra_copy: Path) -> None:
    patches = _runbook_patch()
    overlay = write_overlay(
        in_copy(infra_copy, OVERLAYS["prod"]).parent,
        "_test-narrowed",
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../prod"],
                "patches": patches,
            }
        ),
    )
    before = _policy(RENDERED["prod"])["spec"]
    after = _policy(render_structurally(overlay))["spec"]
    assert after["ingress"][0]["from"] != before["ingress"][0]["from"]
    assert after["egress"][3]["to"] != before["egress"][3]["to"]
    assert all(peer["ipBlock"]["cidr"] != "0.0.0.0/0" for peer in after["egress"][3]["to"])
    # the rest stays as it was
    assert after["ingress"][1] == before["ingress"][1] and after["egress"][:3] == before["egress"][:3]
