"""`student.type: auto`'s choice, as logic: which candidate wins, and what happens when one cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.classify.selection import Candidate, choose
from labelloop.errors import LabelloopError, ModelNotAvailableError

pytestmark = pytest.mark.unit
CLASSES = ["a", "b"]


class Scripted:
    """A student whose out-of-sample probabilities put `right` of the rows on their label."""

    classes = CLASSES

    def __init__(self, right: float):
        self.right = right

    def cross_val_proba(self, texts, labels, folds=5, stop_after=None):
        n = len(labels)
        probs = np.zeros((n, 2))
        for i, lab in enumerate(labels):
            good = i < round(self.right * n)
            probs[i, CLASSES.index(lab) if good else 1 - CLASSES.index(lab)] = 1.0
        return probs


LABELS = ["a", "b"] * 20
POOL = [Candidate("static", "static", None, False), Candidate("head", "embedding-head", None, False),
        Candidate("mpnet", "embedding-head", "all-mpnet-base-v2", False), Candidate("setfit", "setfit", None, True)]


def test_a_candidate_that_cannot_run_is_skipped_with_its_reason():
    def make(kind, encoder):
        if encoder == "all-mpnet-base-v2":
            raise ModelNotAvailableError("all-mpnet-base-v2 is not installed; pip install ...")
        if kind == "setfit":
            raise ImportError("No module named 'setfit'")
        return Scripted({"static": 0.7, "embedding-head": 0.8}[kind])

    choice = choose(make, [""] * 40, LABELS, target=0.99, budget_s=60, previous_best=None, candidates_=POOL)
    notes = {t.candidate: t.note for t in choice.trials}
    assert choice.kind == "embedding-head" and choice.encoder is None
    assert notes["mpnet"].startswith("could not run") and "not installed" in notes["mpnet"]
    assert notes["setfit"].startswith("could not run") and "setfit" in notes["setfit"]


def test_the_cheaper_of_two_tied_candidates_wins():
    choice = choose(lambda kind, enc: Scripted(0.8), [""] * 40, LABELS, target=0.99, budget_s=60,
                    previous_best=None, candidates_=POOL[:2])
    assert choice.kind == "static" and "cheaper" not in choice.reason  # the same score: the first is kept


def test_no_candidate_at_all_is_a_clear_error():
    def make(kind, encoder):
        raise ModelNotAvailableError(f"{kind} is missing")

    with pytest.raises(LabelloopError, match="raise student.budget_s or set student.type"):
        choose(make, [""] * 40, LABELS, target=0.99, budget_s=60, previous_best=None, candidates_=POOL[:2])
