"""A logistic-regression head over embeddings, kept as plain (coef, intercept) arrays."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from labelloop.classify.base import class_weights, oversample_indices

ABSENT_MARGIN = 20.0  # logit gap that keeps a class with no training data at ~e^-20 probability


def fit_head(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, balancing: str, seed: int, C: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logits for every class: coef (n_classes, dim), intercept (n_classes,), float32."""
    dim = X.shape[1]
    present = np.unique(y)
    coef = np.zeros((n_classes, dim), dtype=np.float64)
    intercept = np.zeros(n_classes, dtype=np.float64)
    if len(present) == 1:
        intercept[:] = -ABSENT_MARGIN
        intercept[present[0]] = 0.0
        return coef.astype(np.float32), intercept.astype(np.float32)
    if balancing == "oversample":
        idx = oversample_indices(y, seed)
        X, y = X[idx], y[idx]
    weight = None
    if balancing == "class-weight":
        w = class_weights(y, n_classes)
        weight = {int(c): float(w[c]) for c in present}
    lr = LogisticRegression(C=C, max_iter=2000, class_weight=weight, random_state=seed)
    lr.fit(X, y)
    if len(present) == 2:  # sklearn keeps one row; as softmax rows: -w/2 and +w/2
        half_w, half_b = lr.coef_[0] / 2, lr.intercept_[0] / 2
        coef[present[0]], intercept[present[0]] = -half_w, -half_b
        coef[present[1]], intercept[present[1]] = half_w, half_b
    else:
        coef[present], intercept[present] = lr.coef_, lr.intercept_
    absent = np.setdiff1d(np.arange(n_classes), present)
    if len(absent):
        # Inputs are unit vectors, so a present class's logit is at least b - |w|.
        floor = np.min(intercept[present] - np.linalg.norm(coef[present], axis=1))
        intercept[absent] = floor - ABSENT_MARGIN
    return coef.astype(np.float32), intercept.astype(np.float32)


def head_proba(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Softmax of X @ coef.T + intercept."""
    logits = X.astype(np.float64) @ coef.T.astype(np.float64) + intercept.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    expd = np.exp(logits)
    return expd / expd.sum(axis=1, keepdims=True)
