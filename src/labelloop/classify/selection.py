"""`student.type: auto`: the student that best agrees with the teacher, within a time budget.

Candidates are tried cheapest first, each scored by its own cross-validated agreement with
the teacher's training labels (never the test labels the loop reports):

1. static (distilled token embeddings): thousands of texts a second;
2. embedding-head on the configured encoder (MiniLM by default);
3. embedding-head on all-mpnet-base-v2 (a stronger encoder, about 2x slower), when no encoder is set;
4. setfit, then 5. transformer (fine-tuning the body): minutes per fit on CPU.

The cheap ones are always scored. The expensive ones are tried only when the best so far is
below `required_accuracy` and did not gain PLATEAU over the previous round's best (more
labels stopped helping it), and only while the budget allows: a candidate whose first fold,
times the folds still to go plus the final fit, would overrun `student.budget_s` is stopped
there, and any fit still running when the budget is spent stops at its next training step.
The cheapest candidate within TIE of the best score wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from labelloop.classify.base import OverBudget, fit_deadline
from labelloop.classify.decision import decide
from labelloop.errors import LabelloopError

PLATEAU = 0.01  # a round that gains less than this on the best cheap student has plateaued
TIE = 0.005  # scores this close count as equal: the cheaper student wins


@dataclass(frozen=True)
class Candidate:
    name: str  # shown in the report: "embedding-head (all-mpnet-base-v2)"
    kind: str  # the student type
    encoder: str | None  # the base model, None: as configured
    expensive: bool


@dataclass
class Trial:
    candidate: str
    kind: str
    encoder: str | None
    cv_accuracy: float | None = None
    seconds: float = 0.0
    note: str | None = None


@dataclass
class Choice:
    """What auto chose, why, and every candidate's score and time (kept in the iteration's metrics)."""

    kind: str
    encoder: str | None
    reason: str
    trials: list[Trial] = field(default_factory=list)
    oos: np.ndarray | None = None  # the chosen student's out-of-sample probabilities
    student: object | None = None  # the chosen student as cross-validated (unfitted; fit it on the labels kept)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "encoder": self.encoder, "reason": self.reason,
                "trials": [asdict(t) for t in self.trials]}


def candidates(configured_encoder: str | None) -> list[Candidate]:
    encoder = configured_encoder or "all-MiniLM-L6-v2"
    out = [Candidate(f"static ({encoder})", "static", configured_encoder, False),
           Candidate(f"embedding-head ({encoder})", "embedding-head", configured_encoder, False)]
    if configured_encoder is None:
        out.append(Candidate("embedding-head (all-mpnet-base-v2)", "embedding-head", "all-mpnet-base-v2", False))
    out += [Candidate(f"setfit ({encoder})", "setfit", configured_encoder, True),
            Candidate(f"transformer ({encoder})", "transformer", configured_encoder, True)]
    return out


def choose(make: Callable[[str, str | None], object], texts: list[str], labels: list[str], *, target: float,
           budget_s: float, previous_best: float | None, folds: int = 5,
           candidates_: list[Candidate] | None = None,
           texts_for: Callable[[str | None], list[str]] | None = None) -> Choice:
    """Score candidates (make(kind, encoder) -> an unfitted student) and pick one; see the module doc.

    texts_for(encoder) gives the texts as that encoder's student sees them (its own truncation);
    without it every candidate gets `texts`.
    """
    start = time.perf_counter()
    deadline = time.monotonic() + budget_s
    trials: list[Trial] = []
    scored: list[tuple[float, int, Trial, np.ndarray, object]] = []
    pool = candidates_ or candidates(None)
    for rank, cand in enumerate(pool):
        best = max((s for s, *_ in scored), default=None)
        if cand.expensive:
            if best is not None and best >= target:
                trials.append(Trial(cand.name, cand.kind, cand.encoder, note="not needed: a cheaper student meets "
                                    f"required_accuracy {target:.2f}"))
                continue
            if best is not None and previous_best is not None and best - previous_best >= PLATEAU:
                trials.append(Trial(cand.name, cand.kind, cand.encoder, note=f"not yet: the cheaper students still "
                                    f"gained {best - previous_best:+.3f} this round"))
                continue
        spent = time.perf_counter() - start
        if spent >= budget_s:
            trials.append(Trial(cand.name, cand.kind, cand.encoder, note=f"over budget ({spent:.0f} s of {budget_s:g})"))
            continue
        trial = Trial(cand.name, cand.kind, cand.encoder)
        t0 = time.perf_counter()
        try:
            seen = texts_for(cand.encoder) if texts_for is not None else texts
            student = make(cand.kind, cand.encoder)
            with fit_deadline(deadline):
                probs = _cross_val(student, seen, labels, folds, budget_s - spent)
        except OverBudget:
            trial.seconds = time.perf_counter() - t0
            trial.note = f"stopped at the budget: student.budget_s {budget_s:g} s ran out while it was scored"
            trials.append(trial)
            continue
        except _OverBudget as exc:
            trial.seconds = time.perf_counter() - t0
            trial.note = str(exc)
            trials.append(trial)
            continue
        except (LabelloopError, ImportError, OSError) as exc:  # not installed, no model: the next one is tried
            trial.seconds = time.perf_counter() - t0
            trial.note = f"could not run: {exc}"
            trials.append(trial)
            continue
        trial.seconds = time.perf_counter() - t0
        classes = list(student.classes)
        pred = decide(probs, classes)
        trial.cv_accuracy = float(np.mean([p == g for p, g in zip(pred, labels)])) if labels else 0.0
        trials.append(trial)
        scored.append((trial.cv_accuracy, rank, trial, probs, student))
    if not scored:
        notes = "; ".join(f"{t.candidate}: {t.note}" for t in trials if t.note)
        raise LabelloopError(f"student.type auto could score no student within student.budget_s "
                             f"{budget_s:g} s ({notes}); raise student.budget_s or set student.type")
    top = max(s for s, *_ in scored)
    score, _rank, trial, probs, student = min((x for x in scored if x[0] >= top - TIE), key=lambda x: x[1])
    reason = (f"{trial.candidate}: cross-validated agreement {score:.3f} with the teacher's training labels, "
              f"the best{' (or within ' + format(TIE, '.3f') + ' of it, and cheaper)' if score < top else ''} of "
              f"{len(scored)} tried in {time.perf_counter() - start:.0f} s")
    return Choice(kind=trial.kind, encoder=trial.encoder, reason=reason, trials=trials, oos=probs, student=student)


class _OverBudget(Exception):
    pass


def _cross_val(student, texts: list[str], labels: list[str], folds: int, left_s: float) -> np.ndarray:
    """The student's cross-validated probabilities; stops after the first fold when it could not finish in time."""
    t0 = time.perf_counter()
    probs = student.cross_val_proba(texts, labels, folds=folds, stop_after=lambda done, total: (
        (time.perf_counter() - t0) / done * (total + 1 - done) > left_s - (time.perf_counter() - t0)))
    if probs is None:
        raise _OverBudget(f"stopped after one fold: {folds} folds and the final fit would overrun student.budget_s")
    return probs
