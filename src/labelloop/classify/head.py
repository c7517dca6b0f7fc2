"""A logistic-regression head over embeddings, kept as plain (coef, intercept) arrays.

How a single-label head is regularised (C) and weighted (balancing "auto") is chosen here, by
cross-validated agreement with the labels it is given (choose_head); nothing else picks them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from labelloop.classify.base import class_weights, fixed_balancing, oversample_indices
from labelloop.classify.decision import decide_codes

ABSENT_MARGIN = 20.0  # logit gap that keeps a class with no training data at ~e^-20 probability
DEFAULT_C = 10.0  # where nothing is chosen by cross-validation (multi-label heads, fine-tuned students)
# What choose_head tries when C is not given, and for balancing "auto", in this order: on a tie the first
# wins, which is the setting used where nothing is chosen (DEFAULT_C, class-weight).
C_GRID = (10.0, 3.0, 1.0, 0.3)
AUTO_BALANCING = ("class-weight", "none")


SOFT_FLOOR = 0.02  # teacher probabilities below this are dropped (they are noise, and cost rows)


@dataclass(frozen=True)
class HeadSettings:
    """A single-label head's C and balancing, and how they were set."""

    C: float
    balancing: str
    cv_accuracy: float | None = None  # the out-of-fold agreement with the labels that chose them
    tried: int = 1  # settings compared (1: given, not chosen)
    note: str | None = None  # why the first setting was kept whatever scored best

    def to_dict(self) -> dict:
        return {"C": self.C, "balancing": self.balancing, "cv_accuracy": self.cv_accuracy, "tried": self.tried,
                "note": self.note}


def head_grid(C: float | None, balancing: str) -> list[tuple[float, str]]:
    """The (C, balancing) pairs choose_head compares: C_GRID unless C is given, AUTO_BALANCING for "auto"."""
    cs = C_GRID if C is None else (float(C),)
    modes = AUTO_BALANCING if balancing == "auto" else (balancing,)
    return [(c, mode) for mode in modes for c in cs]


def choose_head(X: np.ndarray, y: np.ndarray, n_classes: int, splits, *, C: float | None, balancing: str,
                seed: int, probs: np.ndarray | None = None) -> tuple[HeadSettings, np.ndarray]:
    """The head settings whose out-of-fold predictions agree best with y, and those probabilities.

    Each (C, balancing) of head_grid is fitted on every split's training rows and scored by the
    accuracy of its predictions on the held-out rows against the labels given (the teacher's: no
    gold label is ever seen); the first best in head_grid's order wins. Rows that no split holds
    out keep `probs`' value. Under a noisy teacher this is what picks a smaller C, and no class
    weights where weighting would amplify the false labels of a small class.

    The winner must beat always answering the most frequent label by one standard error of that
    share. Otherwise the labels show no head learning anything beyond the majority class, an
    accuracy-chosen head would answer that class for everything, and the first setting (the one
    used where nothing is chosen) is kept.
    """
    grid = head_grid(C, balancing)
    base = np.full((len(y), n_classes), 1.0 / n_classes) if probs is None else probs
    held = np.zeros(len(y), dtype=bool)
    for _, test_idx in splits:
        held[test_idx] = True
    scored: list[tuple[float, tuple[float, str], np.ndarray]] = []
    for c, mode in grid:
        out = base.copy()
        for train_idx, test_idx in splits:
            coef, intercept = fit_head(X[train_idx], y[train_idx], n_classes, balancing=mode, seed=seed, C=c)
            out[test_idx] = head_proba(X[test_idx], coef, intercept)
        right = np.asarray(decide_codes(out[held])) == y[held]
        scored.append((float(np.mean(right)) if held.any() else 0.0, (c, mode), out))
    score, (c, mode), out = max(scored, key=lambda t: t[0])  # max keeps the first of equals
    if not held.any():
        return HeadSettings(c, mode, None, len(grid)), out
    share = float(np.bincount(y[held]).max() / held.sum())
    floor = share + float(np.sqrt(share * (1.0 - share) / held.sum()))
    note = None
    if len(grid) > 1 and score < floor:
        note = (f"no setting beat always answering the most frequent label ({share:.3f} of them) by one standard "
                f"error (best {score:.3f}, needed {floor:.3f}): the first setting is kept")
        score, (c, mode), out = scored[0]
    return HeadSettings(c, mode, round(score, 4), len(grid), note), out


