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
training and evaluation use, so accepting it never undoes a correction.
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

OK = "ok"
UNLABELED = "unlabeled"
DISCARDED = "discarded"


class LabelLike(Protocol):
    source: str
    label: str | None
    status: str


def usable(lab: LabelLike | None) -> bool:
    """True when the label holds a class (status ok)."""
    return lab is not None and lab.status == OK and lab.label is not None


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


def shown_to_reviewer(labels: dict[str, LabelLike]) -> LabelLike | None:
    """The LLM label a reviewer sees and Accept takes (the one that counts when no person has decided)."""
    return llm_label(labels)


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
