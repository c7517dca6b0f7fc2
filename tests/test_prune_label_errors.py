"""Which LLM training labels a round leaves out: confident learning on out-of-sample probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.loop.label_errors import rank_round, rows_to_prune

pytestmark = pytest.mark.unit
CLASSES = ["a", "b", "c"]


def suspects(labels: list[str], sources: list[str], probs: np.ndarray) -> list[int]:
    rows, _flags = rank_round(list(range(100, 100 + len(labels))), labels, sources, probs, CLASSES)
    return rows_to_prune(rows, labels)


def confident(true: list[str]) -> np.ndarray:
    """Probabilities that put 0.9 on the true class of each row."""
    probs = np.full((len(true), len(CLASSES)), 0.05)
    for i, t in enumerate(true):
        probs[i, CLASSES.index(t)] = 0.9
    return probs


def test_flags_the_wrong_llm_labels_and_spares_people():
    true = ["a", "b", "c"] * 6
    given = list(true)
    given[0], given[4], given[8] = "b", "c", "a"  # three LLM mistakes
    sources = ["llm-small"] * len(given)
    sources[8] = "human"  # a person's label is the reference, even against the model
    assert sorted(suspects(given, sources, confident(true))) == [0, 4]
    _rows, flags = rank_round(list(range(100, 118)), given, sources, confident(true), CLASSES)
    assert sorted(flags.flagged) == [100, 104] and flags.checked == 18 and len(flags.scores) == 2


def test_nothing_flagged_without_cross_validated_probabilities():
    given = ["a", "b", "c"] * 4
    uniform = np.full((len(given), 3), 1 / 3)  # what cross_val_proba returns when a class is too small to fold
    assert suspects(given, ["llm-small"] * len(given), uniform) == []
    _rows, flags = rank_round(list(range(12)), given, ["llm-small"] * 12, uniform, CLASSES)
    assert flags.note and "alike" in flags.note
    assert suspects(given[:4], ["llm-small"] * 4, confident(given[:4])) == []


def test_a_class_is_never_left_without_examples():
    given = ["a", "b"] * 6 + ["c"] * 6
    probs = confident(["a", "b"] * 6 + ["a"] * 6)  # the model thinks every "c" is an "a"
    rows = suspects(given, ["llm-small"] * len(given), probs)
    kept_c = [i for i in range(12, 18) if i not in rows]
    assert rows and len(kept_c) == 1
