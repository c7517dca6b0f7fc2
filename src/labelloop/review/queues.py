"""Review queues, their counts and the progress figures, computed over a Snapshot."""

from __future__ import annotations

import math
from dataclasses import dataclass

from labelloop.errors import LabelloopError
from labelloop.llm.injection import instruction_like
from labelloop.review import multi
from labelloop.review.records import DISCARDED, PENDING, STATES, SUBMITTED, Record, Snapshot, progress_summary

LOW_CONFIDENCE = 0.7
PAGE_SIZE = 20


@dataclass(frozen=True)
class Queue:
    """A named, ordered list of records a reviewer works through."""

    name: str
    title: str
    help: str


QUEUES = [
    Queue(PENDING, "Pending", "Not reviewed yet, in document order."),
    Queue(SUBMITTED, "Submitted", "Accepted or corrected by a person."),
    Queue(DISCARDED, "Discarded", "Thrown out by a person; not used for training or evaluation."),
    Queue("disagreements", "Student vs LLM", "Pending records where the student and the LLM differ, "
          "most confident student first."),
    Queue("label-issues", "Likely label errors", "Pending records whose LLM label confident learning (cleanlab) "
          "on the last student's out-of-sample probabilities flags, most likely error first."),
    Queue("low-confidence", "Low LLM confidence", f"Pending records the LLM left unlabeled or labeled with "
          f"confidence below {LOW_CONFIDENCE:.0%}, least confident first."),
    Queue("instruction-like", "Instruction-like text", "Pending records whose text holds instructions aimed at "
          "the labeler (possible prompt injection): check what the LLM did with them."),
]
QUEUE_NAMES = [q.name for q in QUEUES]

# A multi-label project (classification.multi_label) has the same queues, read per label, and one more.
_MULTI_HELP = {
    "disagreements": "Pending records where the student's label set and the LLM's differ, most confident "
                     "student first; with a label, only records where they differ on that label.",
    "label-issues": "Pending records whose LLM label set confident learning (cleanlab) on the last student's "
                    "out-of-sample probabilities flags, most likely error first.",
    "low-confidence": f"Pending records the LLM left unlabeled, or was less than {LOW_CONFIDENCE:.0%} sure of "
                      f"for some label, least sure first.",
}
UNCERTAIN = Queue("uncertain", "Uncertain student", f"Pending records where the student's probability for a "
                  f"label is within {multi.NEAR_THRESHOLD:.2f} of that label's decision threshold, nearest first.")
MULTI_QUEUES = [Queue(q.name, q.title, _MULTI_HELP.get(q.name, q.help)) for q in QUEUES]
MULTI_QUEUES.insert(QUEUE_NAMES.index("label-issues") + 1, UNCERTAIN)


def queue_list(multi_label: bool = False) -> list[Queue]:
    """The queues of a single-label or a multi-label project, in sidebar order."""
    return MULTI_QUEUES if multi_label else QUEUES


def queue_by_name(name: str, multi_label: bool = False) -> Queue:
    listed = queue_list(multi_label)
    for q in listed:
        if q.name == name:
            return q
    raise LabelloopError(f"unknown queue {name!r}; expected one of {', '.join(q.name for q in listed)}")


def records(snap: Snapshot, name: str, cls: str | None = None) -> tuple[list[Record], str | None]:
    """The queue's records in order, optionally only those whose suggestion is `cls`, and a note."""
    queue_by_name(name, snap.multi_label)
    if snap.multi_label:
        return _multi_records(snap, name, cls)
    note = None
    if name in STATES:
        out = [r for r in snap.records if r.state == name]
    elif name == "disagreements":
        out = [r for r in snap.records if r.state == PENDING and _disagree(r)]
        out.sort(key=lambda r: -(r.student.confidence or 0.0))
    elif name == "low-confidence":
        out = [r for r in snap.records if r.state == PENDING and r.llm is not None and _low(r)]
        out.sort(key=lambda r: (r.llm_label is not None, r.llm.confidence if r.llm.confidence is not None else -1))
    elif name == "instruction-like":
        out = [r for r in snap.records if r.state == PENDING and instruction_like(r.chunk.text)]
    else:
        note = snap.issues_note
        out = [snap.by_id[cid] for cid in snap.issues if cid in snap.by_id and snap.by_id[cid].state == PENDING]
    if cls is not None:
        out = [r for r in out if (r.human.label if r.state == SUBMITTED else r.suggestion[0]) == cls]
    return out, note


def _disagree(r: Record) -> bool:
    return r.student_label is not None and r.llm_label is not None and r.student_label != r.llm_label


def _low(r: Record) -> bool:
    if r.llm_label is None:
        return True
    return r.llm.confidence is not None and r.llm.confidence < LOW_CONFIDENCE


# ------------------------------------------------------------------ multi-label queues

