"""Which unlabeled chunks the LLM labels next. One small object per strategy: `query(...)`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Sequential:
    """Augmentoolkit's behaviour: the next chunks in file order. Kept for comparison."""

    def query(self, pool_ids: Sequence[int], n: int) -> list[int]:
        return list(pool_ids[:n])

    def __str__(self) -> str:
        return "sequential"


class RandomSampling:
    """Seeded uniform sample of the pool; its own RNG, never the global one."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def query(self, pool_ids: Sequence[int], n: int, *, round_: int = 0) -> list[int]:
        rng = np.random.default_rng([self.seed, round_])
        ids = np.asarray(pool_ids)
        if n >= len(ids):
            return [int(i) for i in ids]
        return sorted(int(i) for i in rng.choice(ids, size=n, replace=False))

    def __str__(self) -> str:
        return f"random(seed={self.seed})"


def make_sampler(strategy: str, seed: int = 0):
    if strategy == "sequential":
        return Sequential()
    if strategy == "random":
        return RandomSampling(seed)
    raise ValueError(f"unknown sampling.strategy {strategy!r}; use 'sequential' or 'random'")


def pick(sampler, pool_ids: Sequence[int], n: int, round_: int) -> list[int]:
    """Query a sampler; strategies that vary by round get the round number."""
    if isinstance(sampler, RandomSampling):
        return sampler.query(pool_ids, n, round_=round_)
    return sampler.query(pool_ids, n)
