"""Review queues, their counts and the progress figures, computed over a Snapshot."""

from __future__ import annotations

import math
from dataclasses import dataclass

from labelloop.errors import LabelloopError
from labelloop.llm.injection import instruction_like
from labelloop.review.records import Record, Snapshot

LOW_CONFIDENCE = 0.7
PAGE_SIZE = 20


@dataclass(frozen=True)
class Queue:
    """A named, ordered list of records a reviewer works through."""

    name: str
    title: str
    help: str


QUEUES = [
    Queue("pending", "Pending", "Not reviewed yet, in document order."),
    Queue("submitted", "Submitted", "Accepted or corrected by a person."),
    Queue("discarded", "Discarded", "Thrown out by a person; not used for training or evaluation."),
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


def queue_by_name(name: str) -> Queue:
    for q in QUEUES:
        if q.name == name:
            return q
    raise LabelloopError(f"unknown queue {name!r}; expected one of {', '.join(QUEUE_NAMES)}")


def records(snap: Snapshot, name: str, cls: str | None = None) -> tuple[list[Record], str | None]:
    """The queue's records in order, optionally only those whose suggestion is `cls`, and a note."""
    queue_by_name(name)
    note = None
    if name in ("pending", "submitted", "discarded"):
        out = [r for r in snap.records if r.state == name]
    elif name == "disagreements":
        out = [r for r in snap.records if r.state == "pending" and _disagree(r)]
        out.sort(key=lambda r: -(r.student.confidence or 0.0))
    elif name == "low-confidence":
        out = [r for r in snap.records if r.state == "pending" and r.llm is not None and _low(r)]
        out.sort(key=lambda r: (r.llm_label is not None, r.llm.confidence if r.llm.confidence is not None else -1))
    elif name == "instruction-like":
        out = [r for r in snap.records if r.state == "pending" and instruction_like(r.chunk.text)]
    else:
        note = snap.issues_note
        out = [snap.by_id[cid] for cid in snap.issues if cid in snap.by_id and snap.by_id[cid].state == "pending"]
    if cls is not None:
        out = [r for r in out if (r.human.label if r.state == "submitted" else r.suggestion[0]) == cls]
    return out, note


def _disagree(r: Record) -> bool:
    return r.student_label is not None and r.llm_label is not None and r.student_label != r.llm_label


def _low(r: Record) -> bool:
    if r.llm_label is None:
        return True
    return r.llm.confidence is not None and r.llm.confidence < LOW_CONFIDENCE


def counts(snap: Snapshot) -> dict[str, int]:
    """How many records each queue holds now."""
    return {name: len(records(snap, name)[0]) for name in QUEUE_NAMES}


def class_counts(snap: Snapshot) -> dict[str, int]:
    """Pending records per suggested class (the per-class queues)."""
    out = {c: 0 for c in snap.classes}
    for r in snap.records:
        sug = r.suggestion[0]
        if r.state == "pending" and sug is not None:
            out[sug] = out.get(sug, 0) + 1
    return out


def page_of(items: list, page: int, size: int = PAGE_SIZE) -> tuple[list, int, int]:
    """(items on the page, the page clamped to 1..pages, pages)."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(max(1, page), pages)
    return items[(page - 1) * size: page * size], page, pages


# ------------------------------------------------------------------ progress

def progress(snap: Snapshot) -> dict:
    """Reviewed/total, and how often people agreed with the LLM, overall and by class."""
    total = len(snap.records)
    reviewed = [r for r in snap.records if r.state != "pending"]
    per = {c: {"class": c, "reviewed": 0, "kept": 0, "llm_agree": 0, "llm_said": 0, "llm_said_agree": 0}
           for c in snap.classes}
    compared = agreed = 0
    for r in reviewed:
        if r.state != "submitted":
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
    for row in per.values():
        row["recall"] = row["llm_agree"] / row["kept"] if row["kept"] else None
        row["precision"] = row["llm_said_agree"] / row["llm_said"] if row["llm_said"] else None
    return {
        "total": total,
        "reviewed": len(reviewed),
        "submitted": sum(r.state == "submitted" for r in reviewed),
        "discarded": sum(r.state == "discarded" for r in reviewed),
        "compared": compared,
        "agreed": agreed,
        "agreement": agreed / compared if compared else None,
        "by_class": list(per.values()),
    }
