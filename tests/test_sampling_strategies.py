"""Sampling strategies on real BBC embeddings: pure samplers, seeded, doing what their names say."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from labelloop.classify.encoder import Encoder
from labelloop.loop.sampling import (
    STRATEGIES, Balanced, DiverseUncertainty, Sequential, Uncertainty, make_sampler, margins, pick, water_fill,
)

from tests.helpers.bbc import bbc_docs

pytestmark = pytest.mark.unit

CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


@pytest.fixture(scope="module")
def bbc():
    """60 real articles in topic order (as a folder per topic reads), their MiniLM embeddings, gold."""
    docs = sorted(bbc_docs(per_class=12, seed=3), key=lambda d: d[1])
    X = Encoder(max_seq_length=128).encode([t for t, _ in docs])
    return np.arange(100, 100 + len(docs)), X, [lab for _, lab in docs]


def fit_student(bbc, per_class: int):
    """A student trained on per_class labeled articles per class; its probabilities on the others."""
    ids, X, gold = bbc
    seen = [i for c in CLASSES for i in [j for j, g in enumerate(gold) if g == c][:per_class]]
    rest = [i for i in range(len(ids)) if i not in seen]
    lr = LogisticRegression(max_iter=1000, C=10.0).fit(X[seen], [gold[i] for i in seen])
    probs = lr.predict_proba(X[rest])  # lr.classes_ == CLASSES (sorted)
    return ids[rest], X[rest], probs, [gold[i] for i in rest]


@pytest.fixture(scope="module")
def student(bbc):
    """A weak student: 2 labeled articles per class."""
    return fit_student(bbc, 2)


def test_every_strategy_has_a_sampler_and_a_readable_name():
    for name in STRATEGIES:
        assert str(make_sampler(name, 4)).startswith(name)
    with pytest.raises(ValueError, match="diverse-uncertainty"):
        make_sampler("most-interesting")


def test_first_batch_is_stratified_by_embedding_clusters_not_file_order(bbc):
    ids, X, gold = bbc
    by_id = dict(zip(ids.tolist(), gold))
    in_order = Sequential().query(list(ids), 10)
    assert {by_id[i] for i in in_order} == {"business"}  # Augmentoolkit's order: one topic only
    for sampler in (DiverseUncertainty(seed=0), Uncertainty(seed=0), Balanced(seed=0)):
        first = pick(sampler, list(ids), 10, 1, embeddings=X)
        assert len(set(first)) == 10 and set(first) <= set(ids.tolist())
        assert len({by_id[i] for i in first}) >= 4, (sampler, Counter(by_id[i] for i in first))
        assert first == pick(sampler, list(ids), 10, 1, embeddings=X)  # seeded


def test_uncertainty_takes_the_least_margin(student):
    ids, _X, probs, _gold = student
    chosen = Uncertainty(seed=0).query(list(ids), 8, round_=2, probs=probs)
    m = dict(zip(ids.tolist(), margins(probs)))
    worst_left = min(m[i] for i in ids.tolist() if i not in chosen)
    assert len(chosen) == 8 and max(m[i] for i in chosen) <= worst_left
    # margin is top-1 minus top-2 probability
    row = probs[0]
    assert margins(probs[:1])[0] == pytest.approx(sorted(row)[-1] - sorted(row)[-2])


def test_diverse_uncertainty_spreads_uncertain_picks(student):
    ids, X, probs, _gold = student
    n, beta = 5, 4
    sampler = DiverseUncertainty(seed=1, beta=beta)
    chosen = sampler.query(list(ids), n, round_=2, probs=probs, embeddings=X)
    assert chosen == sampler.query(list(ids), n, round_=2, probs=probs, embeddings=X)
    assert len(set(chosen)) == n
    uncertain_pool = set(ids[np.argsort(margins(probs), kind="stable")[: beta * n]].tolist())
    assert set(chosen) <= uncertain_pool
    plain = Uncertainty().query(list(ids), n, probs=probs)
    pos = {i: k for k, i in enumerate(ids.tolist())}

    def spread(picked):
        v = X[[pos[i] for i in picked]]
        return float(np.mean(1 - v @ v.T))

    assert spread(chosen) >= spread(plain)


def test_balanced_looks_for_the_classes_the_training_set_lacks(bbc):
    ids, _X, probs, gold = fit_student(bbc, 6)
    have = {"business": 30, "entertainment": 30, "politics": 30, "sports": 0, "tech": 2}
    chosen = Balanced(seed=0).query(list(ids), 10, round_=2, probs=probs, label_counts=have, classes=CLASSES)
    got = Counter(dict(zip(ids.tolist(), gold))[i] for i in chosen)
    assert got["sports"] >= 5 and got["sports"] + got["tech"] >= 8, got
    plain = Counter(dict(zip(ids.tolist(), gold))[i] for i in Uncertainty().query(list(ids), 10, probs=probs))
    assert got["sports"] + got["tech"] > plain["sports"] + plain["tech"]
    assert list(water_fill(np.array([30, 30, 30, 0, 2]), 10)) == [0, 0, 0, 6, 4]


def test_samplers_report_mismatched_inputs(student):
    ids, X, probs, _ = student
    with pytest.raises(ValueError, match="probs has 3 rows but the pool has"):
        Uncertainty().query(list(ids), 4, probs=probs[:3])
    # asking for more than the pool returns the whole pool, never repeats
    assert Uncertainty().query(list(ids[:3]), 10, probs=probs[:3]) == sorted(ids[:3].tolist())
