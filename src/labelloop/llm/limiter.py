"""An adaptive cap on requests in flight: AIMD, as TCP does for packets.

Start at the configured limit (system.concurrency_limit, the server's capacity). An answer
that says the server is overloaded (429/503) multiplies the limit by `decrease`, once per
round trip: refusals of requests sent before the last cut do not cut again (0.9: a refusal
at capacity + 1 brings the limit back to capacity, never below). Every `limit` successes add
one, up to the configured limit; a limit the server refused is tried again only after
PROBE_WINDOWS times as many, so a limit at the server's capacity stays there instead of
knocking every few requests. Too high a limit costs refused requests, not throughput: the
server stays full while the limit comes down. The refused requests wait out Retry-After
themselves (the caller's retry loop).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

MAX_HISTORY = 10_000
PROBE_WINDOWS = 10


@dataclass
class LimitStats:
    """What the limiter did: for benchmarks, logs and tests."""

    limit: float
    max_limit: int
    in_flight: int = 0
    max_in_flight: int = 0
    successes: int = 0
    overloads: int = 0
    decreases: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)  # (requests answered, limit) at each change


class Slot:
    """One request's place in flight; mark it overloaded when the server refused it for load."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch  # cuts made before the request was sent
        self.overload = False

    def overloaded(self) -> None:
        self.overload = True


class AdaptiveLimit:
    """At most `limit` requests in flight; the limit adapts to overload answers when `adaptive`."""

    def __init__(self, max_limit: int, *, adaptive: bool = True, decrease: float = 0.9, min_limit: int = 1):
        if max_limit < 1:
            raise ValueError(f"max_limit must be at least 1, got {max_limit}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease}")
        self.max_limit = max_limit
        self.adaptive = adaptive
        self.decrease = decrease
        self.min_limit = min(min_limit, max_limit)
        self._limit = float(max_limit)
        self._ceiling: int | None = None  # the lowest limit the server refused since it last took more
        self._window = 0  # successes since the last change
        self._epoch = 0  # cuts so far
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cond: asyncio.Condition | None = None
        self.stats = LimitStats(limit=float(max_limit), max_limit=max_limit)

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(self.min_limit, math.floor(self._limit))

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._cond is None:
            # A new event loop (each asyncio.run): requests of the old one are gone; the learned limit stays.
            self._loop, self._cond = loop, asyncio.Condition()
            self.stats.in_flight = 0
        return self._cond

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for room, hold it while the request runs, then learn from how it ended."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.stats.in_flight < self.limit)
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        slot = Slot(self._epoch)
        ok = False
        try:
            yield slot
            ok = not slot.overload
        finally:
            async with cond:
                self.stats.in_flight -= 1
                self._learn(slot, ok)
                cond.notify_all()

    def _learn(self, slot: Slot, ok: bool) -> None:
        if slot.overload:
            self.stats.overloads += 1
            if self.adaptive and slot.epoch == self._epoch:
                self._ceiling = self.limit
                self._set(max(float(self.min_limit), self._limit * self.decrease))
                self.stats.decreases += 1
                self._epoch += 1
            return
        if not ok:
            return  # other failures say nothing about load
        self.stats.successes += 1
        self._window += 1
        step = self.limit + 1
        probing = self._ceiling is not None and step >= self._ceiling
        if self.adaptive and step <= self.max_limit and self._window >= self.limit * (PROBE_WINDOWS if probing else 1):
            if probing:
                self._ceiling = None  # the server took the old limit's worth of successes: try it again
            self._set(float(step))

    def _set(self, value: float) -> None:
        self._limit = value
        self._window = 0
        self.stats.limit = value
        if len(self.stats.history) < MAX_HISTORY:
            self.stats.history.append((self.stats.successes + self.stats.overloads, value))

    def __str__(self) -> str:
        mode = f"AIMD x{self.decrease:g} / +1" if self.adaptive else "fixed"
        return f"AdaptiveLimit({self.limit}/{self.max_limit}, {mode})"
