"""When the loop stops. One small object per rule: `stop(history) -> reason or None`."""

from __future__ import annotations

from collections.abc import Sequence

from labelloop.store import Iteration


class RequiredAccuracy:
    """Stop when the student agrees with the teacher's test labels at least this often."""

    def __init__(self, target: float):
        self.target = target

    def stop(self, history: Sequence[Iteration]) -> str | None:
        last = history[-1] if history else None
        if last is not None and last.accuracy is not None and last.accuracy >= self.target:
            return f"reached required_accuracy: {last.accuracy:.3f} >= {self.target:.3f}"
        return None

    def __str__(self) -> str:
        return f"accuracy >= {self.target}"


class MaxIters:
    """Stop after a fixed number of rounds, so a run never spends without bound."""

    def __init__(self, max_iters: int):
        self.max_iters = max_iters

    def stop(self, history: Sequence[Iteration]) -> str | None:
        if len(history) >= self.max_iters:
            return f"reached max_iters ({self.max_iters}) without the required accuracy"
        return None

    def __str__(self) -> str:
        return f"iterations >= {self.max_iters}"


def first_stop(rules: Sequence, history: Sequence[Iteration]) -> str | None:
    for rule in rules:
        reason = rule.stop(history)
        if reason:
            return reason
    return None
