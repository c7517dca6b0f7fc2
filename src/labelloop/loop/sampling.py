"""Which unlabeled chunks the LLM labels next. One small object per strategy: `query(...)`.

Samplers are pure: they get pool ids and, when they ask for them (`needs_probs`,
`needs_embeddings`), the current student's class probabilities and the encoder's embeddings
of those chunks, row for row. The runner does the loading (labelloop.loop.pool_state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

import numpy as np

from labelloop.classify import decision
from labelloop.config import SamplingStrategy

STRATEGIES = get_args(SamplingStrategy)


class Sequential:
    """Augmentoolkit's behaviour: the next chunks in file order. Kept for comparison."""

    needs_probs = False
    needs_embeddings = False

    def query(self, pool_ids: Sequence[int], n: int, **_: object) -> list[int]:
        return list(pool_ids[:n])

    def __str__(self) -> str:
        return "sequential"


class RandomSampling:
    """Seeded uniform sample of the pool; its own RNG, never the global one."""

    needs_probs = False
    needs_embeddings = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def query(self, pool_ids: Sequence[int], n: int, *, round_: int = 0, **_: object) -> list[int]:
        rng = np.random.default_rng([self.seed, round_])
        ids = np.asarray(pool_ids)
        if n >= len(ids):
            return [int(i) for i in ids]
        return sorted(int(i) for i in rng.choice(ids, size=n, replace=False))

    def __str__(self) -> str:
        return f"random(seed={self.seed})"


