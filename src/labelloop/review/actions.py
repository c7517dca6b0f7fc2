"""A reviewer's writes: accept, correct, discard, bulk accept and undo, all through Store methods."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from labelloop import labels as policy
from labelloop.errors import LabelloopError, StoreError
from labelloop.review.records import PENDING, SUBMITTED, Record, Snapshot, load, multi_label_of, review_state
from labelloop.store import Store

ACTIONS = ("accept", "correct", "discard")

# Reading the previous human label and writing the new one must not interleave between two
# reviewers of this app, or an undo could restore a state that never held.
_REVIEW_LOCK = threading.Lock()


class ActionError(LabelloopError):
    """A review action that cannot be applied; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Outcome:
    """What one action did to one chunk."""

    chunk_id: int
    action: str
    label: str | None
    state: str
    review_id: int | None = None
    message: str | None = None
    multi_label: bool = False  # `label` is an encoded label set (labelloop.labels.encode_set)

    def to_dict(self) -> dict:
        out = {"chunk_id": self.chunk_id, "action": self.action, "label": self.label, "state": self.state,
               "review_id": self.review_id, "message": self.message}
        if self.multi_label:
            out["labels"] = policy.decode_set(self.label) if self.state == SUBMITTED else None
        return out


def human_state(store: Store, chunk_id: int) -> dict | None:
    """The human label a chunk holds now, as stored in a review's `previous`, or None."""
    labs = store.labels(policy.HUMAN, chunk_ids=[chunk_id])
    return {"label": labs[0].label, "status": labs[0].status} if labs else None


def _snapshot(store: Store, chunk_id: int) -> Snapshot:
    """The one-record snapshot of a reviewable chunk (its mode and classes with it)."""
    try:
        store.chunk(chunk_id)
    except StoreError:
        raise ActionError(f"no chunk with id {chunk_id}; reload the page to see the current records", 404) from None
    snap = load(store, [chunk_id])
    if chunk_id not in snap.by_id:
        raise ActionError(f"chunk {chunk_id} has no split or label yet, so it cannot be reviewed", 409)
    return snap


def _record(store: Store, chunk_id: int) -> Record:
    return _snapshot(store, chunk_id).by_id[chunk_id]


def apply(store: Store, chunk_id: int, action: str, label: str | None = None,
          reviewer: str | None = None, classes: list[str] | None = None,
          labels: list[str] | None = None) -> Outcome:
    """Write one human label and its review row; the later of two saves wins, both are logged.

    A multi-label project takes a correction as `labels` (a list; [] is "none of them"), stored encoded.
    """
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    snap = _snapshot(store, chunk_id)
    record = snap.by_id[chunk_id]
    if snap.multi_label:
        label, status = _set_to_save(record, action, labels, snap.classes)
    else:
        label, status = _label_to_save(record, action, label, classes)
    reason = policy.accept_reason(record.suggestion[1]) if action == "accept" else None
    review_id, _previous = store.record_review(chunk_id, action, label, status, reviewer, reason=reason)
    return Outcome(chunk_id, action, label, review_state(status), review_id, multi_label=snap.multi_label)


def _label_to_save(record: Record, action: str, label: str | None,
                   classes: list[str] | None) -> tuple[str | None, str]:
    """Single-label: the (label, status) an action writes."""
    if action == "accept":
        label = record.suggestion[0]
        if label is None:
            raise ActionError(f"chunk {record.id} has no suggestion to accept (the LLM left it unlabeled and "
                              "the student has not predicted it); pick a class instead", 409)
    elif action == "correct":
        if classes and label not in classes:
            raise ActionError(f"label {label!r} is not one of the classes {classes}; pick one of those")
        if not label:
            raise ActionError("a correction needs a label; pick one of the classes")
    else:
        return None, policy.DISCARDED
    return label, policy.OK


