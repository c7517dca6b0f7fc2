"""Multi-label review (classification.multi_label): what each label of a record shows, and how sure each side is.

A record's labels are sets (labelloop.labels.encode_set). Per label the reviewer sees whether
the LLM gave it (and its probability), the student's probability with the round's decision
threshold when one is stored, and whether the two disagree on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from labelloop import labels as policy
from labelloop.review.records import PENDING, SUBMITTED, Record, Snapshot, progress_summary

NEAR_THRESHOLD = 0.10  # a student probability this close to its threshold is "uncertain"
NO_THRESHOLD = 0.5  # where nearness is measured from when the round stored no thresholds (the queue says so)
NONE_OF_THEM = "(none of them)"


@dataclass(frozen=True)
class LabelRow:
    """One label of one record: each side's decision (None: that side has no answer) and probabilities."""

    index: int  # 1-based: the number key that toggles it
    name: str
    llm: bool | None
    llm_prob: float | None
    student: bool | None
    student_prob: float | None
    threshold: float | None
    human: bool | None
    selected: bool  # what the page starts with: the person's set if saved, else the suggestion

    @property
    def disagree(self) -> bool:
        """The LLM and the student decide this label differently."""
        return self.llm is not None and self.student is not None and self.llm != self.student

    @property
    def margin(self) -> float | None:
        """How far the student's probability is from its threshold (None without a probability)."""
        return margin(self.student_prob, self.threshold)

    def to_dict(self) -> dict:
        return {"label": self.name, "key": self.index if self.index <= 9 else None, "llm": self.llm,
                "llm_prob": self.llm_prob, policy.STUDENT: self.student, "student_prob": self.student_prob,
                "threshold": self.threshold, policy.HUMAN: self.human, "disagree": self.disagree}


def margin(prob: float | None, threshold: float | None) -> float | None:
    if prob is None:
        return None
    return abs(prob - (NO_THRESHOLD if threshold is None else threshold))


def _prob(probs: dict | None, name: str) -> float | None:
    value = (probs or {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _member(labels: list[str] | None, name: str) -> bool | None:
    return None if labels is None else name in labels


def selected_set(record: Record) -> list[str]:
    """The set a page starts with for a record: the person's if saved, else the suggestion, else none."""
    if record.human_set is not None:
        return record.human_set
    return record.suggestion_set or []


def rows(record: Record, classes: list[str], thresholds: dict[str, float]) -> list[LabelRow]:
    """One LabelRow per class, in class order."""
    llm_probs = record.llm.probs if record.llm_label is not None else None
    student_probs = record.student.probs if record.student_label is not None else None
    selected = set(selected_set(record))
    return [
        LabelRow(i, c, _member(record.llm_set, c), _prob(llm_probs, c), _member(record.student_set, c),
                 _prob(student_probs, c), thresholds.get(c), _member(record.human_set, c), c in selected)
        for i, c in enumerate(classes, start=1)
    ]


def disagreeing(record: Record) -> list[str]:
    """The labels the LLM and the student decide differently ([] when either has no answer)."""
    llm, student = record.llm_set, record.student_set
    if llm is None or student is None:
        return []
    return sorted(set(llm) ^ set(student))


def student_margins(record: Record, labels: list[str], thresholds: dict[str, float]) -> list[float]:
    """The student's distance from the threshold for each of `labels` that has a probability."""
    probs = record.student.probs if record.student_label is not None else None
    found = [margin(_prob(probs, c), thresholds.get(c)) for c in labels]
    return [m for m in found if m is not None]


def nearest_label(record: Record, classes: list[str], thresholds: dict[str, float]) -> tuple[str, float] | None:
    """The label whose student probability is nearest its threshold, with that distance; None without probs."""
    probs = record.student.probs if record.student_label is not None else None
    scored = [(c, margin(_prob(probs, c), thresholds.get(c))) for c in classes]
    scored = [(c, m) for c, m in scored if m is not None]
    return min(scored, key=lambda pair: pair[1]) if scored else None


def llm_sureness(record: Record) -> float | None:
    """How sure the LLM is of its least sure label: min over labels of max(p, 1 - p), else its confidence."""
    probs = record.llm.probs if record.llm_label is not None else None
    values = [float(p) for p in (probs or {}).values() if isinstance(p, (int, float))]
    if values:
        return min(max(p, 1 - p) for p in values)
    return record.llm.confidence if record.llm is not None else None


# ------------------------------------------------------------------ progress

def _row(name: str) -> dict:
    return {"class": name, "reviewed": 0, "kept": 0, "llm_agree": 0, "llm_said": 0, "llm_said_agree": 0}


def _count_labels(per: dict[str, dict], human: set[str], llm: set[str] | None) -> None:
    for c in human:
        per.setdefault(c, _row(c))["reviewed"] += 1
    if not human:
        per[NONE_OF_THEM]["reviewed"] += 1
    if llm is None:
        return
    for c in human:
        per[c]["kept"] += 1
        per[c]["llm_agree"] += c in llm
    for c in llm:
        said = per.setdefault(c, _row(c))
        said["llm_said"] += 1
        said["llm_said_agree"] += c in human
    if not human:
        per[NONE_OF_THEM]["kept"] += 1
        per[NONE_OF_THEM]["llm_agree"] += not llm
    if not llm:
        per[NONE_OF_THEM]["llm_said"] += 1
        per[NONE_OF_THEM]["llm_said_agree"] += not human


def progress(snap: Snapshot) -> dict:
    """Reviewed/total, how often people kept the LLM's exact label set, and per label (plus none of them)."""
    reviewed = [r for r in snap.records if r.state != PENDING]
    per = {c: _row(c) for c in [*snap.classes, NONE_OF_THEM]}
    compared = agreed = 0
    for r in reviewed:
        if r.state != SUBMITTED:
            continue
        human, llm = set(r.human_set or []), r.llm_set
        _count_labels(per, human, None if llm is None else set(llm))
        if llm is not None:
            compared += 1
            agreed += human == set(llm)
    return progress_summary(len(snap.records), reviewed, compared, agreed, per)
