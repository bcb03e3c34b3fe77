"""Circuit breaker transitions: closed → open → half-open → closed or open again."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dbmeta_app.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("dbmeta_breaker_state", {"name": name})


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    b = CircuitBreaker("t-open", failure_threshold=3, cooldown=1.0, clock=Clock())
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    assert _gauge("t-open") == 2


def test_a_success_resets_the_failure_count() -> None:
    b = CircuitBreaker("t-reset", failure_threshold=2, clock=Clock())
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state == "closed"


def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes() -> None:
    clock = Clock()
    b = CircuitBreaker("t-probe", failure_threshold=1, cooldown=1.0, clock=clock)
    b.record_failure()
    clock.now += 0.5
    assert not b.allow()
    clock.now += 0.6
    assert b.allow() and b.state == "half_open" and _gauge("t-probe") == 1
    assert not b.allow()  # only one probe at a time
    b.record_success()
    assert b.state == "closed" and b.allow() and _gauge("t-probe") == 0


def test_a_failed_probe_reopens_with_a_doubled_capped_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker("t-double", failure_threshold=1, cooldown=1.0, max_cooldown=3.0, clock=clock)
    b.record_failure()
    for expected in (2.0, 3.0, 3.0):
        clock.now += b.cooldown
        assert b.allow()
        b.record_failure()
        assert b.state == "open" and b.cooldown == expected
    clock.now += 3.0
    assert b.allow()
    b.record_success()
    assert b.cooldown == 1.0 and b.to_json()["times_opened"] == 4


def test_a_probe_that_never_reports_back_does_not_wedge_the_breaker() -> None:
    clock = Clock()
    b = CircuitBreaker("t-lost", failure_threshold=1, cooldown=1.0, clock=clock)
    b.record_failure()
    clock.now += 1.0
    assert b.allow()
    clock.now += 1.0
    assert b.allow()
