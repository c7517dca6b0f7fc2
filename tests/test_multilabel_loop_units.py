"""The loop's multi-label policies on their own: sampling by distance to thresholds, positives per label,
the headline metric the stopping rules read, kappa over whole sets, the label-set tally."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.config import parse_config
from labelloop.evaluate import evaluate_multilabel, headline_metric
from labelloop.llm.labeler import counted_classes
from labelloop.loop import scoring
from labelloop.loop.sampling import Balanced, Uncertainty, margins
from labelloop.loop.stopping import make_stops
from labelloop.store import Iteration

pytestmark = pytest.mark.unit

CLASSES = ["business", "sports", "tech"]


def config(tmp_path, **classification):
    (tmp_path / "in").mkdir(exist_ok=True)
    raw = {"classification": {"classes": CLASSES, "desc": "topics", **classification},
           "path": {"input_dir": "in", "output_dir": "out"}}
    return parse_config(raw, tmp_path)


def test_uncertainty_is_the_least_decided_label_not_the_top_two_gap():
    t = np.array([0.3, 0.5, 0.7])
    probs = np.array([[0.9, 0.05, 0.05],   # every label far from its threshold
                      [0.31, 0.0, 0.0],    # business a hair above its 0.3
                      [0.0, 0.0, 0.69]])   # tech a hair under its 0.7
    m = margins(probs, t)
    assert m[1] == pytest.approx(0.01) and m[2] == pytest.approx(0.01) and m[0] > 0.4
    picked = Uncertainty(seed=0).query([10, 11, 12], 2, round_=2, probs=probs, thresholds=t)
    assert picked == [11, 12]
    assert margins(probs).tolist() != m.tolist()  # single-label margins are unchanged without thresholds


def test_balanced_looks_for_positives_of_the_label_the_training_set_lacks():
    t = np.array([0.5, 0.5, 0.5])
    probs = np.array([[0.9, 0.1, 0.1], [0.8, 0.7, 0.1], [0.2, 0.1, 0.6], [0.1, 0.2, 0.9], [0.7, 0.1, 0.2]])
    picked = Balanced(seed=0).query(list(range(5)), 2, round_=2, probs=probs, thresholds=t,
                                    label_counts={"business": 20, "sports": 20, "tech": 0}, classes=CLASSES)
    assert picked == [2, 3]  # the two chunks predicted to hold tech


def test_the_headline_is_the_chosen_metric_and_the_stops_say_so(tmp_path):
    multi = config(tmp_path, multi_label=True, multi_label_metric="subset_accuracy")
    assert headline_metric(multi) == "subset_accuracy" and headline_metric(config(tmp_path)) == "accuracy"
    m = evaluate_multilabel([["business"], ["sports", "tech"], []], [["business"], ["sports"], []], CLASSES)
    top = scoring.headline(multi, m)
    assert top.value == pytest.approx(2 / 3) and top.low <= top.value <= top.high
    stop = make_stops(multi)[0]
    done = Iteration(n=1, train_size=10, test_size=10, accuracy=0.95, accuracy_low=0.9, accuracy_high=1.0,
                     macro_f1=0.9, gold_accuracy=None, gold_size=0, metrics={}, seconds=1.0, llm_calls=0,
                     model_path=None, status="done", stop_reason=None)
    assert "subset_accuracy >=" in str(stop) and "(subset_accuracy)" in stop.stop([done])
    hamming = config(tmp_path, multi_label=True, multi_label_metric="hamming_loss")
    assert scoring.headline(hamming, m).value == pytest.approx(1 - m.hamming_loss)


def test_auto_is_refused_with_multi_label_and_says_what_to_set(tmp_path):
    from labelloop.errors import ConfigError

    raw = {"classification": {"classes": CLASSES, "desc": "topics", "multi_label": True},
           "path": {"input_dir": "in", "output_dir": "out"}, "student": {"type": "auto"}}
    (tmp_path / "in").mkdir()
    with pytest.raises(ConfigError) as err:
        parse_config(raw, tmp_path)
    assert "student.type" in str(err.value) and "embedding-head" in str(err.value)


def test_a_label_set_counts_once_per_class_and_none_of_them_is_counted():
    assert counted_classes('["business", "tech"]', True) == ["business", "tech"]
    assert counted_classes("[]", True) == ["(none)"]
    assert counted_classes("business", False) == ["business"]
