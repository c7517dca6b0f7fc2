"""Loop pieces on their own: metrics never crash or drop a class, sampling, stopping, growth."""

from __future__ import annotations

import pytest

from labelloop.evaluate import evaluate, wilson_interval
from labelloop.loop.sampling import RandomSampling, Sequential, make_sampler
from labelloop.loop.stopping import MaxIters, RequiredAccuracy, first_stop
from labelloop.loop.training import round_data
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit


def test_metrics_keep_every_class_including_index_0():
    classes = ["a", "b", "c"]
    m = evaluate(["b", "b", "c"], ["b", "c", "c"], classes)  # class index 0 appears nowhere
    assert m.classes == classes and len(m.confusion) == 3 and m.confusion[0] == [0, 0, 0]
    assert set(m.per_class) == set(classes) and m.per_class["a"]["support"] == 0
    assert m.accuracy == pytest.approx(2 / 3)
    # macro-F1 averages over all classes, the absent one scoring 0
    assert m.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_metrics_do_not_crash_on_empty_or_unseen_labels():
    m = evaluate([], [], ["a", "b"])
    assert m.n == 0 and m.accuracy == 0.0 and (m.accuracy_low, m.accuracy_high) == (0.0, 1.0)
    m = evaluate(["a"], ["(unlabeled)"], ["a", "b"])  # a prediction outside the class set
    assert m.accuracy == 0.0
    with pytest.raises(ValueError, match="y_true has 2 labels but y_pred has 1"):
        evaluate(["a", "b"], ["a"], ["a", "b"])


def test_wilson_interval_is_honest_on_small_sets():
    low, high = wilson_interval(27, 30)
    assert low < 0.9 < high and 0.73 < low < 0.75 and high < 0.97
    assert wilson_interval(30, 30)[1] == pytest.approx(1.0)


def test_samplers_are_seeded_and_never_repeat():
    pool = list(range(100))
    a = RandomSampling(seed=1).query(pool, 10, round_=2)
    assert a == RandomSampling(seed=1).query(pool, 10, round_=2)
    assert a != RandomSampling(seed=2).query(pool, 10, round_=2)
    assert len(set(a)) == 10 and set(a) <= set(pool)
    assert Sequential().query(pool, 3) == [0, 1, 2]
    assert RandomSampling(0).query(pool[:4], 10) == pool[:4]
    assert str(make_sampler("random", 3)) == "random(seed=3)"
    with pytest.raises(ValueError, match="sampling.strategy"):
        make_sampler("psychic")


def test_stopping_rules_name_their_reason(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.start_iteration(1, 10, 5)
    store.finish_iteration(1, accuracy=0.8)
    history = store.iterations()
    assert first_stop([RequiredAccuracy(0.9), MaxIters(3)], history) is None
    assert "max_iters (1)" in first_stop([RequiredAccuracy(0.9), MaxIters(1)], history)
    assert "0.800 >= 0.750" in first_stop([RequiredAccuracy(0.75)], history)


def test_round_data_grows_and_keeps_test_chunks_out(tmp_path):
    store = Store(tmp_path / "labelloop.db")
    store.add_document("d", "h", 1, [NewChunk(f"text {i}", "d", i) for i in range(12)])
    ids = [c.id for c in store.chunks()]
    store.assign_split(ids[:3], "test", iteration=0)
    store.assign_split(ids[3:7], "train", iteration=1)
    store.assign_split(ids[7:10], "train", iteration=2)
    store.assign_split(ids[:3], "train", iteration=2)  # a test chunk can never be re-assigned
    for cid in ids[:3]:
        store.set_label(cid, "llm-large", "a")
    for cid in ids[3:10]:
        store.set_label(cid, "llm-small", "b")
    store.set_label(ids[4], "human", "a")  # a person's label wins for training
    store.set_label(ids[5], "human", None, status="discarded")  # a discard leaves training
    r1, r2 = round_data(store, 1), round_data(store, 2)
    assert len(r2.train) > len(r1.train)
    assert [c.id for c in r1.train] == [ids[3], ids[4], ids[6]]
    assert r1.train_labels == ["b", "a", "b"] and r1.train_sources == ["llm-small", "human", "llm-small"]
    assert not {c.id for c in r2.train} & set(ids[:3])
    assert [c.id for c in r2.test] == ids[:3]