def _multi_records(snap: Snapshot, name: str, cls: str | None) -> tuple[list[Record], str | None]:
    """A queue of a multi-label project; `cls` narrows it to one label: records that differ on it
    (disagreements), are unsure of it (uncertain), a person gave it (submitted), else whose suggestion has it."""
    pending = [r for r in snap.records if r.state == PENDING]
    note = None
    if name in STATES:
        out = [r for r in snap.records if r.state == name]
    elif name == "disagreements":
        out = [r for r in pending if _differs(r, cls)]
        out.sort(key=lambda r: -_disagreement_sureness(r, snap.thresholds, cls))
    elif name == "uncertain":
        out, note = _uncertain(snap, pending, cls)
    elif name == "low-confidence":
        out = [r for r in pending if r.llm is not None and _multi_low(r)]
        out.sort(key=lambda r: (r.llm_label is not None, _or(multi.llm_sureness(r), -1.0)))
    elif name == "instruction-like":
        out = [r for r in pending if instruction_like(r.chunk.text)]
    else:
        note = snap.issues_note
        out = [snap.by_id[cid] for cid in snap.issues if cid in snap.by_id and snap.by_id[cid].state == PENDING]
    if cls is not None and name not in ("disagreements", "uncertain"):
        out = [r for r in out if cls in ((r.human_set if r.state == SUBMITTED else r.suggestion_set) or [])]
    return out, note


def _differs(r: Record, cls: str | None) -> bool:
    """The LLM and the student differ on some label (on `cls` when given)."""
    labels = multi.disagreeing(r)
    return cls in labels if cls else bool(labels)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _disagreement_sureness(r: Record, thresholds: dict[str, float], cls: str | None) -> float:
    """How sure the student is where it differs from the LLM: its largest distance from a threshold."""
    found = multi.student_margins(r, [cls] if cls else multi.disagreeing(r), thresholds)
    return max(found) if found else _or(r.student.confidence if r.student else None, 0.0)


def _uncertain(snap: Snapshot, pending: list[Record], cls: str | None) -> tuple[list[Record], str | None]:
    """Pending records with a student probability near its threshold (on `cls` if given), nearest first."""
    scored = []
    for r in pending:
        nearest = multi.nearest_label(r, [cls] if cls else snap.classes, snap.thresholds)
        if nearest is not None and nearest[1] < multi.NEAR_THRESHOLD:
            scored.append((nearest[1], r))
    scored.sort(key=lambda pair: pair[0])
    note = None if snap.thresholds else (
        f"the latest round stored no per-label thresholds, so nearness is measured from {multi.NO_THRESHOLD}")
    return [r for _, r in scored], note


def _multi_low(r: Record) -> bool:
    if r.llm_label is None:
        return True
    sure = multi.llm_sureness(r)
    return sure is not None and sure < LOW_CONFIDENCE


def label_disagreements(snap: Snapshot) -> dict[str, int]:
    """Multi-label: pending records where the LLM and the student differ, per label."""
    out = {c: 0 for c in snap.classes}
    for r in snap.records:
        if r.state == PENDING:
            for c in multi.disagreeing(r):
                out[c] = out.get(c, 0) + 1
    return out


# ------------------------------------------------------------------ counts

def counts(snap: Snapshot) -> dict[str, int]:
    """How many records each queue holds now."""
    return {q.name: len(records(snap, q.name)[0]) for q in queue_list(snap.multi_label)}


def class_counts(snap: Snapshot) -> dict[str, int]:
    """Pending records per suggested class (the per-class queues); multi-label: per label the LLM says."""
    if snap.multi_label:
        return _suggested_label_counts(snap)
    out = {c: 0 for c in snap.classes}
    for r in snap.records:
        sug = r.suggestion[0]
        if r.state == PENDING and sug is not None:
            out[sug] = out.get(sug, 0) + 1
    return out


def _suggested_label_counts(snap: Snapshot) -> dict[str, int]:
    out = {c: 0 for c in snap.classes}
    for r in snap.records:
        if r.state == PENDING:
            for c in r.suggestion_set or []:
                out[c] = out.get(c, 0) + 1
    return out


def page_of(items: list, page: int, size: int = PAGE_SIZE) -> tuple[list, int, int]:
    """(items on the page, the page clamped to 1..pages, pages)."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(max(1, page), pages)
    return items[(page - 1) * size: page * size], page, pages


# ------------------------------------------------------------------ progress

def progress(snap: Snapshot) -> dict:
    """Reviewed/total, and how often people agreed with the LLM, overall and by class (multi: by label)."""
    if snap.multi_label:
        return multi.progress(snap)
    total = len(snap.records)
    reviewed = [r for r in snap.records if r.state != PENDING]
    per = {c: {"class": c, "reviewed": 0, "kept": 0, "llm_agree": 0, "llm_said": 0, "llm_said_agree": 0}
           for c in snap.classes}
    compared = agreed = 0
    for r in reviewed:
        if r.state != SUBMITTED:
            continue
        human, llm = r.human.label, r.llm_label
        row = per.setdefault(human, {"class": human, "reviewed": 0, "kept": 0, "llm_agree": 0,
                                     "llm_said": 0, "llm_said_agree": 0})
        row["reviewed"] += 1
        if llm is None:
            continue
        compared += 1
        row["kept"] += 1
        said = per.setdefault(llm, {"class": llm, "reviewed": 0, "kept": 0, "llm_agree": 0,
                                    "llm_said": 0, "llm_said_agree": 0})
        said["llm_said"] += 1
        if llm == human:
            agreed += 1
            row["llm_agree"] += 1
            said["llm_said_agree"] += 1
    return progress_summary(total, reviewed, compared, agreed, per)