def margins(probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Top-1 minus top-2 probability per row: small means the student is unsure.

    Multi-label (thresholds given): each label's distance from its threshold, the smallest per row
    (the label the student is least decided about).
    """
    if thresholds is not None:
        return np.abs(probs - np.asarray(thresholds)[None, :]).min(axis=1)
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def cluster_stratified(ids: np.ndarray, embeddings: np.ndarray, n: int, seed: int,
                       weights: np.ndarray | None = None) -> list[int]:
    """n ids spread over embedding space: k-means with n clusters, the member nearest each centre.

    Used for the first batch (no student yet) and, with uncertainty weights, by diverse-uncertainty.
    """
    from sklearn.cluster import KMeans

    if n >= len(ids):
        return sorted(int(i) for i in ids)
    km = KMeans(n_clusters=n, n_init=1, random_state=seed).fit(embeddings, sample_weight=weights)
    dist = km.transform(embeddings)  # (items, clusters)
    chosen: list[int] = []
    taken = np.zeros(len(ids), dtype=bool)
    for c in range(n):
        members = np.flatnonzero((km.labels_ == c) & ~taken)
        if len(members):
            best = members[np.argmin(dist[members, c])]
            taken[best] = True
            chosen.append(best)
    if len(chosen) < n:  # empty clusters (duplicate texts): fill with the closest untaken items
        rest = np.flatnonzero(~taken)
        rest = rest[np.argsort(dist[rest].min(axis=1), kind="stable")]
        chosen += list(rest[: n - len(chosen)])
    return sorted(int(ids[i]) for i in chosen)


class _Active:
    """Shared by the strategies that use the student: a cluster-stratified first batch."""

    needs_probs = True
    needs_embeddings = True
    name = ""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def query(self, pool_ids: Sequence[int], n: int, *, round_: int = 0, probs: np.ndarray | None = None,
              embeddings: np.ndarray | None = None, label_counts: Mapping[str, int] | None = None,
              classes: Sequence[str] | None = None, thresholds: np.ndarray | None = None) -> list[int]:
        ids = np.asarray(pool_ids)
        self.thresholds = thresholds  # multi-label: the student's decision thresholds
        if n >= len(ids):
            return sorted(int(i) for i in ids)
        if probs is None:  # no student yet
            if embeddings is None:
                return RandomSampling(self.seed).query(pool_ids, n, round_=round_)
            return cluster_stratified(ids, _check(embeddings, ids, "embeddings"), n, self.seed + round_)
        return self._query(ids, n, _check(probs, ids, "probs"), embeddings, round_, label_counts, classes)

    def _query(self, ids, n, probs, embeddings, round_, label_counts, classes) -> list[int]:
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.name}(seed={self.seed})"


class Uncertainty(_Active):
    """Least margin between the student's top two classes."""

    needs_embeddings = False
    name = "uncertainty"

    def _query(self, ids, n, probs, embeddings, round_, label_counts, classes) -> list[int]:
        order = np.argsort(margins(probs, self.thresholds), kind="stable")
        return sorted(int(i) for i in ids[order[:n]])


class DiverseUncertainty(_Active):
    """The `beta * n` least-margin chunks, spread by k-means weighted by uncertainty (Zhdanov 2019)."""

    name = "diverse-uncertainty"

    def __init__(self, seed: int = 0, beta: int = 10):
        super().__init__(seed)
        self.beta = beta

    def _query(self, ids, n, probs, embeddings, round_, label_counts, classes) -> list[int]:
        m = margins(probs, self.thresholds)
        top = np.argsort(m, kind="stable")[: min(len(ids), self.beta * n)]
        if embeddings is None:
            return sorted(int(i) for i in ids[top[:n]])
        X = _check(embeddings, ids, "embeddings")[top]
        return cluster_stratified(ids[top], X, n, self.seed + round_, weights=1.0 - m[top] + 1e-6)


class Balanced(_Active):
    """Aim for equal label counts per class, using the student's predictions to find the rare ones.

    Each class short of its share gets the chunks the student predicts as that class, least
    certain first (informative, yet likely of that class); then those most likely to be it.
    Multi-label: the same for positives of each label (a chunk predicted to hold it, by its threshold).
    """

    needs_embeddings = False
    name = "balanced"

    def _query(self, ids, n, probs, embeddings, round_, label_counts, classes) -> list[int]:
        k = probs.shape[1]
        names = list(classes) if classes is not None else [str(i) for i in range(k)]
        have = np.array([(label_counts or {}).get(c, 0) for c in names], dtype=float)
        quota = water_fill(have, n)
        m = margins(probs, self.thresholds)
        holds = decision.chosen(probs, self.thresholds)  # the classes the student answers
        ranked = []
        for c in range(k):
            mine = np.flatnonzero(holds[:, c])
            others = np.flatnonzero(~holds[:, c])
            ranked.append(iter(np.concatenate([mine[np.argsort(m[mine], kind="stable")],
                                               others[np.argsort(-probs[others, c], kind="stable")]])))
        chosen: list[int] = []
        taken = np.zeros(len(ids), dtype=bool)
        while len(chosen) < n and quota.sum() > 0:
            for c in np.flatnonzero(quota > 0):
                for i in ranked[c]:  # the next candidate for c not taken yet
                    if not taken[i]:
                        taken[i] = True
                        chosen.append(i)
                        break
                quota[c] -= 1
                if len(chosen) >= n:
                    break
        return sorted(int(ids[i]) for i in chosen)


def water_fill(have: np.ndarray, n: int) -> np.ndarray:
    """How many of n new items each class gets so that the counts end as equal as possible."""
    quota = np.zeros(len(have), dtype=int)
    counts = have.astype(float).copy()
    for _ in range(n):
        c = int(np.argmin(counts))  # ties: lowest index, deterministic
        quota[c] += 1
        counts[c] += 1
    return quota


def _check(values: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values)
    if len(values) != len(ids):
        raise ValueError(f"{what} has {len(values)} rows but the pool has {len(ids)} ids; pass one row per id")
    return values


def make_sampler(strategy: str, seed: int = 0):
    """The sampler for a `sampling.strategy` name."""
    if strategy == "sequential":
        return Sequential()
    if strategy == "random":
        return RandomSampling(seed)
    if strategy == "uncertainty":
        return Uncertainty(seed)
    if strategy == "diverse-uncertainty":
        return DiverseUncertainty(seed)
    if strategy == "balanced":
        return Balanced(seed)
    raise ValueError(f"unknown sampling.strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def pick(sampler, pool_ids: Sequence[int], n: int, round_: int, **state) -> list[int]:
    """Query a sampler with the round number and whatever pool state it asked for."""
    return sampler.query(pool_ids, n, round_=round_, **state)
