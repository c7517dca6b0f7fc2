"""The multi-label building blocks: label sets in the store, the reply parser, one head per label,
per-label thresholds, and the metrics (checked against scikit-learn's own)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss

from labelloop.classify.head import fit_multi_head, multi_head_proba
from labelloop.classify.thresholds import tune_thresholds
from labelloop.evaluate import evaluate_multilabel, label_matrix
from labelloop.labels import decode_set, encode_set
from labelloop.llm.parse import ParseError, parse_label_set

pytestmark = pytest.mark.unit
CLASSES = ["billing", "bug", "feature"]


def test_label_sets_are_stored_in_class_order_and_read_back():
    assert encode_set(["feature", "billing", "feature"], CLASSES) == '["billing", "feature"]'
    assert decode_set(encode_set([], CLASSES)) == []
    assert decode_set('["bug"]') == ["bug"]
    assert decode_set("bug") == ["bug"]  # a single-label row reads as a set of one
    assert decode_set(None) == []


@pytest.mark.parametrize("reply,expected", [
    ('{"labels": ["feature", "bug"]}', ["bug", "feature"]),
    ('["billing"]', ["billing"]),
    ("The user is charged twice and the app crashes.\nLabels: billing, bug", ["billing", "bug"]),
    ("Nothing here fits.\nLabels: none", []),
    ("Labels: Bug and FEATURE", ["bug", "feature"]),
    ("bug, feature", ["bug", "feature"]),
    ('Reasoning first.\n```json\n{"labels": []}\n```', []),
])
def test_multi_label_replies_parse_to_sets(reply, expected):
    assert parse_label_set(reply, CLASSES) == expected


@pytest.mark.parametrize("reply", ["", "I am not sure what to say about this ticket at all.\nMaybe later."])
def test_unreadable_multi_label_replies_say_what_to_answer(reply):
    with pytest.raises(ParseError, match="Labels: none|classes that apply"):
        parse_label_set(reply, CLASSES)


def test_a_label_outside_the_classes_is_an_error_not_a_guess():
    with pytest.raises(ParseError, match="refund"):
        parse_label_set("Labels: refund, bug", CLASSES)


def separable(n=240, seed=0):
    """Three labels, each a direction in 8-d space; a row has each label with probability 0.4."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < 0.4).astype(int)
    X = rng.normal(0, 0.6, (n, 8))
    X[:, :3] += 2.5 * Y
    return X / np.linalg.norm(X, axis=1, keepdims=True), Y


def test_one_head_per_label_learns_each_label_on_its_own():
    X, Y = separable()
    coef, intercept = fit_multi_head(X[:160], Y[:160], balancing="class-weight", seed=0)
    P = multi_head_proba(X[160:], coef, intercept)
    assert P.shape == (80, 3) and ((P >= 0) & (P <= 1)).all()
    assert f1_score(Y[160:], (P >= 0.5).astype(int), average="micro") > 0.9
    # rows with no label at all are predicted with none, not forced into one
    none_rows = Y[160:].sum(axis=1) == 0
    assert none_rows.any() and ((P[none_rows] >= 0.5).sum(axis=1) == 0).mean() > 0.6  # a softmax head: 0


def test_a_label_never_given_gets_a_constant_no():
    X, Y = separable()
    Y[:, 2] = 0
    coef, intercept = fit_multi_head(X, Y, balancing="class-weight", seed=0)
    assert (multi_head_proba(X, coef, intercept)[:, 2] < 0.01).all()


def test_thresholds_maximise_each_labels_f1_and_are_not_a_fixed_half():
    rng = np.random.default_rng(1)
    Y = (rng.random((400, 2)) < 0.3).astype(int)
    # label 0's scores are shifted low (a rare, under-confident label): the best cut is well below 0.5
    P = np.clip(np.column_stack([0.1 + 0.25 * Y[:, 0], 0.3 + 0.4 * Y[:, 1]]) + rng.normal(0, 0.03, (400, 2)), 0, 1)
    t = tune_thresholds(P, Y)
    assert t[0] < 0.35 and 0.3 < t[1] < 0.7
    for j in range(2):
        assert f1_score(Y[:, j], P[:, j] >= t[j]) >= f1_score(Y[:, j], P[:, j] >= 0.5)
    assert tune_thresholds(P, np.zeros_like(Y)).tolist() == [0.5, 0.5]  # no positives: nothing to tune on


def test_multi_label_metrics_match_scikit_learn():
    rng = np.random.default_rng(2)
    true = [[c for c in CLASSES if rng.random() < 0.4] for _ in range(120)]
    pred = [[c for c in CLASSES if (c in t) != (rng.random() < 0.2)] for t in true]
    m = evaluate_multilabel(true, pred, CLASSES, resamples=200)
    Y, P = label_matrix(true, CLASSES), label_matrix(pred, CLASSES)
    assert m.micro_f1 == pytest.approx(f1_score(Y, P, average="micro"))
    assert m.macro_f1 == pytest.approx(f1_score(Y, P, average="macro", zero_division=0))
    assert m.hamming_loss == pytest.approx(hamming_loss(Y, P))
    assert m.subset_accuracy == pytest.approx(np.mean([set(a) == set(b) for a, b in zip(true, pred)]))
    lo, hi = m.intervals["micro_f1"]
    assert lo < m.micro_f1 < hi
    assert m.per_class["bug"]["f1"] == pytest.approx(f1_score(Y[:, 1], P[:, 1]))
    assert m.cooccurrence[0][0] == sum("billing" in t for t in true)


def test_a_left_out_decision_changes_only_its_own_label():
    """fit_multi_head(ignore=...): label j learns without row i's decision; the other labels still see row i."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.c_[(X[:, 0] > 0).astype(int), (X[:, 1] > 0).astype(int)]
    wrong = Y.copy()
    wrong[:10, 0] = 1 - wrong[:10, 0]  # ten wrong decisions of label 0
    ignore = np.zeros(Y.shape, bool)
    ignore[:10, 0] = True
    full = fit_multi_head(X, Y, balancing="class-weight", seed=0)
    masked = fit_multi_head(X, wrong, balancing="class-weight", seed=0, ignore=ignore)
    clean0 = fit_multi_head(X[10:], Y[10:], balancing="class-weight", seed=0)
    assert np.allclose(masked[0][0], clean0[0][0], atol=1e-5)  # label 0: as if the wrong rows were not there
    assert np.allclose(masked[0][1], full[0][1], atol=1e-5)  # label 1: every row, as without any mask


def test_confident_learning_flags_single_wrong_decisions():
    from labelloop.classify.label_quality import find_cell_issues
    from labelloop.loop.label_errors import decisions_to_ignore

    rng = np.random.default_rng(2)
    Y = (rng.random((200, 3)) < 0.3).astype(int)
    probs = np.clip(Y * 0.9 + (1 - Y) * 0.1 + rng.normal(0, 0.03, Y.shape), 0, 1)
    noisy = Y.copy()
    noisy[:15, 1] = 1 - noisy[:15, 1]
    flagged = find_cell_issues(noisy, probs)
    assert flagged[:15, 1].sum() >= 10 and flagged[15:].sum() <= 3  # two thirds found, few false alarms
    assert not flagged[:15, [0, 2]].any()  # the rows' other labels are not suspects
    human = decisions_to_ignore(flagged, noisy, ["human"] * 200)
    assert not human.any()  # a person's labels are never left out
