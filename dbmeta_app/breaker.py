"""A circuit breaker: after repeated failures, stop calling a dependency for a cool-down, then probe it.

closed ──(failure_threshold consecutive failures)──▶ open ──(cool-down passed)──▶ half-open
  ▲                                                    ▲                            │ one probe call
  └──────────────────── probe succeeded ───────────────┴──── probe failed (cool-down doubles, capped)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dbmeta_app import metrics

_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """Decide whether to call a dependency now; feed it the outcome of every call."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        cooldown: float = 1.0,
        max_cooldown: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self.state = "closed"
        self.failures = 0
        self.cooldown = cooldown
        self._opened_at = 0.0
        self._probe_started = 0.0
        self.opened_count = 0
        self._publish()

    def allow(self) -> bool:
        """Tell whether a call may go through now (in half-open, only one probe at a time)."""
        if self.state == "closed":
            return True
        now = self._clock()
        if self.state == "open":
            if now - self._opened_at < self.cooldown:
                return False
            self.state = "half_open"
            self._probe_started = now
            self._publish()
            return True
        # half-open: a probe is out; let another through only if that one never reported back
        if now - self._probe_started >= self.cooldown:
            self._probe_started = now
            return True
        return False

    def record_success(self) -> None:
        if self.state != "closed" or self.failures:
            self.state = "closed"
            self.failures = 0
            self.cooldown = self.base_cooldown
            self._publish()

    def record_failure(self) -> None:
        now = self._clock()
        if self.state == "half_open":
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._open(now)
            return
        self.failures += 1
        if self.state == "closed" and self.failures >= self.failure_threshold:
            self._open(now)

    def reset(self) -> None:
        """Close the breaker (the dependency is known to be back)."""
        self.record_success()

    def _open(self, now: float) -> None:
        self.state = "open"
        self._opened_at = now
        self.opened_count += 1
        self._publish()

    def _publish(self) -> None:
        metrics.BREAKER_STATE.labels(self.name).set(_STATE_VALUE[self.state])

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.failures,
            "cooldown_s": self.cooldown,
            "times_opened": self.opened_count,
        }
