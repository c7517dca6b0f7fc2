"""What the student sees of a chunk: cut to its max length, head or head-tail."""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's window


def make_student_input(
    encoder: str | None, max_seq_length: int | None, truncation_type: str
) -> Callable[[list[str]], list[str]]:
    """A function that truncates texts for the student, the same way in training and prediction."""
    from labelloop.ingest.chunking import load_tokenizer
    from labelloop.ingest.truncation import truncate

    tokenizer = load_tokenizer(encoder)
    budget = (max_seq_length or DEFAULT_MAX_SEQ_LENGTH) - 2  # [CLS] and [SEP]

    def prepare(texts: list[str]) -> list[str]:
        return [truncate(t, tokenizer, budget, truncation_type).text for t in texts]

    return prepare
