"""What a reviewer sees of one chunk: its text and every label it holds, read from the Store."""

from __future__ import annotations

from dataclasses import dataclass, field

from labelloop.store import Chunk, Label, Store

STATES = ("pending", "submitted", "discarded")


@dataclass(frozen=True)
class Record:
    """One chunk with its LLM, student and human labels."""

    chunk: Chunk
    llm: Label | None
    student: Label | None
    human: Label | None

    @property
    def id(self) -> int:
        return self.chunk.id

    @property
    def state(self) -> str:
        if self.human is None:
            return "pending"
        return "discarded" if self.human.status == "discarded" else "submitted"

    @property
    def llm_label(self) -> str | None:
        return self.llm.label if self.llm is not None and self.llm.status == "ok" else None

    @property
    def student_label(self) -> str | None:
        return self.student.label if self.student is not None and self.student.status == "ok" else None

    @property
    def suggestion(self) -> tuple[str | None, str | None, float | None]:
        """(label, source, confidence) that Accept takes: the LLM's, else the student's."""
        if self.llm_label is not None:
            return self.llm_label, self.llm.source, self.llm.confidence
        if self.student_label is not None:
            return self.student_label, "student", self.student.confidence
        return None, None, None

    @property
    def given_label(self) -> str | None:
        """The label that counts now: a human's (if kept), else the LLM's."""
        if self.human is not None:
            return self.human.label if self.human.status == "ok" else None
        return self.llm_label

    def to_dict(self) -> dict:
        sug, sug_source, sug_conf = self.suggestion
        return {
            "id": self.id,
            "text": self.chunk.text,
            "source": self.chunk.source,
            "position": self.chunk.position,
            "split": self.chunk.split,
            "state": self.state,
            "suggestion": sug,
            "suggestion_source": sug_source,
            "suggestion_confidence": sug_conf,
            "llm": _label_dict(self.llm),
            "student": _label_dict(self.student),
            "human": _label_dict(self.human),
        }


def _label_dict(lab: Label | None) -> dict | None:
    if lab is None:
        return None
    return {
        "source": lab.source, "label": lab.label, "status": lab.status, "confidence": lab.confidence,
        "reason": lab.reason, "raw": lab.raw, "probs": lab.probs, "updated_at": lab.updated_at,
    }


@dataclass
class Snapshot:
    """Every reviewable record at one moment, in chunk order, plus the class list."""

    records: list[Record]
    classes: list[str]
    by_id: dict[int, Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.records}


def classes_of(store: Store, labels: list[Label] | None = None) -> list[str]:
    """The run's classes (meta `classes`), else every label seen, sorted."""
    classes = store.get_meta("classes")
    if classes:
        return [str(c) for c in classes]
    labels = store.labels() if labels is None else labels
    return sorted({lab.label for lab in labels if lab.label is not None})


def load(store: Store, chunk_ids: list[int] | None = None) -> Snapshot:
    """Read chunks that have a split or any label, with the labels each source holds."""
    labels = store.labels(chunk_ids=chunk_ids)
    by_source: dict[str, dict[int, Label]] = {}
    for lab in labels:
        by_source.setdefault(lab.source, {})[lab.chunk_id] = lab
    labeled = {lab.chunk_id for lab in labels}
    large, small = by_source.get("llm-large", {}), by_source.get("llm-small", {})
    student, human = by_source.get("student", {}), by_source.get("human", {})
    records = []
    for chunk in store.chunks(ids=chunk_ids):
        if chunk.split is None and chunk.id not in labeled:
            continue
        llm = _pick_llm(chunk, large.get(chunk.id), small.get(chunk.id))
        records.append(Record(chunk, llm, student.get(chunk.id), human.get(chunk.id)))
    return Snapshot(records, classes_of(store, labels if chunk_ids is None else None))


def _pick_llm(chunk: Chunk, large: Label | None, small: Label | None) -> Label | None:
    """The LLM label that applies: the split's own source first, then any usable one."""
    own, other = (large, small) if chunk.split != "train" else (small, large)
    for lab in (own, other):
        if lab is not None and lab.status == "ok" and lab.label is not None:
            return lab
    return own or other
