"""How many chunks each step takes: the one place the run and `labelloop plan` both read."""

from __future__ import annotations

from labelloop.config import Config

RULES_SAMPLES = 5  # sample chunks shown to the large model when it writes the rules


def test_size(config: Config, pool: int) -> int:
    """Chunks in the test set: training.test_set_size, but never more than half the pool."""
    size = config.training.test_set_size
    return max(1, pool // 2) if size > pool // 2 else size


def round_size(config: Config, n: int) -> int:
    """New training chunks in round n: train_set_size first, then train_set_increment each round."""
    return config.training.train_set_size if n == 1 else config.training.train_set_increment


def max_train(config: Config, pool_after_test: int) -> int:
    """The most training chunks a run can label: every round of training.max_iters, capped by the pool."""
    t = config.training
    return max(0, min(t.train_set_size + (t.max_iters - 1) * t.train_set_increment, pool_after_test))
