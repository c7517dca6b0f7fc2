"""Mark the parts of a record's text the student never sees because its input is truncated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from labelloop.classify.student_input import CONTRACT_META, StudentInput
from labelloop.errors import LabelloopError
from labelloop.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """A run of text; `kept` is False where the student's truncation cut it away."""

    text: str
    kept: bool = True


class Highlighter:
    """Splits texts into kept/cut segments by the student-input contract; plain text if there is none."""

    def __init__(self, contract: StudentInput | None):
        self.contract = contract
        self.problem: str | None = None

    @classmethod
    def from_store(cls, store: Store) -> Highlighter:
        """The contract of the newest trained student, else the one the run wrote before training."""
        for it in reversed(store.iterations()):
            if it.status == "done" and it.model_path and Path(it.model_path).is_dir():
                try:
                    return cls(StudentInput.load(it.model_path))
                except LabelloopError as exc:
                    log.warning("truncation highlight from %s unavailable: %s", it.model_path, exc)
                break
        saved = store.get_meta(CONTRACT_META)
        return cls(StudentInput.from_dict(saved) if saved else None)

    def segments(self, text: str) -> list[Segment]:
        if self.contract is None or self.problem:
            return [Segment(text)]
        try:
            result = self.contract.cut(text)
        except Exception as exc:  # the highlight is a help, never a reason to fail the page
            self.problem = f"truncation highlight unavailable: {exc}"
            log.warning(self.problem)
            return [Segment(text)]
        if not result.truncated:
            return [Segment(text)]
        return split_by_spans(text, result.spans)


def split_by_spans(text: str, kept: list[tuple[int, int]]) -> list[Segment]:
    """Segments of `text` with the character spans in `kept` marked kept and the rest cut."""
    out, pos = [], 0
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in kept):
        if start > pos:
            out.append(Segment(text[pos:start], kept=False))
        if end > max(start, pos):
            out.append(Segment(text[max(start, pos):end]))
        pos = max(pos, end)
    if pos < len(text):
        out.append(Segment(text[pos:], kept=False))
    return out or [Segment(text)]
