"""Which given labels look wrong: confident learning (cleanlab) on out-of-sample probabilities.

The probabilities must be out of sample (cross-validated, or from a model that never saw the
row); the loop gets them from the student itself (`BaseStudent.cross_val_proba`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Issues:
    """Rows whose given label cleanlab calls a likely error, most likely first, with each row's score."""

    rows: list[int]
    scores: list[float]  # the model's probability of the given label (self-confidence): lower is worse
    checked: int
    note: str | None = None


def rank_label_issues(given: np.ndarray, probs: np.ndarray) -> list[int]:
    """Row indices cleanlab flags as label issues, most likely first (ValueError if it cannot rank)."""
    from cleanlab.filter import find_label_issues

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = find_label_issues(labels=np.asarray(given), pred_probs=np.asarray(probs),
                                       return_indices_ranked_by="self_confidence", n_jobs=1)
    except Exception as exc:  # cleanlab rejects degenerate inputs (e.g. a class never given)
        raise ValueError(f"cleanlab could not rank these labels: {exc}") from exc
    return [int(i) for i in ranked]


def find_issues(given: np.ndarray, probs: np.ndarray, n_classes: int) -> Issues:
    """Likely label errors among rows (given: class indices, probs: out-of-sample, rows sum to 1)."""
    given = np.asarray(given, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n = len(given)
    if n < 2 * n_classes:
        return Issues([], [], n, f"needs at least {2 * n_classes} labels with out-of-sample probabilities; "
                                 f"{n} have them")
    if len(set(given.tolist())) < 2:
        return Issues([], [], n, "every label is the same class; there is nothing to compare it with")
    if np.ptp(probs) == 0:
        return Issues([], [], n, "the out-of-sample probabilities are all alike (too few labels per class "
                                 "to cross-validate)")
    try:
        rows = rank_label_issues(given, probs)
    except ValueError as exc:
        return Issues([], [], n, str(exc))
    return Issues(rows, [float(probs[i, given[i]]) for i in rows], n)


def set_scores(Y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's least sure agreement with its given set: min over classes of p (given) or 1 - p (not given)."""
    agree = np.where(np.asarray(Y) == 1, probs, 1.0 - np.asarray(probs))
    return agree.min(axis=1)


def find_set_issues(Y: np.ndarray, probs: np.ndarray) -> Issues:
    """Likely label-set errors (Y: rows x classes of 0/1; probs: out-of-sample, one probability per class).

    cleanlab's multi-label confident learning (`multilabel_classification.filter.find_label_issues`).
    """
    Y = np.asarray(Y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, k = Y.shape
    if n < 2 * k:
        return Issues([], [], n, f"needs at least {2 * k} label sets with out-of-sample probabilities; {n} have them")
    given = Y.sum(axis=0)
    if (given == 0).all() or np.ptp(probs) == 0:
        return Issues([], [], n, "the label sets or the out-of-sample probabilities are all alike; there is "
                                 "nothing to compare them with")
    from cleanlab.multilabel_classification.filter import find_label_issues

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = find_label_issues(labels=[list(np.flatnonzero(row)) for row in Y], pred_probs=probs,
                                       return_indices_ranked_by="self_confidence", n_jobs=1)
    except Exception as exc:  # cleanlab rejects degenerate inputs (e.g. a class never given)
        return Issues([], [], n, f"cleanlab could not rank these label sets: {exc}")
    scores = set_scores(Y, probs)
    rows = [int(i) for i in ranked]
    return Issues(rows, [float(scores[i]) for i in rows], n)


def find_cell_issues(Y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Which single decisions of label sets look wrong: rows x classes, True where flagged.

    Each class is its own binary problem (given yes/no against the out-of-sample probability),
    checked by confident learning; a class that cannot be checked (too few of either answer) has
    nothing flagged. A row with one wrong label keeps its other labels: only the flagged decision
    is left out of that label's fit.
    """
    from cleanlab.filter import find_label_issues

    Y = np.asarray(Y, dtype=np.int64)
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    flagged = np.zeros(Y.shape, dtype=bool)
    for j in range(Y.shape[1]):
        y = Y[:, j]
        if min(int(y.sum()), int(len(y) - y.sum())) < 2 or np.ptp(probs[:, j]) == 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                issues = find_label_issues(labels=y, pred_probs=np.c_[1 - probs[:, j], probs[:, j]], n_jobs=1)
        except Exception:  # cleanlab rejects degenerate inputs; this class is then not checked
            continue
        flagged[:, j] = issues
    return flagged
