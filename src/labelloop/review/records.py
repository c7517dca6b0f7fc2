"""What a reviewer sees of one chunk: its text and every label it holds, read from the Store."""

from __future__ import annotations

from dataclasses import dataclass, field

from labelloop import labels as policy
from labelloop.store import Chunk, Label, Store

PENDING, SUBMITTED, DISCARDED = "pending", "submitted", policy.DISCARDED
STATES = (PENDING, SUBMITTED, DISCARDED)


def review_state(human_status: str | None) -> str:
    """A chunk's review state from the status of its human label (None: no person has decided it)."""
    if human_status is None:
        return PENDING
    return DISCARDED if human_status == policy.DISCARDED else SUBMITTED


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
        return review_state(self.human.status if policy.decided(self.human) else None)

    @property
    def submitted(self) -> bool:
        return self.state == SUBMITTED

    @property
    def discarded(self) -> bool:
        return self.state == DISCARDED

    @property
    def llm_label(self) -> str | None:
        return self.llm.label if policy.usable(self.llm) else None

    @property
    def llm_role(self) -> str | None:
        """Which LLM gave the label shown: `large` or `small`."""
        return policy.SOURCE_ROLE.get(self.llm.source) if self.llm is not None else None

    @property
    def student_label(self) -> str | None:
        return self.student.label if policy.usable(self.student) else None

    @property
    def suggestion(self) -> tuple[str | None, str | None, float | None]:
        """(label, source, confidence) that Accept takes (labelloop.labels.accept_takes)."""
        held = {lab.source: lab for lab in (self.llm, self.student) if lab is not None}
        taken = policy.accept_takes(held)
        return (taken.label, taken.source, taken.confidence) if taken is not None else (None, None, None)

    @property
    def suggested_by_student(self) -> bool:
        """True when Accept would take the student's prediction (no LLM label holds a class)."""
        return self.suggestion[1] == policy.STUDENT

    @property
    def accept_verb(self) -> str:
        """The Accept button's words: it names the student when Accept takes the student's prediction."""
        return "Accept student:" if self.suggested_by_student else "Accept"

    @property
    def human_from_student(self) -> bool:
        """True when the person's label is the student's prediction, accepted as shown."""
        return policy.began_as_student(self.human)

    # Multi-label projects (classification.multi_label) store each label as a JSON set; these read them.

    @property
    def llm_set(self) -> list[str] | None:
        """The LLM's label set ([] for none of them), or None when the LLM gave no usable answer."""
        return None if self.llm_label is None else policy.decode_set(self.llm_label)

    @property
    def student_set(self) -> list[str] | None:
        return None if self.student_label is None else policy.decode_set(self.student_label)

    @property
    def human_set(self) -> list[str] | None:
        """The person's label set, or None when pending or discarded."""
        return policy.decode_set(self.human.label) if self.submitted else None

    @property
    def suggestion_set(self) -> list[str] | None:
        """The label set Accept takes (the LLM's, else the student's), or None."""
        sug = self.suggestion[0]
        return None if sug is None else policy.decode_set(sug)

    @property
    def given_label(self) -> str | None:
        """The label that counts now (labelloop.labels.final): a person's if any, else the LLM's."""
        held = {lab.source: lab for lab in (self.llm, self.human) if lab is not None}
        counted = policy.final(held)
        return counted.label if counted is not None else None

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
            "human_from_student": self.human_from_student,
            "llm": _label_dict(self.llm),
            policy.STUDENT: _label_dict(self.student),
            policy.HUMAN: _label_dict(self.human),
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
    """Every reviewable record at one moment, in chunk order, plus the class list and the label-error ranking."""

    records: list[Record]
    classes: list[str]
    by_id: dict[int, Record] = field(default_factory=dict)
    issues: list[int] = field(default_factory=list)  # likely label errors (the last round's ranking), worst first
    issues_note: str | None = None
    multi_label: bool = False  # classification.multi_label: labels are sets
    thresholds: dict[str, float] = field(default_factory=dict)  # the student's per-label thresholds, if known

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.records}


