"""A pool of interchangeable endpoints (replicas of one model): least outstanding load, with ejection.

Several vLLM/SGLang replicas serve the same model; which one answers a request does not change what
it samples (the request's seed does), so the choice is purely about load and health:
- each request goes to the healthy endpoint with the fewest requests outstanding (ties: the one that
  has served fewest, then the first listed), so a slow replica gets less work;
- after `eject_after` consecutive failures (connection refused, timeout, 429/5xx) an endpoint is
  taken out for `cooldown_s`; when the cool-down ends, one request is sent there as a probe: success
  readmits it, failure takes it out again for twice as long (up to `max_cooldown_s`);
- when every endpoint is out, the one whose cool-down ends first is used anyway, so a pool of one
  behaves exactly like a single base URL (its retries and backoff decide, not the pool).

The pool is used from one asyncio event loop (no locks); `clock` is injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Endpoint:
    """One base URL and what the pool knows about it."""

    url: str
    index: int
    outstanding: int = 0
    served: int = 0  # requests that succeeded here
    failed: int = 0  # failed attempts here, all told
    consecutive_failures: int = 0
    ejections: int = 0
    out_until: float | None = None  # ejected until this clock time; None = in rotation
    cooldown_s: float = 0.0
    probing: bool = False  # one trial request is in flight after a cool-down

    @property
    def healthy(self) -> bool:
        return self.out_until is None


class EndpointPool:
    """Least-outstanding-requests choice over `urls`, ejecting failing ones and probing them back."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        eject_after: int = 3,
        cooldown_s: float = 5.0,
        max_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self.endpoints = [Endpoint(url, i) for i, url in enumerate(urls)]
        self.eject_after = max(1, eject_after)
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max(cooldown_s, max_cooldown_s)
        self._clock = clock

    def __len__(self) -> int:
        return len(self.endpoints)

    def acquire(self) -> Endpoint:
        """The endpoint for the next attempt; the caller must `release` it with the outcome."""
        now = self._clock()
        chosen = self._due_probe(now) or self._least_loaded() or self._soonest_back()
        chosen.outstanding += 1
        return chosen

    def release(self, endpoint: Endpoint, ok: bool | None) -> None:
        """Record an attempt's outcome: a success readmits, repeated failures eject; None (the
        attempt was cancelled) tells nothing about the endpoint."""
        endpoint.outstanding -= 1
        if ok is None:
            endpoint.probing = False  # the next acquire may probe it again
            return
        if ok:
            endpoint.served += 1
            endpoint.consecutive_failures = 0
            endpoint.out_until, endpoint.probing, endpoint.cooldown_s = None, False, 0.0
            return
        endpoint.failed += 1
        endpoint.consecutive_failures += 1
        if endpoint.probing:  # the trial after a cool-down failed: out again, for twice as long
            endpoint.cooldown_s = min(self.max_cooldown_s, 2 * endpoint.cooldown_s)
        elif endpoint.healthy and endpoint.consecutive_failures >= self.eject_after:
            endpoint.cooldown_s = self.cooldown_s
        else:
            return
        endpoint.out_until = self._clock() + endpoint.cooldown_s
        endpoint.probing = False
        endpoint.ejections += 1

    def stats(self) -> list[dict[str, object]]:
        """Per endpoint: served, failed, ejections, whether it is in rotation now."""
        return [
            {"url": e.url, "served": e.served, "failed": e.failed, "ejections": e.ejections, "healthy": e.healthy}
            for e in self.endpoints
        ]

    # -- choice ----------------------------------------------------------------------------
    def _due_probe(self, now: float) -> Endpoint | None:
        for e in self.endpoints:
            if e.out_until is not None and now >= e.out_until and not e.probing:
                e.probing = True
                return e
        return None

    def _least_loaded(self) -> Endpoint | None:
        healthy = [e for e in self.endpoints if e.healthy]
        return min(healthy, key=lambda e: (e.outstanding, e.served + e.failed, e.index)) if healthy else None

    def _soonest_back(self) -> Endpoint:
        return min(self.endpoints, key=lambda e: (e.out_until or 0.0, e.outstanding, e.index))


__all__ = ["Endpoint", "EndpointPool"]
