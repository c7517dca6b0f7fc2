"""What a round is scored by: accuracy, or (multi-label) the metric classification.multi_label_metric names.

The one place the loop turns reference labels and predictions into metrics and a headline number.
The headline is stored as the iteration's `accuracy` (with its 95% interval), so the stopping rules,
the iteration table and the report compare the same number whatever the mode; `metric_name` says
which metric it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelloop.classify.decision import decide
from labelloop.config import Config
from labelloop.evaluate import Metrics, MultiMetrics, evaluate, evaluate_multilabel, headline_metric


@dataclass(frozen=True)
class Headline:
    value: float
    low: float
    high: float
    macro_f1: float


def metric_name(config: Config) -> str:
    """The name of the number required_accuracy is compared with (labelloop.evaluate.headline_metric)."""
    return headline_metric(config)


def predictions(config: Config, student, probs: np.ndarray) -> list:
    """The student's answers from its probabilities: a class, or (multi-label) a label set by its thresholds."""
    return decide(probs, student.classes_, student.thresholds_ if config.multi_label else None)


def score(config: Config, reference: list, predicted: list) -> Metrics | MultiMetrics:
    """Metrics of predictions against reference labels (class names, or label sets)."""
    if config.multi_label:
        return evaluate_multilabel(reference, predicted, config.classes, seed=config.sampling.seed)
    return evaluate(reference, predicted, config.classes)


def headline(config: Config, metrics: Metrics | MultiMetrics) -> Headline:
    """The number the loop stops on, with its 95% interval, and macro-F1."""
    if isinstance(metrics, MultiMetrics):
        name = headline_metric(config)
        low, high = metrics.interval(name)
        return Headline(metrics.value(name), low, high, metrics.macro_f1)
    return Headline(metrics.accuracy, metrics.accuracy_low, metrics.accuracy_high, metrics.macro_f1)
