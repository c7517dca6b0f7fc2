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


# ------------------------------------------------------------------ multi-label

MULTI_METRICS = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")


def headline_metric(config) -> str:
    """The name of the number system.required_accuracy is compared with: accuracy, or (multi-label) the
    metric classification.multi_label_metric names (micro_f1 by default)."""
    return config.classification.multi_label_metric if config.multi_label else "accuracy"


@dataclass(frozen=True)
class MultiMetrics:
    """Label-set metrics, each with a 95% interval by bootstrap over chunks."""

    n: int
    micro_f1: float
    macro_f1: float
    subset_accuracy: float  # exact match of the whole label set
    hamming_loss: float  # share of (chunk, label) decisions that are wrong
    intervals: dict[str, tuple[float, float]]
    per_class: dict[str, dict[str, float]]
    cooccurrence: list[list[int]]  # how often label i and label j are given together (reference sets)
    classes: list[str]

    def value(self, metric: str) -> float:
        """The metric `required_accuracy` is compared with (hamming loss as 1 - loss, so higher is better)."""
        if metric == "hamming_loss":
            return 1.0 - self.hamming_loss
        return float(getattr(self, metric))

    def interval(self, metric: str) -> tuple[float, float]:
        low, high = self.intervals[metric]
        return (1.0 - high, 1.0 - low) if metric == "hamming_loss" else (low, high)

    def to_dict(self) -> dict:
        return asdict(self)


def label_matrix(sets: list[list[str]], classes: list[str]) -> np.ndarray:
    """Rows of 0/1: which classes each set holds (unknown names are an error)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(sets), len(classes)), dtype=np.int8)
    for row, labels in enumerate(sets):
        for lab in labels:
            if lab not in index:
                raise ValueError(f"label {lab!r} is not one of the classes {classes}")
            out[row, index[lab]] = 1
    return out


def _multi_scores(Y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    tp = (Y & P).sum(axis=0).astype(float)
    fp = ((1 - Y) & P).sum(axis=0).astype(float)
    fn = (Y & (1 - P)).sum(axis=0).astype(float)
    micro = 2 * tp.sum() / max(1.0, 2 * tp.sum() + fp.sum() + fn.sum())
    denom = 2 * tp + fp + fn
    per_f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)  # a label never given nor predicted
    return {"micro_f1": float(micro), "macro_f1": float(per_f1.mean()),
            "subset_accuracy": float((Y == P).all(axis=1).mean()) if len(Y) else 0.0,
            "hamming_loss": float((Y != P).mean()) if Y.size else 0.0}


def evaluate_multilabel(true_sets: list[list[str]], pred_sets: list[list[str]], classes: list[str], *,
                        seed: int = 0, resamples: int = 1000) -> MultiMetrics:
    """Micro- and macro-F1, subset accuracy and Hamming loss with bootstrap intervals; per-label P/R/F1."""
    if len(true_sets) != len(pred_sets):
        raise ValueError(f"{len(true_sets)} reference label sets but {len(pred_sets)} predicted")
    Y, P = label_matrix(true_sets, classes), label_matrix(pred_sets, classes)
    n = len(Y)
    scores = _multi_scores(Y, P) if n else {m: 0.0 for m in MULTI_METRICS}
    intervals: dict[str, tuple[float, float]] = {m: (0.0, 1.0) for m in MULTI_METRICS}
    if n:
        rng = np.random.default_rng(seed)
        draws = {m: [] for m in MULTI_METRICS}
        for _ in range(resamples):
            idx = rng.integers(0, n, n)
            for m, v in _multi_scores(Y[idx], P[idx]).items():
                draws[m].append(v)
        intervals = {m: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for m, v in draws.items()}
    per_class = {}
    for j, c in enumerate(classes):
        tp, fp, fn = int((Y[:, j] & P[:, j]).sum()), int(((1 - Y[:, j]) & P[:, j]).sum()), int((Y[:, j] & (1 - P[:, j])).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": prec, "recall": rec, "f1": f1, "support": int(Y[:, j].sum())}
    co = (Y.T.astype(int) @ Y.astype(int)).tolist() if n else [[0] * len(classes) for _ in classes]
    return MultiMetrics(n, scores["micro_f1"], scores["macro_f1"], scores["subset_accuracy"], scores["hamming_loss"],
                        intervals, per_class, co, list(classes))
