"""The label policy: where a label comes from, which one counts, and what a reviewer is shown.

Every other module asks here; none spells a source name or a precedence of its own.

Sources:
- `llm-small`: the small LLM's training labels;
- `llm-large`: the large LLM's labels: the test set (the teacher's truth), and training
  labels it re-checked (`review.relabel_suspects`);
- `human`: a person's label from the review app (or a discard);
- `student`: the student's opinion, for the review app only; it never trains or scores.

Precedence: human > llm-large > llm-small. A person's label decides whenever there is one
(a discard removes the chunk from training and evaluation). Otherwise the first LLM label
that holds a class counts: the large model's re-label wins over the small model's, and a
large-model reply that could not be read leaves the small model's label in place.

A reviewer is shown, and Accept takes, the LLM label that counts now: the same label
training and evaluation use, so accepting it never undoes a correction. Where no LLM label
holds a class, Accept takes the student's prediction: a person who accepts a shown prediction
has decided, so it counts as their label; the card says it is the student's, and the stored
label keeps that it began as the student's (its reason, ACCEPTED_STUDENT).

Evaluation: a test chunk is scored against a person's label, else the large model's (the
teacher's truth); a discarded one leaves the test set. Gold accuracy uses people's labels only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

SMALL = "llm-small"
LARGE = "llm-large"
HUMAN = "human"
STUDENT = "student"
SOURCES = (HUMAN, LARGE, SMALL, STUDENT)
LLM_SOURCES = (SMALL, LARGE)
ROLE_SOURCE = {"small": SMALL, "large": LARGE}
SOURCE_ROLE = {v: k for k, v in ROLE_SOURCE.items()}
PRECEDENCE = (HUMAN, LARGE, SMALL)  # the sources whose labels can count, strongest first
TEST_PRECEDENCE = (HUMAN, LARGE)  # on a test chunk: a person's label, else the teacher's

OK = "ok"
UNLABELED = "unlabeled"
DISCARDED = "discarded"
NO_LABEL = "none"  # export-labels: a chunk no source has labeled

# The reason a person's label keeps when Accept took the student's prediction (no LLM label held a class).
ACCEPTED_STUDENT = "accepted the student's prediction"


class LabelLike(Protocol):
    source: str
    label: str | None
    status: str


def usable(lab: LabelLike | None) -> bool:
    """True when the label holds a class (status ok)."""
    return lab is not None and lab.status == OK and lab.label is not None


def decided(lab: LabelLike | None) -> bool:
    """True when this is a person's decision: a human label or a discard."""
    return lab is not None and lab.source == HUMAN


def is_discard(lab: LabelLike | None) -> bool:
    """True when a person threw the chunk out (no label, on purpose)."""
    return decided(lab) and lab.status == DISCARDED  # type: ignore[union-attr]


class ChunkLabel(LabelLike, Protocol):
    chunk_id: int


def decided_chunks(labels: Iterable[ChunkLabel]) -> set[int]:
    """The chunk ids among these labels that a person has decided (labelled or discarded)."""
    return {lab.chunk_id for lab in labels if decided(lab)}


def by_source(labels: Iterable[LabelLike]) -> dict[str, LabelLike]:
    """A chunk's labels keyed by source (each source holds at most one label per chunk)."""
    return {lab.source: lab for lab in labels}


def llm_label(labels: dict[str, LabelLike]) -> LabelLike | None:
    """The LLM label that counts: large over small, the first that holds a class."""
    for source in (LARGE, SMALL):
        if usable(labels.get(source)):
            return labels[source]
    return None


def final(labels: dict[str, LabelLike]) -> LabelLike | None:
    """The label that counts for training and evaluation, or None (discarded, or no usable label)."""
    human = labels.get(HUMAN)
    if human is not None:
        return human if usable(human) else None
    return llm_label(labels)


def on_test_set(labels: dict[str, LabelLike]) -> dict[str, LabelLike]:
    """The labels of a test chunk that can count there (TEST_PRECEDENCE)."""
    return {s: lab for s, lab in labels.items() if s in TEST_PRECEDENCE}


def teacher_truth(labels: dict[str, LabelLike]) -> LabelLike | None:
    """What a test chunk is scored against: a person's label, else the large model's; None leaves it out."""
    return final(on_test_set(labels))


def gold(labels: dict[str, LabelLike]) -> LabelLike | None:
    """A person's label that holds a class (gold accuracy uses these alone), or None."""
    human = labels.get(HUMAN)
    return human if usable(human) else None


def needs_prediction(labels: dict[str, LabelLike]) -> bool:
    """True when the end-of-run predictions cover this chunk: no label counts and no person has decided it."""
    return final(labels) is None and not decided(labels.get(HUMAN))


def shown_to_reviewer(labels: dict[str, LabelLike]) -> LabelLike | None:
    """The LLM label a reviewer sees and Accept takes (the one that counts when no person has decided)."""
    return llm_label(labels)


def accept_takes(labels: dict[str, LabelLike]) -> LabelLike | None:
    """What Accept takes: the LLM label that counts, else the student's prediction, else None."""
    student = labels.get(STUDENT)
    return shown_to_reviewer(labels) or (student if usable(student) else None)


def accept_reason(taken_from: str | None) -> str | None:
    """The reason a person's Accept stores with its label: ACCEPTED_STUDENT when it took the student's."""
    return ACCEPTED_STUDENT if taken_from == STUDENT else None


class Reasoned(LabelLike, Protocol):
    reason: str | None


def began_as_student(lab: Reasoned | None) -> bool:
    """True when a person's label was the student's prediction, accepted as shown."""
    return decided(lab) and usable(lab) and lab.reason == ACCEPTED_STUDENT  # type: ignore[union-attr]


def status_of(labels: dict[str, LabelLike]) -> str:
    """A chunk's label status: ok (a label counts), discarded, unlabeled (no LLM reply held a class), or none."""
    if final(labels) is not None:
        return OK
    if is_discard(labels.get(HUMAN)):
        return DISCARDED
    return UNLABELED if any(s in labels for s in LLM_SOURCES) else NO_LABEL


def any_llm(labels: dict[str, LabelLike]) -> LabelLike | None:
    """The LLM label to report when none holds a class (e.g. an `unlabeled` reply with its raw text)."""
    return llm_label(labels) or labels.get(LARGE) or labels.get(SMALL)


# ------------------------------------------------------------------ label sets (classification.multi_label)
#
# A multi-label project stores each label set as JSON in the label column, the classes in their
# configured order: '["business", "tech"]'. '[]' is a valid answer ("none of them"), status ok.


def encode_set(labels, classes) -> str:
    """The stored form of a label set: a JSON list in class order."""
    import json

    chosen = set(labels)
    return json.dumps([c for c in classes if c in chosen], ensure_ascii=False)


def decode_set(value: str | None) -> list[str]:
    """A stored label set back as a list ([] for none); a plain class name is a set of one."""
    import json

    if value is None:
        return []
    text = value.strip()
    if text.startswith("["):
        loaded = json.loads(text)
        return [str(v) for v in loaded]
    return [text]


def label_value(lab: LabelLike | None, multi_label: bool):
    """What a label means for training and scoring: a class name, or (multi-label) a list of them."""
    if lab is None or not usable(lab):
        return None
    return decode_set(lab.label) if multi_label else lab.label
