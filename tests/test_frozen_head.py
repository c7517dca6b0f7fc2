"""The frozen-body students' head settings (C, balancing "auto"), chosen by cross-validation on the labels given;
and the frozen head that checks a fine-tuned student's labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from labelloop.classify import load_student, make_student
from labelloop.classify.base import BaseStudent
from labelloop.classify.embedding_head import EmbeddingHeadStudent
from labelloop.errors import ModelNotAvailableError
from labelloop.classify.head import (
    AUTO_BALANCING,
    C_GRID,
    HeadSettings,
    choose_head,
    fit_head,
    head_grid,
    head_proba,
)

pytestmark = pytest.mark.unit


def noisy_imbalanced(seed: int = 0, n: int = 600, dim: int = 16, flip: float = 0.12):
    """Two overlapping classes, 80/20, each label flipped with probability `flip`: the small class's labels
    are then about a third false, which class weights amplify."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    centre = np.zeros(dim)
    centre[0] = 3.0
    X = rng.normal(size=(n, dim)) + np.outer(y, centre)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    given = np.where(rng.random(n) < flip, 1 - y, y)
    return X, y, given


def splits(y, seed=0):
    return list(StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def test_the_grid_is_what_is_not_given():
    assert head_grid(None, "auto") == [(c, m) for m in AUTO_BALANCING for c in C_GRID]
    assert head_grid(3.0, "auto") == [(3.0, m) for m in AUTO_BALANCING]
    assert head_grid(None, "oversample") == [(c, "oversample") for c in C_GRID]
    assert head_grid(1.0, "class-weight") == [(1.0, "class-weight")]


def test_choose_head_keeps_the_settings_that_agree_best_with_the_labels_given():
    X, _, given = noisy_imbalanced()
    settings, probs = choose_head(X, given, 2, splits(given), C=None, balancing="auto", seed=0)
    # The winner's out-of-fold accuracy is the best of every pair tried, each fitted the same way.
    scores = {}
    for c, mode in head_grid(None, "auto"):
        out = np.zeros((len(given), 2))
        for tr, te in splits(given):
            coef, b = fit_head(X[tr], given[tr], 2, balancing=mode, seed=0, C=c)
            out[te] = head_proba(X[te], coef, b)
        scores[(c, mode)] = float(np.mean(out.argmax(1) == given))
    assert settings.cv_accuracy == pytest.approx(max(scores.values()), abs=1e-4)
    assert scores[(settings.C, settings.balancing)] == max(scores.values())
    assert settings.tried == 8 and probs.shape == (len(given), 2)
    assert np.allclose(probs.sum(axis=1), 1.0)
    # Weighting the noisy small class up costs agreement here: auto does not weight it.
    assert settings.balancing == "none"
    assert max(v for (c, m), v in scores.items() if m == "class-weight") < settings.cv_accuracy


def test_given_settings_are_kept_not_chosen():
    X, _, given = noisy_imbalanced()
    settings, _ = choose_head(X, given, 2, splits(given), C=10.0, balancing="class-weight", seed=0)
    assert (settings.C, settings.balancing, settings.tried) == (10.0, "class-weight", 1)


def test_fit_after_cross_validation_uses_its_choice_and_a_bare_fit_chooses_its_own(tmp_path):
    texts = [f"the {w} report on item {i}" for i, w in enumerate(["market", "match", "vote", "phone"] * 10)]
    labels = [{"market": "business", "match": "sports", "vote": "politics", "phone": "tech"}[t.split()[1]]
              for t in texts]
    classes = ["business", "politics", "sports", "tech"]
    student = make_student("embedding-head", classes)
    student.cross_val_proba(texts, labels, folds=4)
    chosen = student._cv_choice
    assert isinstance(chosen, HeadSettings) and chosen.tried == len(C_GRID) * len(AUTO_BALANCING)
    student.fit(texts, labels)
    assert student.head_settings_ == chosen and student._cv_choice is None

    bare = make_student("embedding-head", classes).fit(texts, labels)
    assert bare.head_settings_.tried == 8 and bare.head_settings_.cv_accuracy is not None

    fixed = make_student("embedding-head", classes, balancing="class-weight")
    fixed.C = 10.0
    fixed.fit(texts, labels)
    assert fixed.head_settings_ == HeadSettings(10.0, "class-weight")

    student.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "labelloop.json").read_text())
    assert (meta["C"], meta["balancing"]) == (chosen.C, chosen.balancing)
    assert meta["head_choice"]["tried"] == 8
    loaded = load_student(tmp_path / "m")
    assert (loaded.C, loaded.balancing) == (chosen.C, chosen.balancing)  # a loaded head is not chosen again
    assert loaded.predict(texts) == student.predict(texts)


def test_too_few_labels_to_hold_out_fall_back_to_the_unchosen_settings():
    student = make_student("embedding-head", ["a", "b"]).fit(["one text", "another", "a third"], ["a", "b", "b"])
    assert student.head_settings_ == HeadSettings(10.0, "class-weight")


def topic_texts():
    texts = [f"the {w} report on item {i}" for i, w in enumerate(["market", "match", "vote", "phone"] * 6)]
    labels = [{"market": "business", "match": "sports", "vote": "politics", "phone": "tech"}[t.split()[1]]
              for t in texts]
    return texts, labels, ["business", "politics", "sports", "tech"]


@pytest.mark.parametrize("kind", ["setfit", "transformer"])
def test_a_fine_tuned_student_checks_its_labels_with_its_frozen_encoder_and_fine_tunes_nothing(kind, monkeypatch):
    texts, labels, classes = topic_texts()
    student = make_student(kind, classes, max_seq_length=32)
    monkeypatch.setattr(type(student), "_fit", lambda *a, **k: pytest.fail("a label check must not fine-tune"))
    probs = student.label_check_proba(texts, labels, folds=3)
    frozen = EmbeddingHeadStudent(classes, max_seq_length=32).cross_val_proba(texts, labels, folds=3)
    assert probs.shape == (len(texts), len(classes)) and np.allclose(probs, frozen)
    assert np.mean(probs.argmax(1) == np.array([classes.index(lab) for lab in labels])) > 0.9


def test_a_base_model_that_is_no_encoder_is_cross_validated_itself(monkeypatch):
    texts, labels, classes = topic_texts()
    student = make_student("transformer", classes)

    def not_an_encoder(self, *a, **k):
        if type(self) is EmbeddingHeadStudent:
            raise ModelNotAvailableError("not a sentence-transformers folder")
        return "its own cross-validation"

    monkeypatch.setattr(BaseStudent, "cross_val_proba", not_an_encoder)
    assert student.label_check_proba(texts, labels) == "its own cross-validation"
    student.multi_label = True  # a multi-label student's thresholds need its own out-of-fold probabilities
    monkeypatch.setattr(BaseStudent, "cross_val_proba", lambda self, *a, **k: f"{self.kind} itself")
    assert student.label_check_proba(texts, [[lab] for lab in labels]) == "transformer itself"


def test_labels_that_show_nothing_beyond_the_majority_class_keep_the_unchosen_head():
    """With no signal, an accuracy-chosen head would answer the most frequent label for everything."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 16))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (rng.random(300) < 0.3).astype(int)  # unrelated to X
    settings, probs = choose_head(X, y, 2, splits(y), C=None, balancing="auto", seed=0)
    assert (settings.C, settings.balancing) == head_grid(None, "auto")[0] == (10.0, "class-weight")
    assert "most frequent label" in settings.note and settings.tried == 8
    assert len(set(probs.argmax(axis=1).tolist())) == 2  # the kept head still answers both classes
