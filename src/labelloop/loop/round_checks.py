"""What the loop records about a finished round besides its scores: the stop-set predictions.

They are stored once in the iteration's metrics JSON (as the label-error ranking is, by
training.train_round), so a resumed run reads them instead of computing them again, and the
stopping rules and the report see the same values.
"""

from __future__ import annotations

from labelloop.classify.decision import decide_codes
from labelloop.config import Config
from labelloop.loop.label_errors import METRICS_KEY, Flags
from labelloop.loop.stopping import STOP_SET_KEY
from labelloop.store import Iteration, Store


def record_round_checks(config: Config, store: Store, n: int, student_input) -> Iteration:
    """Add stop-set predictions (when the kappa rule is on) to round n's metrics."""
    it = iteration(store, n)
    metrics = dict(it.metrics or {})
    changed = False
    if config.stopping.kappa is not None and STOP_SET_KEY not in metrics and it.model_path:
        metrics[STOP_SET_KEY] = stop_set_predictions(config, store, it.model_path, student_input)
        changed = True
    if changed:
        store.finish_iteration(n, metrics=metrics)
        it = iteration(store, n)
    return it


def save_relabeled(store: Store, n: int, relabeled: list[int]) -> None:
    """Remember which flagged labels went back to the large model after round n."""
    it = iteration(store, n)
    metrics = dict(it.metrics or {})
    flags = Flags.from_metrics(metrics)
    flags.relabeled = relabeled
    metrics[METRICS_KEY] = flags.to_dict()
    store.finish_iteration(n, metrics=metrics)


def stop_set_predictions(config: Config, store: Store, model_dir: str, student_input) -> dict:
    """The saved student's predicted class index on every chunk of the stop set."""
    from labelloop.loop.pool_state import stop_set, student_probs

    chunks = stop_set(store, config.sampling.seed, config.stopping.stop_set_size)
    if not chunks:
        return {"ids": [], "pred": []}
    from labelloop.loop.pool_state import saved_thresholds

    probs = student_probs(config, store, model_dir, chunks, student_input)
    # multi-label: a label set as one category (bit j: class j), so kappa compares whole sets
    return {"ids": [c.id for c in chunks], "pred": decide_codes(probs, saved_thresholds(config, model_dir))}


def iteration(store: Store, n: int) -> Iteration:
    """Round n's iteration record."""
    return next(it for it in store.iterations() if it.n == n)
