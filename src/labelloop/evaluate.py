"""Metrics of a student against reference labels (the large LLM's, or human gold)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass(frozen=True)
class Metrics:
    n: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    classes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion: honest on small test sets, never outside [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(y_true: list[str], y_pred: list[str], classes: list[str]) -> Metrics:
    """Accuracy with its 95% interval, macro-F1 over all classes, per-class scores, confusion matrix."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    n = len(y_true)
    correct = int(sum(t == p for t, p in zip(y_true, y_pred)))
    low, high = wilson_interval(correct, n)
    if n == 0:
        return Metrics(0, 0.0, low, high, 0.0, {}, [[0] * len(classes) for _ in classes], list(classes))
    # labels=classes keeps every class (index 0 included) even when absent from this split.
    macro = float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    per_class = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    return Metrics(n, correct / n, low, high, macro, per_class, np.asarray(cm).tolist(), list(classes))
