"""Which LLM training labels a round leaves out: confident learning on out-of-sample probabilities."""

from __future__ import annotations

import numpy as np

from labelloop.loop.training import RoundData, suspect_rows

CLASSES = ["a", "b", "c"]


def round_data(labels: list[str], sources: list[str]) -> RoundData:
    return RoundData(train=[None] * len(labels), train_labels=labels, train_sources=sources,
                     train_conf=[None] * len(labels), test=[], test_labels=[], gold=[], gold_labels=[])


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
    rows = suspect_rows(round_data(given, sources), confident(true), CLASSES)
    assert sorted(rows) == [0, 4]


def test_nothing_flagged_without_cross_validated_probabilities():
    given = ["a", "b", "c"] * 4
    uniform = np.full((len(given), 3), 1 / 3)  # what crossval returns when a class is too small to fold
    assert suspect_rows(round_data(given, ["llm-small"] * len(given)), uniform, CLASSES) == []
    assert suspect_rows(round_data(given[:4], ["llm-small"] * 4), confident(given[:4]), CLASSES) == []


def test_a_class_is_never_left_without_examples():
    given = ["a", "b"] * 6 + ["c"] * 6
    probs = confident(["a", "b"] * 6 + ["a"] * 6)  # the model thinks every "c" is an "a"
    rows = suspect_rows(round_data(given, ["llm-small"] * len(given)), probs, CLASSES)
    kept_c = [i for i in range(12, 18) if i not in rows]
    assert rows and len(kept_c) == 1