def classes_of(store: Store, labels: list[Label] | None = None, multi_label: bool = False) -> list[str]:
    """The run's classes (meta `classes`), else every label seen (every label in the sets seen), sorted."""
    classes = store.get_meta("classes")
    if classes:
        return [str(c) for c in classes]
    labels = store.labels() if labels is None else labels
    seen = [lab.label for lab in labels if lab.label is not None]
    if multi_label:
        return sorted({c for value in seen for c in policy.decode_set(value)})
    return sorted(set(seen))


def load(store: Store, chunk_ids: list[int] | None = None) -> Snapshot:
    """Read chunks that have a split or any label, with the labels each source holds."""
    labels = store.labels(chunk_ids=chunk_ids)
    per_chunk: dict[int, dict[str, Label]] = {}
    for lab in labels:
        per_chunk.setdefault(lab.chunk_id, {})[lab.source] = lab
    records = []
    for chunk in store.chunks(ids=chunk_ids):
        held = per_chunk.get(chunk.id, {})
        if chunk.split is None and not held:
            continue
        # The LLM label that counts now (labelloop.labels): what training uses, so Accept never undoes it.
        llm = policy.shown_to_reviewer(held) or policy.any_llm(held)
        records.append(Record(chunk, llm, held.get(policy.STUDENT), held.get(policy.HUMAN)))
    issues, note = label_issues(store)
    multi = multi_label_of(store)
    classes = classes_of(store, labels if chunk_ids is None else None, multi)
    return Snapshot(records, classes, issues=issues, issues_note=note, multi_label=multi,
                    thresholds=thresholds_of(store) if multi else {})


def multi_label_of(store: Store) -> bool:
    """True when the project labels sets: the run's classification.multi_label (meta `multi_label`, else
    the flag in the student-input contract it records)."""
    from labelloop.classify.student_input import CONTRACT_META

    stored = store.get_meta("multi_label")
    if stored is not None:
        return bool(stored)
    contract = store.get_meta(CONTRACT_META) or {}
    return bool(contract.get("multi_label", False))


def thresholds_of(store: Store) -> dict[str, float]:
    """The student's per-label decision thresholds of the newest round that recorded them, else {}."""
    for it in reversed(store.iterations()):
        saved = ((it.metrics or {}).get("multi_label") or {}).get("thresholds")
        if isinstance(saved, dict) and saved:
            return {str(c): float(t) for c, t in saved.items() if isinstance(t, (int, float))}
    return {}


def label_issues(store: Store) -> tuple[list[int], str | None]:
    """The chunk ids the last round ranked as likely label errors (training and test labels), worst first.

    The ranking is made once per round by the loop (labelloop.loop.label_errors) on the
    student's out-of-sample probabilities; this only reads it.
    """
    from labelloop.loop.label_errors import Flags

    done = [it for it in store.iterations() if it.status == "done"]
    if not done:
        return [], "no round has finished yet; run `labelloop run` first."
    flags = Flags.from_metrics(done[-1].metrics)
    scored = list(zip(flags.flagged, flags.scores)) + list(zip(flags.test_flagged, flags.test_scores))
    ranked = [cid for cid, _ in sorted(scored, key=lambda pair: pair[1])]
    note = f"ranked by iteration {done[-1].n}'s student" + (f"; {flags.note}" if flags.note else "")
    return list(dict.fromkeys(ranked)), note


def progress_summary(total: int, reviewed: list, compared: int, agreed: int, per: dict) -> dict:
    """The progress page's numbers: reviewed of total, agreement with the LLM, and each class's
    recall and precision (from its reviewed / kept / llm_agree / llm_said / llm_said_agree counts)."""
    for row in per.values():
        row["recall"] = row["llm_agree"] / row["kept"] if row["kept"] else None
        row["precision"] = row["llm_said_agree"] / row["llm_said"] if row["llm_said"] else None
    return {
        "total": total,
        "reviewed": len(reviewed),
        **{state: sum(r.state == state for r in reviewed) for state in (SUBMITTED, DISCARDED)},
        "compared": compared,
        "agreed": agreed,
        "agreement": agreed / compared if compared else None,
        "by_class": list(per.values()),
    }
