"""The embedded small model's multi-label thresholds are tuned on what labeling sends: the same prompts
and the same few-shot examples; a new reviewed example makes them tuned again. A real packaged GGUF
(SmolLM2-135M, the smallest) answers."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.config import parse_config
from labelloop.labels import HUMAN, LARGE, encode_set
from labelloop.loop.labeling import Teachers
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.embedded

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

CLASSES = ["business", "sport", "tech"]
TEXTS = {
    "Shares in the bank rose after record profits.": ["business"],
    "The new phone has a faster chip.": ["tech"],
    "The club's shares fell after the match was lost.": ["business", "sport"],
    "The chip maker's profits doubled this year.": ["business", "tech"],
    "A quiet afternoon by the river.": [],
}


def embed(batch: list[str]) -> np.ndarray:
    return np.array([[t.lower().count(w) for w in ("shares", "scored", "chip", "match")] for t in batch],
                    dtype=float) + 0.01


def test_thresholds_are_tuned_with_the_few_shot_examples_labeling_sends(tmp_path):
    (tmp_path / "in").mkdir()
    config = parse_config({
        "classification": {"classes": CLASSES, "desc": "News topics; several may apply.", "multi_label": True},
        "path": {"input_dir": "in", "output_dir": "out"},
        "small_model": {"mode": "embedded", "model": "smollm2-135m", "n_ctx": 1024, "calibrate": False},
        "review": {"few_shot_per_class": 1},
    }, base_dir=tmp_path)
    store = Store(config.db_path)
    store.add_document("news", "3" * 64, None, [NewChunk(t, "news", i) for i, t in enumerate(TEXTS)])
    chunks = store.chunks()
    test, reviewed, train = chunks[:2], chunks[2:4], chunks[4:]
    store.assign_split([c.id for c in test], "test")
    for c in test:
        store.set_label(c.id, LARGE, encode_set(TEXTS[c.text], CLASSES), status="ok")
    for c in reviewed:
        store.set_label(c.id, HUMAN, encode_set(TEXTS[c.text], CLASSES), status="ok")
    rules = store.add_rules("1. business: money and firms.\n2. sport: games.\n3. tech: gadgets.", author="test")
    teachers = Teachers(config, embed=embed, store=store)

    thresholds = teachers.small_thresholds(store, rules)
    assert thresholds is not None and set(thresholds) == set(CLASSES)
    tuning = [c for c in store.calls() if c.purpose == "calibrate:small"]
    assert len(tuning) == len(test)
    reviewed_texts = {c.text for c in reviewed}
    for call in tuning:  # every tuning answer saw reviewed examples, as labeling will
        shown = {text for text, _label in call.request["inputs"]["task"]["examples"]}
        assert shown and shown <= reviewed_texts

    teachers.label(store, train, "small", rules, iteration=1, progress=False)
    labeling = [c for c in store.calls() if c.purpose == "label:llm-small"]
    assert labeling and all(c.request["inputs"]["task"]["examples"] for c in labeling)
    assert labeling[0].request["inputs"]["params"]["thresholds"] == [thresholds[c] for c in CLASSES]

    assert teachers.small_thresholds(store, rules) == thresholds  # remembered: no new calls
    assert len([c for c in store.calls() if c.purpose == "calibrate:small"]) == len(tuning)
    store.set_label(train[0].id, HUMAN, encode_set([], CLASSES), status="ok")  # a new reviewed example
    teachers.small_thresholds(store, rules)
    assert len([c for c in store.calls() if c.purpose == "calibrate:small"]) > len(tuning)
