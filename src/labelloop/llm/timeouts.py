"""Timeouts that fit the server: a generous first call, then a timeout sized by what the server takes.

The first request of each kind (labels, free text such as rules) is a probe: it waits up to
PROBE_S, since a local server on a few CPU cores can need minutes for the first rules. Each
answer's latency is remembered, and later requests wait `max(timeout_s, FACTOR x slowest seen)`,
so a slow server is not abandoned mid-answer (an abandoned request keeps a single-slot server
busy, and the retry would queue behind it). A retry after a timeout waits twice as long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBE_S = 900.0
FACTOR = 4.0
MAX_S = 3600.0


@dataclass
class AdaptiveTimeout:
    """Per-kind request timeouts for one backend."""

    base: float  # the configured timeout_s: never less than this
    probe_s: float = PROBE_S
    slowest: dict[str, float] = field(default_factory=dict)  # kind -> slowest answer seen (seconds)
    notes: list[str] = field(default_factory=list)

    def for_attempt(self, kind: str, attempt: int) -> float:
        """Seconds to wait for attempt `attempt` (0-based) of a request of this kind."""
        if kind not in self.slowest:
            fitted = max(self.base, self.probe_s)
        else:
            fitted = max(self.base, FACTOR * self.slowest[kind])
        return min(MAX_S, fitted * (2 ** attempt))

    def answered(self, kind: str, seconds: float) -> None:
        """Learn from one answer; the first answer of a kind may widen the timeout (and says so once)."""
        first = kind not in self.slowest
        self.slowest[kind] = max(seconds, self.slowest.get(kind, 0.0))
        if first and FACTOR * seconds > self.base:
            self.notes.append(f"the first {kind} answer took {seconds:.1f} s: waiting up to "
                              f"{min(MAX_S, FACTOR * seconds):.0f} s for later ones (timeout_s is {self.base:g})")