def fit_head(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, balancing: str, seed: int, C: float | None = None,
    soft: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logits for every class: coef (n_classes, dim), intercept (n_classes,), float32.

    With soft targets (rows x classes), each row counts once per class it gives at least
    SOFT_FLOOR of its probability, weighted by that probability: the cross-entropy of the teacher's
    distribution, which logistic regression fits through sample weights. C None is DEFAULT_C and
    balancing "auto" is class-weight here: choose_head is where they are chosen.
    """
    C = DEFAULT_C if C is None else C
    balancing = fixed_balancing(balancing)
    if soft is not None:
        return _fit_soft(X, y, n_classes, soft, balancing=balancing, seed=seed, C=C)
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
    return _softmax_rows(lr, n_classes, X.shape[1])


def _softmax_rows(lr, n_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted LogisticRegression as one softmax row per class; classes it never saw rank last."""
    coef = np.zeros((n_classes, dim))
    intercept = np.zeros(n_classes)
    seen = lr.classes_
    if len(seen) == 2:  # sklearn keeps one row; as softmax rows: -w/2 and +w/2
        half_w, half_b = lr.coef_[0] / 2, lr.intercept_[0] / 2
        coef[seen[0]], intercept[seen[0]] = -half_w, -half_b
        coef[seen[1]], intercept[seen[1]] = half_w, half_b
    else:
        coef[seen], intercept[seen] = lr.coef_, lr.intercept_
    absent = np.setdiff1d(np.arange(n_classes), seen)
    if len(absent):
        # Inputs are unit vectors, so a present class's logit is at least b - |w|.
        floor = np.min(intercept[seen] - np.linalg.norm(coef[seen], axis=1))
        intercept[absent] = floor - ABSENT_MARGIN
    return coef.astype(np.float32), intercept.astype(np.float32)


def _fit_soft(X, y, n_classes: int, soft: np.ndarray, *, balancing: str, seed: int, C: float):
    present = np.unique(y)
    if len(present) < 2:
        return fit_head(X, y, n_classes, balancing=balancing, seed=seed, C=C)
    p = np.where(soft >= SOFT_FLOOR, soft, 0.0)
    p[np.arange(len(y)), y] = np.maximum(p[np.arange(len(y)), y], SOFT_FLOOR)  # the label itself always counts
    p = p / p.sum(axis=1, keepdims=True)
    rows, cols = np.nonzero(p)
    weights = p[rows, cols]
    if balancing == "class-weight":  # by the hard labels: the same class weights as without soft targets
        weights = weights * class_weights(y, n_classes)[y[rows]]
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    lr.fit(X[rows], cols, sample_weight=weights)
    return _softmax_rows(lr, n_classes, X.shape[1])


def head_proba(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Softmax of X @ coef.T + intercept."""
    logits = X.astype(np.float64) @ coef.T.astype(np.float64) + intercept.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    expd = np.exp(logits)
    return expd / expd.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ multi-label: one head per label


def fit_multi_head(X: np.ndarray, Y: np.ndarray, *, balancing: str, seed: int, C: float | None = None,
                   soft: np.ndarray | None = None, ignore: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per label (one-vs-rest), each with its own class weights.

    Y is rows x labels of 0/1 (soft: the teacher's probability of each label). ignore (rows x labels,
    bool): decisions left out of that label's fit (likely label errors), the row still counts for the
    others. A label that is always (or never) given gets a constant head at +-ABSENT_MARGIN.
    Multi-label heads are not tuned by choose_head (each label's threshold is, by cross-validation):
    C None is DEFAULT_C and balancing "auto" is class-weight.
    """
    C = DEFAULT_C if C is None else C
    balancing = fixed_balancing(balancing)
    k = Y.shape[1]
    coef = np.zeros((k, X.shape[1]))
    intercept = np.zeros(k)
    for j in range(k):
        rows = np.flatnonzero(~ignore[:, j]) if ignore is not None else np.arange(len(Y))
        coef[j], intercept[j] = _fit_label(X[rows], Y[rows, j].astype(int), None if soft is None else soft[rows, j],
                                           balancing=balancing, seed=seed, C=C)
    return coef.astype(np.float32), intercept.astype(np.float32)


def _fit_label(X: np.ndarray, y: np.ndarray, soft: np.ndarray | None, *, balancing: str, seed: int,
               C: float) -> tuple[np.ndarray, float]:
    """One label's logistic regression: (coef, intercept)."""
    n = len(y)
    if n == 0 or y.min() == y.max():
        return np.zeros(X.shape[1]), (ABSENT_MARGIN if n and y.max() == 1 else -ABSENT_MARGIN)
    weight = None
    if balancing == "class-weight":
        w = class_weights(y, 2)
        weight = {0: float(w[0]), 1: float(w[1])}
    Xj, yj, sw = X, y, None
    if balancing == "oversample":
        idx = oversample_indices(y, seed)
        Xj, yj = X[idx], y[idx]
    if soft is not None:  # each row counts as a yes with weight p and as a no with weight 1 - p
        p = np.clip(soft, 0.0, 1.0)
        Xj = np.vstack([X, X])
        yj = np.concatenate([np.ones(n, int), np.zeros(n, int)])
        sw = np.concatenate([p, 1 - p])
        if weight is not None:
            sw = sw * np.where(yj == 1, weight[1], weight[0])
            weight = None
    lr = LogisticRegression(C=C, max_iter=2000, class_weight=weight, random_state=seed)
    lr.fit(Xj, yj, sample_weight=sw)
    return lr.coef_[0], float(lr.intercept_[0])


def multi_head_proba(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Each label's probability on its own (sigmoid of X @ coef.T + intercept)."""
    logits = X.astype(np.float64) @ coef.T.astype(np.float64) + intercept.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
