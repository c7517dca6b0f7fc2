"""Stopping rules: confident accuracy, stable predictions, projected gain; the config that builds them."""

from __future__ import annotations

import pytest

from labelloop.config import parse_config
from labelloop.evaluate import wilson_interval
from labelloop.loop.stopping import (
    STOP_SET_KEY, LowerBound, MaxIters, PredictionsStable, ProjectedGain, RequiredAccuracy, first_stop,
    learning_curve_fit, make_stops, stop_set_kappa,
)
from labelloop.store import Store

pytestmark = pytest.mark.unit


def history(tmp_path, rounds: list[dict]):
    """Finished iterations in a real project file: each dict holds train, correct, test and optional preds."""
    store = Store(tmp_path / "labelloop.db")
    for n, r in enumerate(rounds, 1):
        store.start_iteration(n, r["train"], r.get("test", 100))
        low, high = wilson_interval(r["correct"], r.get("test", 100))
        metrics = {STOP_SET_KEY: {"ids": list(range(len(r["pred"]))), "pred": r["pred"]}} if "pred" in r else {}
        store.finish_iteration(n, accuracy=r["correct"] / r.get("test", 100), accuracy_low=low, accuracy_high=high,
                               metrics=metrics)
    return store.iterations()


def test_lower_bound_waits_until_the_accuracy_is_certain(tmp_path):
    lucky = history(tmp_path, [{"train": 50, "correct": 19, "test": 20}])  # 95% of only 20 items
    assert RequiredAccuracy(0.9).stop(lucky) is not None
    assert LowerBound(0.9).stop(lucky) is None
    sure = history(tmp_path / "b", [{"train": 50, "correct": 970, "test": 1000}])
    reason = LowerBound(0.9).stop(sure)
    assert reason and "lower bound 0.9" in reason and ">= 0.900" in reason


def test_kappa_rule_needs_agreement_over_the_whole_window(tmp_path):
    base = [i % 3 for i in range(200)]
    one_off = base[:-1] + [(base[-1] + 1) % 3]  # 1 of 200 changed: kappa about 0.99
    many_off = [(p + 1) % 3 if i < 20 else p for i, p in enumerate(base)]
    its = history(tmp_path, [{"train": 10 * (k + 1), "correct": 80, "pred": p}
                             for k, p in enumerate([many_off, base, one_off, one_off])])
    assert stop_set_kappa(its[1].metrics[STOP_SET_KEY], its[2].metrics[STOP_SET_KEY]) == pytest.approx(0.9925, abs=2e-3)
    assert stop_set_kappa(its[2].metrics[STOP_SET_KEY], its[3].metrics[STOP_SET_KEY]) == 1.0
    assert PredictionsStable(0.99, 2).stop(its[:3]) is None  # round 1 -> 2 changed 10% of predictions
    reason = PredictionsStable(0.99, 2).stop(its)
    assert reason and "kappa" in reason and "last 2" in reason
    assert PredictionsStable(0.999, 2).stop(its) is None
    assert stop_set_kappa(None, its[0].metrics[STOP_SET_KEY]) is None  # a round without predictions


def test_projected_gain_stops_on_a_flat_learning_curve(tmp_path):
    def law(s):
        return 0.95 - 2.0 * s ** -0.7

    sizes = [100, 200, 300, 400]
    its = history(tmp_path, [{"train": s, "correct": round(1000 * law(s)), "test": 1000} for s in sizes])
    curve = learning_curve_fit(sizes, [it.accuracy for it in its])
    assert curve(800) == pytest.approx(law(800), abs=0.01)  # the fit recovers the law
    rule = ProjectedGain(0.005, increment=100)
    assert rule.projected(its[:2]) is None  # too few points to fit a curve
    steep = rule.projected(its[:3])
    assert steep > 0.005 and rule.stop(its[:3]) is None
    flat = ProjectedGain(0.01, increment=100)
    assert flat.stop(its) and "projects +0.00" in flat.stop(its)


def test_config_builds_the_rules_and_checks_them_in_order(tmp_path):
    (tmp_path / "in").mkdir()
    base = {"classification": {"classes": ["a", "b"], "desc": "d"}, "path": {"input_dir": "in", "output_dir": "out"},
            "system": {"required_accuracy": 0.8}, "training": {"max_iters": 3, "train_set_increment": 50}}
    default = make_stops(parse_config(base, tmp_path))
    assert [type(r) for r in default] == [RequiredAccuracy, MaxIters, PredictionsStable]
    cfg = parse_config({**base, "stopping": {"lower_bound": True, "kappa": None, "min_gain": 0.01}}, tmp_path)
    rules = make_stops(cfg)
    assert [type(r) for r in rules] == [LowerBound, MaxIters, ProjectedGain] and rules[2].increment == 50
    its = history(tmp_path, [{"train": 10, "correct": 85}] * 3)
    assert "max_iters (3)" in first_stop(rules, its)  # 0.85 but its lower bound is below 0.8
    from labelloop.errors import ConfigError

    with pytest.raises(ConfigError, match="stopping.kappa"):
        parse_config({**base, "stopping": {"kappa": 1.5}}, tmp_path)
