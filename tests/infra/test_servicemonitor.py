"""The ServiceMonitor (Prometheus Operator): rendered only when an overlay asks for the component,
and then scraping /metrics on the db-meta API pods through a port the NetworkPolicy admits."""

from __future__ import annotations

import pytest

from ._k8s import Doc, find, of_kind, selector_matches
from .conftest import RENDERINGS, VARIANTS

ASKED = [r for r in RENDERINGS if r in VARIANTS and "servicemonitor" in VARIANTS[r][1]]


@pytest.mark.parametrize("rendering", [r for r in RENDERINGS if r not in ASKED])
def test_no_servicemonitor_unless_the_component_is_asked_for(
    rendering: str, rendered: dict[str, list[Doc]]
) -> None:
    docs = rendered[rendering]
    assert not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]


@pytest.mark.parametrize("rendering", ASKED)
def test_servicemonitor_scrapes_metrics_of_the_api_pods_through_an_admitted_port(
    rendering: str, rendered: dict[str, list[Doc]]
) -> None:
    docs = rendered[rendering]
    (monitor,) = of_kind(docs, "ServiceMonitor")
    service = find(docs, "Service", "db-meta")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert selector_matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    # the selector picks the API Service only: the Redis Services carry other names
    for other in of_kind(docs, "Service"):
        if other is not service:
            assert not selector_matches(
                monitor["spec"]["selector"]["matchLabels"], other["metadata"]["labels"]
            )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    deployment = find(docs, "Deployment", "db-meta")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (target,) = [p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"]]
    scraper = find(docs, "NetworkPolicy", "db-meta")["spec"]["ingress"][1]
    assert {"protocol": "TCP", "port": target} in scraper["ports"]
    assert scraper["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
