"""Likely LLM label errors in the training set: confident learning (cleanlab) on out-of-sample probabilities.

After each round the student's cross-validated probabilities on its own training chunks
(recorded by training.train_round) are compared with the labels it learned from. Flagged
LLM labels go to the review app's "Likely label errors" queue, or, with
`review.relabel_suspects: true`, back to the large model before the next round.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from labelloop.config import Config
from labelloop.store import Store

METRICS_KEY = "label_errors"
LLM_SOURCES = ("llm-small", "llm-large")


@dataclass
class Flags:
    """What confident learning found in one round's training labels."""

    flagged: list[int] = field(default_factory=list)  # chunk ids, most likely error first
    checked: int = 0  # labels that had out-of-sample probabilities
    note: str | None = None  # why nothing could be checked
    relabeled: list[int] = field(default_factory=list)  # chunk ids sent to the large model

    def to_dict(self) -> dict:
        return asdict(self)


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


def flag_round(config: Config, store: Store, n: int) -> Flags:
    """Flag round n's LLM training labels that its out-of-sample probabilities call likely wrong."""
    from labelloop.loop.training import round_data

    classes = config.classes
    data = round_data(store, n)
    student = store.labels_by_chunk("student")
    ids, given, probs, sources = [], [], [], []
    for c, lab, src in zip(data.train, data.train_labels, data.train_sources):
        s = student.get(c.id)
        if lab not in classes or s is None or s.iteration != n or not s.probs:
            continue
        row = np.array([float(s.probs.get(k, 0.0)) for k in classes])
        if not row.sum() > 0:
            continue
        ids.append(c.id)
        given.append(classes.index(lab))
        probs.append(row / row.sum())
        sources.append(src)
    if len(ids) < 2 * len(classes) or len(set(given)) < 2:
        return Flags(checked=len(ids), note=f"needs at least {2 * len(classes)} labels in two or more classes "
                                            f"with out-of-sample probabilities; {len(ids)} have them")
    try:
        ranked = rank_label_issues(np.array(given), np.array(probs))
    except ValueError as exc:
        return Flags(checked=len(ids), note=str(exc))
    # A person's label is never a suspect: it is the reference.
    return Flags(flagged=[ids[i] for i in ranked if sources[i] in LLM_SOURCES], checked=len(ids))


def relabel(config: Config, store: Store, n: int, flagged: list[int], rules, *, embed=None,
            progress: bool = False) -> list[int]:
    """Ask the large model about flagged small-model labels; its label then wins (Store.final_labels)."""
    from labelloop.loop.labeling import label, missing_labels

    human = store.labels_by_chunk("human")
    small = store.labels_by_chunk("llm-small")
    suspects = [cid for cid in flagged if cid in small and cid not in human]
    if not suspects:
        return []
    chunks = store.chunks(ids=suspects)
    todo = missing_labels(store, chunks, "llm-large", rules)
    label(config, store, todo, "large", rules, iteration=n, embed=embed, progress=progress)
    return suspects
