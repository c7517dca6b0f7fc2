"""Review queues, their counts and the progress figures, computed over a Snapshot."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass

import numpy as np

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
    Queue("label-issues", "Likely label errors", "Pending records that confident learning (cleanlab) on the "
          "student's out-of-sample probabilities flags, most likely error first."),
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
        ranked, note = label_issues(snap)
        out = [snap.by_id[cid] for cid in ranked if snap.by_id[cid].state == "pending"]
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


# ------------------------------------------------------------------ confident learning

_ISSUES_CACHE: dict[str, tuple[list[int], str | None]] = {}
_ISSUES_LOCK = threading.Lock()


def label_issues(snap: Snapshot) -> tuple[list[int], str | None]:
    """Chunk ids cleanlab flags as likely label errors, ranked, and a note when it cannot run.

    The given label is the one that counts now (human over LLM); the probabilities are the
    student's, out-of-sample for train chunks (cross-validated) and for test chunks (held out).
    """
    classes = snap.classes
    index = {c: i for i, c in enumerate(classes)}
    ids, given, probs = [], [], []
    for r in snap.records:
        lab = r.given_label
        if lab not in index or r.student is None or not r.student.probs:
            continue
        row = [float(r.student.probs.get(c, 0.0)) for c in classes]
        total = sum(row)
        if not total > 0:
            continue
        ids.append(r.id)
        given.append(index[lab])
        probs.append([p / total for p in row])
    if len(classes) < 2:
        return [], "needs at least two classes (meta `classes`)."
    if len(ids) < 2 * len(classes):
        return [], (f"needs student probabilities for at least {2 * len(classes)} labeled records; "
                    f"{len(ids)} have them. Run an iteration of `labelloop run` first.")
    key = hashlib.sha256(json.dumps([classes, ids, given, probs]).encode()).hexdigest()
    with _ISSUES_LOCK:
        if key not in _ISSUES_CACHE:
            _ISSUES_CACHE.clear()
            _ISSUES_CACHE[key] = _find(ids, np.asarray(given), np.asarray(probs))
        return _ISSUES_CACHE[key]


def _find(ids: list[int], given: np.ndarray, probs: np.ndarray) -> tuple[list[int], str | None]:
    from labelloop.loop.label_errors import rank_label_issues

    try:
        ranked = rank_label_issues(given, probs)
    except ValueError as exc:  # cleanlab rejects degenerate inputs (e.g. a class never given)
        return [], str(exc)
    return [ids[i] for i in ranked], None


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
