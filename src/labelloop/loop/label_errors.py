"""Likely LLM label errors, ranked once per round and stored: pruning, re-labeling and review all read it.

After round n's student is cross-validated on its own training chunks (the student itself,
`cross_val_proba`), confident learning ranks the training labels it disagrees with
(labelloop.classify.label_quality). The test labels are ranked too, against the student's
held-out probabilities. Both rankings go into the iteration's metrics under METRICS_KEY, so
the pruning of this round, the re-labeling after it and the review app's "Likely label
errors" queue all see the same list, and a resumed run reads it instead of computing it again.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from labelloop import labels as policy
from labelloop.classify.label_quality import Issues, find_issues, find_set_issues
from labelloop.config import Config
from labelloop.store import Store

METRICS_KEY = "label_errors"
RARE_SHARE_OF_EVEN = 0.5  # a class is rare below half an even share (1 / classes) of the training labels


@dataclass
class Flags:
    """What confident learning found in one round's labels (stored in the iteration's metrics)."""

    flagged: list[int] = field(default_factory=list)  # LLM training labels, chunk ids, most likely error first
    scores: list[float] = field(default_factory=list)  # the student's probability of each flagged label
    checked: int = 0  # training labels that had out-of-sample probabilities
    note: str | None = None  # why nothing could be checked
    relabeled: list[int] = field(default_factory=list)  # chunk ids sent to the large model
    test_flagged: list[int] = field(default_factory=list)  # test labels (the large model's), same ranking
    test_scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_metrics(cls, metrics: dict | None) -> Flags:
        data = (metrics or {}).get(METRICS_KEY) or {}
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def rank_round(chunk_ids: list[int], labels: list[str], sources: list[str], probs: np.ndarray,
               classes: list[str]) -> tuple[list[int], Flags]:
    """Rank a round's training labels: (rows cleanlab flags, most likely first; Flags of the LLM ones).

    A person's label is the reference, never a suspect: it is ranked with the others but not flagged.
    """
    issues = _issues(labels, probs, classes)
    keep = [(row, score) for row, score in zip(issues.rows, issues.scores) if sources[row] in policy.LLM_SOURCES]
    flags = Flags(flagged=[chunk_ids[r] for r, _ in keep], scores=[s for _, s in keep], checked=issues.checked,
                  note=issues.note)
    return [r for r, _ in keep], flags


def rank_test(flags: Flags, train: tuple[list[int], list[str], np.ndarray],
              test: tuple[list[int], list[str], np.ndarray], classes: list[str],
              test_sources: list[str] | None = None) -> None:
    """Add the test labels (the large model's) that the student's held-out probabilities call wrong.

    Test rows are ranked together with the training rows (a test set alone is often too small for
    confident learning to estimate per-class thresholds); only the test rows are kept, and of those
    only LLM labels (a person's label is the reference, never a suspect). The training ranking
    itself (what the round prunes) is rank_round's, on the training rows alone.
    """
    test_ids, test_labels, test_probs = test
    if not test_ids:
        return
    train_ids, train_labels, train_probs = train
    labels = list(train_labels) + list(test_labels)
    probs = np.vstack([np.asarray(train_probs).reshape(-1, len(classes)), np.asarray(test_probs)])
    issues = _issues(labels, probs, classes)
    n_train = len(train_ids)
    kept = [(row - n_train, score) for row, score in zip(issues.rows, issues.scores) if row >= n_train]
    if test_sources is not None:
        kept = [(row, score) for row, score in kept if test_sources[row] in policy.LLM_SOURCES]
    flags.test_flagged = [test_ids[r] for r, _ in kept]
    flags.test_scores = [score for _, score in kept]


def _issues(labels: list, probs: np.ndarray, classes: list[str]) -> Issues:
    """Confident learning on class labels, or on label sets (multi-label: each label a list of classes)."""
    if labels and isinstance(labels[0], list):
        from labelloop.evaluate import label_matrix

        return find_set_issues(label_matrix(labels, classes), probs)
    given = np.array([classes.index(lab) for lab in labels], dtype=np.int64)
    return find_issues(given, probs, len(classes))


def rows_to_prune(flagged_rows: list[int], labels: list) -> list[int]:
    """The flagged rows the student trains without: every one, except that no class is left without examples.

    A label set (multi-label) counts as an example of each class it holds.
    """
    def held(label) -> list:
        return list(label) if isinstance(label, list) else [label]

    left = Counter(c for label in labels for c in held(label))
    out = []
    for row in flagged_rows:
        if all(left[c] > 1 for c in held(labels[row])):
            left.subtract(held(labels[row]))
            out.append(row)
    return out


def decisions_to_ignore(flagged: np.ndarray, Y: np.ndarray, sources: list[str]) -> np.ndarray:
    """Multi-label: the flagged decisions of LLM labels the student learns without (rows x classes).

    A person's label is never left out; no class is left without a positive or a negative example.
    """
    ignore = np.asarray(flagged, dtype=bool) & np.array([s in policy.LLM_SOURCES for s in sources])[:, None]
    for j in range(Y.shape[1]):
        for value in (0, 1):
            given = Y[:, j] == value
            if given.any() and not (given & ~ignore[:, j]).any():
                ignore[given, j] = False
    return ignore


def relabel(config: Config, store: Store, n: int, flagged: list[int], rules, teachers, *,
            progress: bool = False) -> list[int]:
    """Ask the large model about flagged small-model labels; its label then counts (labelloop.labels)."""
    from labelloop.loop.labeling import missing_labels

    decided = policy.decided_chunks(store.labels(policy.HUMAN))
    small = store.labels_by_chunk(policy.SMALL)
    suspects = [cid for cid in flagged if cid in small and cid not in decided]
    if not suspects:
        return []
    chunks = store.chunks(ids=suspects)
    todo = missing_labels(store, chunks, policy.LARGE, rules)
    teachers.label(store, todo, "large", rules, iteration=n, progress=progress)
    return suspects


def rare_classes(labels: list[str], classes: list[str]) -> list[str]:
    """The classes given to some but fewer than RARE_SHARE_OF_EVEN / len(classes) of these labels.

    A teacher wrong on a tenth of a class that holds most texts gives a rare class about as many
    false labels as true ones, so the share is taken of the labels as given, false ones included.
    """
    counts = Counter(labels)
    cut = RARE_SHARE_OF_EVEN / len(classes) * len(labels)
    return [c for c in classes if 0 < counts[c] < cut]


def rare_share_cut(n_labels: int, n_classes: int) -> int:
    """At most how many labels a rare class holds among n_labels (for the plan's upper bound)."""
    return max(0, math.ceil(RARE_SHARE_OF_EVEN / n_classes * n_labels) - 1)


@dataclass
class RareCheck:
    """What confirm_rare did in one round."""

    rare: list[str]  # the rare classes among the round's training labels
    asked: list[int]  # chunk ids whose small-model label the large model was asked about
    note: str | None = None  # why nothing was asked


def confirm_rare(config: Config, store: Store, n: int, rules, teachers, *, progress: bool = False) -> RareCheck:
    """review.confirm_rare: the large model labels the chunks whose small-model label is a rare class.

    Single-label only. The rare classes are those of rare_classes over the labels that count for
    round n's training chunks; the large model's label then counts (labelloop.labels). Nothing is
    asked when both roles are the same model: it would only repeat its own answer.
    """
    if config.multi_label or not config.review.confirm_rare:
        return RareCheck([], [])
    from labelloop.config import resolve_llm

    train = [c.id for c in store.chunks("train") if (c.split_iteration or 0) <= n]
    final = store.final_labels(train) if train else {}
    rare = rare_classes([lab.label for lab in final.values()], config.classes)
    if not rare:
        return RareCheck([], [])
    if resolve_llm(config, "small") == resolve_llm(config, "large"):
        return RareCheck(rare, [], "the small and large roles are the same model")
    ids = [cid for cid, lab in final.items() if lab.source == policy.SMALL and lab.label in rare]
    return RareCheck(rare, relabel(config, store, n, ids, rules, teachers, progress=progress))
