"""The one decision rule (labelloop.classify.decision): a label or label set from probabilities, and a
document's answer from its chunks'; nothing else in src/ decides on its own."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from labelloop.classify.decision import DocumentPool, chosen, confidence, decide, decide_codes, pool

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[1] / "src" / "labelloop"
CLASSES = ["a", "b", "c"]
P = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])


def test_single_label_is_the_most_probable_class_first_on_a_tie():
    assert decide(P, CLASSES) == ["b", "a", "c"]
    assert decide_codes(P) == [1, 0, 2]
    assert confidence(P).tolist() == [0.5, 0.4, 0.8]
    assert chosen(P).sum(axis=1).tolist() == [1, 1, 1]


def test_multi_label_takes_every_class_reaching_its_threshold_and_may_take_none():
    t = [0.4, 0.5, 0.9]
    assert decide(P, CLASSES, t) == [["b"], ["a"], []]
    assert decide_codes(P, t) == [2, 1, 0]  # bit j: class j
    assert decide([0.4, 0.5, 0.95], CLASSES, t) == [["a", "b", "c"]]  # a threshold is reached, not passed
    assert confidence(P, t).tolist() == pytest.approx([0.5, 0.6, 0.8])  # the least sure yes/no


def test_no_rows_give_no_answers():
    assert decide(np.zeros((0, 3)), CLASSES) == [] and decide([], CLASSES) == []
    assert decide(np.zeros((0, 3)), CLASSES, [0.5] * 3) == [] and decide_codes(np.zeros((0, 3)), [0.5] * 3) == []


def test_a_document_pools_its_chunks_the_same_in_batches_as_at_once():
    rng = np.random.default_rng(0)
    chunks = rng.dirichlet(np.ones(3), size=7)
    whole = pool(chunks)
    batched = DocumentPool().add(chunks[:2]).add(chunks[2:3]).add(chunks[3:])
    assert batched.chunks == 7
    assert batched.probs() == pytest.approx(whole, abs=1e-12)
    assert whole == pytest.approx(chunks.mean(axis=0))
    with pytest.raises(ValueError, match="at least one chunk"):
        DocumentPool().probs()


def test_a_multi_label_document_holds_a_label_when_one_of_its_chunks_does():
    chunks = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.1, 0.2, 0.3]])
    t = [0.5, 0.5, 0.5]
    doc = DocumentPool(multi_label=True).add(chunks[:1]).add(chunks[1:])
    assert doc.probs().tolist() == [0.9, 0.8, 0.3] and doc.chunks == 3
    assert decide(doc.probs(), CLASSES, t) == [["a", "b"]]  # the union of the chunks' sets
    assert decide(pool(chunks), CLASSES, t) == [[]]  # the mean would lose both topics


# A decision is an argmax over class probabilities or a comparison with per-class thresholds. These are
# the argmaxes in src/ that are not a student's decision, each with why.
NOT_A_DECISION = {
    "llm/": "the small LLM's own answer over label log-probabilities (the LLM layer may not import classify)",
    "classify/folder.py": "the README's loading code for users without labelloop (text, not run by labelloop)",
}


def test_no_other_module_decides_a_label_from_probabilities():
    pattern = re.compile(r"argmax\(|apply_thresholds|>=\s*(np\.asarray\()?(self\.)?thresholds|>= saved_thresholds")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "classify/decision.py" or any(rel.startswith(k) for k in NOT_A_DECISION):
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{lineno}: {line.strip()}")
    assert not found, "decide in labelloop.classify.decision instead:\n" + "\n".join(found)
