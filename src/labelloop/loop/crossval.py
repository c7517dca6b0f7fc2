"""Out-of-sample class probabilities on the training set, for finding likely label errors.

Whatever the student type, this uses the cached encoder embeddings and a logistic-regression
head under stratified K-fold: cheap, and honest (no chunk is scored by a model that saw it).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold


def out_of_sample_probs(
    texts: list[str], labels: list[str], classes: list[str], *, encoder_path=None, cache=None,
    max_seq_length: int | None = None, seed: int = 0, folds: int = 5,
) -> np.ndarray:
    from labelloop.classify.encoder import Encoder

    n, k = len(texts), len(classes)
    probs = np.full((n, k), 1.0 / k)
    y = np.array([classes.index(lab) for lab in labels])
    smallest = min(Counter(y.tolist()).values()) if n else 0
    n_folds = min(folds, smallest)
    if n_folds < 2 or len(set(y.tolist())) < 2:
        return probs  # too few examples per class to hold any out
    X = Encoder(encoder_path, cache=cache, max_seq_length=max_seq_length).encode(texts)
    for train_idx, test_idx in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(X, y):
        head = LogisticRegression(max_iter=1000, class_weight="balanced", C=10.0)
        head.fit(X[train_idx], y[train_idx])
        part = np.zeros((len(test_idx), k))
        part[:, head.classes_] = head.predict_proba(X[test_idx])
        probs[test_idx] = part
    return probs
