"""How a multi-label student's per-class decision thresholds are chosen (labelloop.classify.decision applies them).

A threshold is never a fixed 0.5: each class gets the one that maximizes its F1 on out-of-fold
probabilities of the training labels.
"""

from __future__ import annotations

import numpy as np


def tune_thresholds(probs: np.ndarray, Y: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Per label, the decision threshold that maximizes that label's F1 on out-of-fold probabilities.

    ignore (rows x labels, bool): decisions left out (likely label errors). Ties go to the threshold
    nearest 0.5; a label with no positives (or no probabilities) keeps 0.5.
    """
    k = Y.shape[1]
    out = np.full(k, 0.5)
    for j in range(k):
        keep = ~ignore[:, j] if ignore is not None else slice(None)
        y, p = Y[keep, j].astype(bool), probs[keep, j]
        if not y.any() or np.ptp(p) == 0:
            continue
        grid = np.unique(np.concatenate([np.round(p, 4), np.linspace(0.05, 0.95, 19)]))
        best = (-1.0, 1.0, 0.5)
        for t in grid:
            pred = p >= t
            tp = float((pred & y).sum())
            f1 = 2 * tp / max(1.0, pred.sum() + y.sum())
            cand = (f1, -abs(t - 0.5), t)
            if cand[:2] > best[:2]:
                best = cand
        out[j] = best[2]
    return out
