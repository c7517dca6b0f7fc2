"""Cut a text to the student's token budget: `head` or `head-tail`.

`head` keeps the first `max_tokens` tokens. `head-tail` keeps the first quarter and the
last three quarters of the budget, joined by the visible SEPARATOR. The fractions come
from Sun et al. 2019, "How to Fine-Tune BERT for Text Classification" (arXiv:1905.05583):
on long IMDb/Yelp reviews, head 128 + tail 382 tokens (510 = 512 minus [CLS]/[SEP])
beat head-only and tail-only. The separator's own tokens are paid from the budget first,
so the result never exceeds `max_tokens`.

Budgets count tokens without special tokens: pass `max_seq_length - 2` for BERT-style
models. Cuts fall on token boundaries of the original string (offsets mapping), at word
starts where possible, so the kept pieces are exact slices of the input (`spans`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from labelloop.config import TruncationType
from labelloop.ingest.chunking import backend_of

SEPARATOR = " [...] "
HEAD_FRACTION = 0.25  # Sun et al. 2019: 128 of 510 tokens from the head, 382 from the tail

TruncationKind = TruncationType


@dataclass(frozen=True)
class Truncated:
    """The cut text, whether anything was removed, and the kept (start, end) spans of the original."""

    text: str
    truncated: bool
    spans: list[tuple[int, int]] = field(default_factory=list)


def truncate(text: str, tokenizer: Any, max_tokens: int, kind: TruncationKind = "head-tail") -> Truncated:
    """Cut text to at most max_tokens tokens (no special tokens) with the `head` or `head-tail` rule."""
    if kind not in get_args(TruncationType):
        raise ValueError(f"truncation kind {kind!r} is not known; use 'head' or 'head-tail' (training.truncation_type)")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    return Truncated(*cut_text(text, backend_of(tokenizer), max_tokens, kind))


# The rule itself, below, uses only a tokenizers.Tokenizer (truncation and padding off) and the two
# constants above: saved folders' READMEs quote these functions verbatim (CUT_FUNCTIONS), so a
# classifier loaded without labelloop cuts its input exactly as labelloop does.

def cut_text(text: str, backend, max_tokens: int, kind: str = "head-tail") -> tuple:
    """(text cut to at most max_tokens tokens, whether it was cut, the kept (start, end) spans)."""
    enc = backend.encode(text, add_special_tokens=False)
    if len(enc.ids) <= max_tokens:
        return text, False, [(0, len(text))]
    budget = max_tokens
    for _ in range(8):  # shrink only if re-tokenizing the joined pieces runs over (rare)
        cut, spans = _cut(text, enc, budget, kind, backend)
        over = len(backend.encode(cut, add_special_tokens=False).ids) - max_tokens
        if over <= 0:
            return cut, True, spans
        budget -= over
        if budget < 1:
            break
    cut, spans = _cut(text, enc, 1, "head", backend)
    return cut, True, spans


def _cut(text: str, enc, budget: int, kind: str, backend) -> tuple:
    """One cut of the encoded text to `budget` tokens: (cut text, kept spans)."""
    offsets, word_ids = enc.offsets, enc.word_ids
    n = len(offsets)
    if kind == "head":
        end = _head_end(offsets, word_ids, budget)
        return text[:end], [(0, end)]
    sep_tokens = len(backend.encode(SEPARATOR, add_special_tokens=False).ids)
    content = budget - sep_tokens
    if content < 2:
        end = _head_end(offsets, word_ids, budget)
        return text[:end], [(0, end)]
    n_head = max(1, int(content * HEAD_FRACTION))
    n_tail = content - n_head
    head_end = _head_end(offsets, word_ids, n_head)
    tail_start = _tail_start(offsets, word_ids, n - n_tail)
    head, tail = text[:head_end].rstrip(), text[tail_start:].lstrip()
    return head + SEPARATOR + tail, [(0, len(head)), (len(text) - len(tail), len(text))]


def _is_word_start(word_ids: list, k: int) -> bool:
    return k == 0 or word_ids[k] is None or word_ids[k] != word_ids[k - 1]


def _head_end(offsets: list, word_ids: list, n_keep: int) -> int:
    """Char end of the first n_keep tokens, backed off to a word boundary when possible."""
    k = n_keep  # index of the first dropped token
    while k > 0 and not _is_word_start(word_ids, k):
        k -= 1
    if k == 0:
        k = n_keep
    return offsets[k - 1][1]


def _tail_start(offsets: list, word_ids: list, first: int) -> int:
    """Char start of the token at `first`, moved forward to a word start when possible."""
    n = len(offsets)
    k = first
    while k < n and not _is_word_start(word_ids, k):
        k += 1
    if k == n:
        k = first
    return offsets[k][0]


CUT_FUNCTIONS = (cut_text, _cut, _is_word_start, _head_end, _tail_start)  # the rule, as READMEs quote it