def _set_to_save(record: Record, action: str, labels, classes: list[str]) -> tuple[str | None, str]:
    """Multi-label: the (encoded label set, status) an action writes."""
    if action == "discard":
        return None, policy.DISCARDED
    if action == "accept":
        chosen = record.suggestion_set
        if chosen is None:
            raise ActionError(f"chunk {record.id} has no suggestion to accept (the LLM left it unlabeled and "
                              "the student has not predicted it); toggle its labels, or choose none of them, "
                              "and save that instead", 409)
        unknown = [c for c in chosen if c not in classes]
        if unknown:
            raise ActionError(f"chunk {record.id}'s suggestion {chosen} holds {unknown}, which are not among the "
                              f"classes {classes}; pick its labels instead", 409)
        return policy.encode_set(chosen, classes), policy.OK
    return policy.encode_set(checked_labels(labels, classes), classes), policy.OK


def checked_labels(labels, classes: list[str]) -> list[str]:
    """A multi-label correction's `labels`, checked: a list of class names ([] means none of them)."""
    example = f"e.g. {[classes[0]] if classes else ['a class']}, or [] for none of them"
    if labels is None:
        raise ActionError(f"a correction in this multi-label project needs `labels`, a list of classes from "
                          f"{classes} ({example}); got none")
    if not isinstance(labels, list) or not all(isinstance(c, str) for c in labels):
        raise ActionError(f"labels must be a list of class names ({example}), got {labels!r}")
    unknown = [c for c in labels if c not in classes]
    if unknown:
        raise ActionError(f"labels {unknown} are not among the classes {classes}; pick from those, "
                          "or send [] for none of them")
    return labels


def bulk_accept(store: Store, chunk_ids: list[int], reviewer: str | None = None) -> list[Outcome]:
    """Accept the suggestion of every pending chunk listed; others are reported, not changed."""
    multi = multi_label_of(store)
    outcomes = []
    for cid in chunk_ids:
        try:
            record = _record(store, cid)
            if record.state != PENDING:
                outcomes.append(Outcome(cid, "skip", record.given_label, record.state,
                                        message=f"already {record.state}; left as it is", multi_label=multi))
                continue
            outcomes.append(apply(store, cid, "accept", reviewer=reviewer))
        except ActionError as exc:
            outcomes.append(Outcome(cid, "skip", None, PENDING, message=str(exc), multi_label=multi))
    return outcomes


def _expected(action: str, label: str | None) -> dict:
    return {"label": label, "status": policy.DISCARDED if action == "discard" else policy.OK}


def undoable(store: Store, reviewer: str | None) -> list:
    """This reviewer's reviews not undone yet, oldest first."""
    reviews = store.reviews()
    undone = {r.previous.get("undoes") for r in reviews if r.action == "undo" and r.previous}
    return [r for r in reviews if r.action != "undo" and r.reviewer == reviewer and r.id not in undone]


def undo(store: Store, reviewer: str | None, count: int = 1) -> list[Outcome]:
    """Undo this reviewer's last `count` actions, newest first, restoring each previous state.

    A chunk someone else has changed since is left as it is (their save wins) and reported.
    """
    if count < 1:
        raise ActionError(f"count must be at least 1, got {count}")
    multi = multi_label_of(store)
    outcomes = []
    with _REVIEW_LOCK:
        for review in reversed(undoable(store, reviewer)[-count:]):
            current = human_state(store, review.chunk_id)
            restored = {k: review.previous.get(k) for k in ("label", "status")} if review.previous else None
            if current != _expected(review.action, review.label):
                store.add_review(review.chunk_id, "undo", current["label"] if current else None,
                                 previous={**(current or {}), "undoes": review.id, "restored": False},
                                 reviewer=reviewer)
                outcomes.append(Outcome(review.chunk_id, "undo", current["label"] if current else None,
                                        _state(current), message="changed by someone else since; left as it is",
                                        multi_label=multi))
                continue
            if restored is None:
                store.delete_label(review.chunk_id, policy.HUMAN)
            else:
                store.set_label(review.chunk_id, policy.HUMAN, restored["label"], status=restored["status"],
                                reason=review.previous.get("reason"))
            rid = store.add_review(review.chunk_id, "undo", restored["label"] if restored else None,
                                   previous={**(current or {}), "undoes": review.id, "restored": True},
                                   reviewer=reviewer)
            outcomes.append(Outcome(review.chunk_id, "undo", restored["label"] if restored else None,
                                    _state(restored), rid, multi_label=multi))
    return outcomes


def _state(human: dict | None) -> str:
    return review_state(human["status"] if human else None)
