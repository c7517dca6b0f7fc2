"""Mark the parts of a record's text the student never sees because its input is truncated."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from labelloop.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """A run of text; `kept` is False where the student's truncation cut it away."""

    text: str
    kept: bool = True


class Highlighter:
    """Splits texts into kept/cut segments with the run's student tokenizer; plain text if unavailable."""

    def __init__(self, max_tokens: int | None, kind: str | None):
        self.max_tokens = max_tokens
        self.kind = kind or "head"
        self.problem: str | None = None
        self.encoder: str | None = None

    @classmethod
    def from_store(cls, store: Store) -> Highlighter:
        max_tokens = store.get_meta("student_max_tokens")
        made = cls(int(max_tokens) if max_tokens else None, store.get_meta("truncation_type"))
        made.encoder = store.get_meta("student_encoder")
        return made

    def segments(self, text: str) -> list[Segment]:
        if not self.max_tokens or self.problem:
            return [Segment(text)]
        try:
            from labelloop.ingest.truncation import truncate

            result = truncate(text, _tokenizer(self.encoder), self.max_tokens, self.kind)
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


@functools.lru_cache(maxsize=2)
def _tokenizer(encoder: str | None):
    """The student encoder's Rust tokenizer (default: the packaged MiniLM), read from tokenizer.json."""
    from labelloop.ingest.chunking import load_tokenizer
    from labelloop.models import resolve_model

    folder = Path(resolve_model(encoder))
    for candidate in [folder / "tokenizer.json", *sorted(folder.glob("*/tokenizer.json"))]:
        if candidate.is_file():
            from tokenizers import Tokenizer

            return Tokenizer.from_file(str(candidate))  # no transformers import: pages stay fast
    return load_tokenizer(encoder)
