"""The static student, soft labels, and `student.type: auto`, on real BBC articles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from labelloop.classify import load_student, make_student
from labelloop.classify.head import fit_head, head_proba
from labelloop.classify.selection import Candidate, choose

from tests.helpers.bbc import bbc_docs

pytestmark = pytest.mark.slow
CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


@pytest.fixture(scope="module")
def split():
    docs = [(t[:1200], lab) for t, lab in bbc_docs(per_class=24, seed=21)]
    return docs[:80], docs[80:]


class MemoryCache(dict):
    """An in-memory embedding cache (the get/put the students take)."""

    def get(self, keys):
        return {k: self[k] for k in keys if k in self}

    def put(self, vectors):
        self.update(vectors)


def accuracy(student, items) -> float:
    return float(np.mean([p == g for p, g in zip(student.predict([t for t, _ in items]), [g for _, g in items])]))


def test_static_student_is_fast_accurate_and_loads_with_numpy_alone(split, tmp_path):
    train, test = split
    student = make_student("static", CLASSES).fit([t for t, _ in train], [g for _, g in train])
    assert accuracy(student, test) >= 0.8
    folder = tmp_path / "static"
    student.save(folder)
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pt"))
    again = load_student(folder)
    np.testing.assert_allclose(again.predict_proba([t for t, _ in test]), student.predict_proba([t for t, _ in test]),
                               atol=1e-6)
    # The README's snippet: numpy, safetensors and tokenizers; no torch, no labelloop.
    code = f"""
import json, sys, numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer
d = {str(folder)!r}
meta, head = json.load(open(d + "/labelloop.json")), load_file(d + "/head.safetensors")
emb = load_file(d + "/static/embeddings.safetensors")["embeddings"]
tok = Tokenizer.from_file(d + "/static/tokenizer.json"); tok.no_truncation(); tok.no_padding()
def embed(text):
    ids = tok.encode(text, add_special_tokens=False).ids[:{student._max_tokens()}] or [0]
    v = emb[ids].mean(axis=0)
    return v / (np.linalg.norm(v) or 1.0)
X = np.stack([embed(t) for t in {[t for t, _ in test[:5]]!r}])
print(json.dumps([meta["id2label"][str(i)] for i in (X @ head["coef"].T + head["intercept"]).argmax(1)]))
assert "torch" not in sys.modules and not any(m.startswith("labelloop") for m in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == student.predict([t for t, _ in test[:5]])


def test_soft_targets_equal_to_the_labels_change_nothing():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    hard = fit_head(X, y, 3, balancing="class-weight", seed=0)
    one_hot = np.eye(3)[y]
    soft = fit_head(X, y, 3, balancing="class-weight", seed=0, soft=one_hot)
    np.testing.assert_allclose(head_proba(X, *soft), head_proba(X, *hard), atol=2e-3)


def test_soft_targets_move_the_head_toward_the_teachers_doubt():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X[:, 0] > 0).astype(int)
    unsure = np.where(y[:, None] == np.arange(2), 0.6, 0.4)  # the teacher was 60/40 on every text
    hard = head_proba(X, *fit_head(X, y, 2, balancing="none", seed=0))
    soft = head_proba(X, *fit_head(X, y, 2, balancing="none", seed=0, soft=unsure))
    assert soft.max(axis=1).mean() < hard.max(axis=1).mean()  # less sure, as the teacher was
    assert (soft.argmax(1) == hard.argmax(1)).mean() > 0.9  # the same decisions


def test_auto_tries_cheap_students_first_and_keeps_to_its_budget(split):
    train, _test = split
    texts, labels = [t for t, _ in train], [g for _, g in train]

    cache = MemoryCache()
    make_student("embedding-head", CLASSES, cache=cache).fit(texts, labels)  # embedded before the clock starts

    def make(kind, encoder):
        return make_student(kind, CLASSES, model_path=encoder, cache=cache)

    pool = [Candidate("static", "static", None, False), Candidate("embedding-head", "embedding-head", None, False),
            Candidate("setfit", "setfit", None, True)]
    # The cheap students are below an unreachable target: setfit is tried, and stopped by the tiny budget.
    choice = choose(make, texts, labels, target=1.01, budget_s=8.0, previous_best=None, folds=3, candidates_=pool)
    by_name = {t.candidate: t for t in choice.trials}
    assert by_name["static"].cv_accuracy is not None and by_name["embedding-head"].cv_accuracy is not None
    assert by_name["setfit"].cv_accuracy is None and "budget" in by_name["setfit"].note
    assert by_name["setfit"].seconds < 120  # stopped inside its first fold, not after it (that took minutes)
    assert choice.kind in ("static", "embedding-head") and choice.oos.shape == (len(texts), len(CLASSES))
    assert "cross-validated agreement" in choice.reason
    # A reachable target: the expensive student is not needed.
    easy = choose(make, texts, labels, target=0.5, budget_s=600, previous_best=None, folds=3, candidates_=pool)
    assert {t.candidate: t for t in easy.trials}["setfit"].note.startswith("not needed")


def test_a_candidate_embedding_past_the_budget_stops_and_keeps_what_it_embedded():
    """auto's budget holds for the cheap students too: embedding stops at the deadline, cached so far."""
    import time

    from labelloop.classify.base import OverBudget, fit_deadline

    texts = [f"Article {i}: the council met on Tuesday to discuss the budget." for i in range(40)]
    cache = MemoryCache()
    student = make_student("embedding-head", CLASSES, cache=cache)
    student.batch_size = 8  # parts of 16 texts
    with fit_deadline(time.monotonic() - 1.0), pytest.raises(OverBudget):
        student.cross_val_proba(texts, [CLASSES[i % 5] for i in range(40)], folds=2)
    assert len(cache) == 16  # the first part, kept for the next round
    student.cross_val_proba(texts, [CLASSES[i % 5] for i in range(40)], folds=2)  # no deadline: all of them
    assert len(cache) == 40
