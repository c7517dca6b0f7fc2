"""When the loop stops. One small object per rule: `stop(history) -> reason or None`.

Rules read only the finished iterations. The stability rule reads the student's predictions
on a fixed stop set, which the runner stores in each iteration's metrics under STOP_SET_KEY.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from labelloop.evaluate import headline_metric
from labelloop.store import Iteration

STOP_SET_KEY = "stop_set"  # metrics["stop_set"] = {"ids": [...], "pred": [class index, ...]}


class RequiredAccuracy:
    """Stop when the student agrees with the teacher's test labels at least this often."""

    def __init__(self, target: float, metric: str = "accuracy"):
        self.target = target
        self.metric = metric  # multi-label: the metric the iteration's headline holds (loop.scoring)

    def stop(self, history: Sequence[Iteration]) -> str | None:
        last = history[-1] if history else None
        if last is not None and last.accuracy is not None and last.accuracy >= self.target:
            said = "" if self.metric == "accuracy" else f" ({self.metric})"
            return f"reached required_accuracy{said}: {last.accuracy:.3f} >= {self.target:.3f}"
        return None

    def __str__(self) -> str:
        return f"{self.metric} >= {self.target}"


class LowerBound:
    """Stop when the 95% lower bound of the accuracy (Wilson) reaches the target: confident, not lucky."""

    def __init__(self, target: float, metric: str = "accuracy"):
        self.target = target
        self.metric = metric

    def stop(self, history: Sequence[Iteration]) -> str | None:
        last = history[-1] if history else None
        if last is not None and last.accuracy_low is not None and last.accuracy_low >= self.target:
            return (f"reached required_accuracy with 95% confidence: lower bound {last.accuracy_low:.3f} "
                    f">= {self.target:.3f} ({self.metric} {last.accuracy:.3f})")
        return None

    def __str__(self) -> str:
        return f"{self.metric} 95% lower bound >= {self.target}"


class MaxIters:
    """Stop after a fixed number of rounds, so a run never spends without bound."""

    def __init__(self, max_iters: int):
        self.max_iters = max_iters

    def stop(self, history: Sequence[Iteration]) -> str | None:
        if len(history) >= self.max_iters:
            return f"reached max_iters ({self.max_iters}) without the required accuracy"
        return None

    def __str__(self) -> str:
        return f"iterations >= {self.max_iters}"


def stop_set_kappa(a: dict | None, b: dict | None) -> float | None:
    """Cohen's kappa between two iterations' predictions on the chunks both stop sets hold."""
    from sklearn.metrics import cohen_kappa_score

    if not a or not b:
        return None
    pa, pb = dict(zip(a["ids"], a["pred"])), dict(zip(b["ids"], b["pred"]))
    common = sorted(set(pa) & set(pb))
    if not common:
        return None
    ya, yb = [pa[i] for i in common], [pb[i] for i in common]
    if ya == yb:
        return 1.0  # identical (kappa is undefined when both predict a single class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(ya, yb))
    return None if math.isnan(kappa) else kappa


class PredictionsStable:
    """Stop when predictions on the stop set agree across `window` successive pairs of rounds
    (Cohen's kappa >= threshold; Bloodgood & Vijay-Shanker 2009)."""

    def __init__(self, threshold: float = 0.99, window: int = 2):
        self.threshold = threshold
        self.window = window

    def stop(self, history: Sequence[Iteration]) -> str | None:
        if len(history) < self.window + 1:
            return None
        recent = history[-(self.window + 1):]
        kappas = [stop_set_kappa(x.metrics.get(STOP_SET_KEY), y.metrics.get(STOP_SET_KEY))
                  for x, y in zip(recent, recent[1:])]
        if all(k is not None and k >= self.threshold for k in kappas):
            shown = ", ".join(f"{k:.3f}" for k in kappas)
            return (f"predictions stabilized: Cohen's kappa between successive rounds {shown} "
                    f">= {self.threshold} over the last {self.window}")
        return None

    def __str__(self) -> str:
        return f"kappa >= {self.threshold} over {self.window} rounds"


def learning_curve_fit(sizes: Sequence[float], accs: Sequence[float]):
    """Fit acc(s) = a - b * s**-c (an inverse power law, Figueroa et al. 2012); None if it fails."""
    from scipy.optimize import curve_fit

    def law(s, a, b, c):
        return a - b * np.power(s, -c)

    x, y = np.asarray(sizes, dtype=float), np.asarray(accs, dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(law, x, y, p0=[min(1.0, y.max() + 0.02), 1.0, 0.5],
                                  bounds=([0.0, 0.0, 0.0], [1.0, np.inf, 3.0]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    return lambda s: float(law(np.asarray(s, dtype=float), *params))


class ProjectedGain:
    """Stop when the fitted learning curve promises less than `min_gain` accuracy from one more round."""

    def __init__(self, min_gain: float, increment: int, min_points: int = 3):
        self.min_gain = min_gain
        self.increment = increment
        self.min_points = min_points

    def projected(self, history: Sequence[Iteration]) -> float | None:
        """The accuracy gain the curve projects for one more round, or None with too few points."""
        pts = [(it.train_size, it.accuracy) for it in history if it.accuracy is not None and it.train_size]
        if len(pts) < self.min_points or len({s for s, _ in pts}) < self.min_points:
            return None
        curve = learning_curve_fit([s for s, _ in pts], [a for _, a in pts])
        if curve is None:
            return None
        now = pts[-1][0]
        return curve(now + self.increment) - curve(now)

    def stop(self, history: Sequence[Iteration]) -> str | None:
        gain = self.projected(history)
        if gain is not None and gain < self.min_gain:
            return (f"another round is not worth it: the learning curve projects +{gain:.4f} accuracy "
                    f"from {self.increment} more labels (< min_gain {self.min_gain})")
        return None

    def __str__(self) -> str:
        return f"projected gain >= {self.min_gain}"


def make_stops(config) -> list:
    """The stopping rules a config asks for, in the order they are checked."""
    s = config.stopping
    target = config.system.required_accuracy
    metric = headline_metric(config)
    rules: list = [LowerBound(target, metric) if s.lower_bound else RequiredAccuracy(target, metric),
                   MaxIters(config.training.max_iters)]
    if s.kappa is not None:
        rules.append(PredictionsStable(s.kappa, s.kappa_window))
    if s.min_gain is not None:
        rules.append(ProjectedGain(s.min_gain, config.training.train_set_increment))
    return rules


def first_stop(rules: Sequence, history: Sequence[Iteration]) -> str | None:
    for rule in rules:
        reason = rule.stop(history)
        if reason:
            return reason
    return None
