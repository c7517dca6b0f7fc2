"""Split text into chunks of at most `chunk_size` tokens of the student's tokenizer.

Paragraphs (blank lines) first, then sentences, then hard token splits of a single
over-long sentence (at word starts where possible); consecutive pieces are packed
greedily. Token counts exclude special tokens ([CLS]/[SEP]). With a whitespace-bound
pre-tokenizer (BERT's WordPiece) the counts of whitespace-separated pieces add up
exactly, so each character is tokenized once; any chunk whose count is not known
exactly (a mid-word cut, or another tokenizer family) is re-tokenized, so `n_tokens`
is the real count and never exceeds `chunk_size`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from labelloop.errors import ModelNotAvailableError
from labelloop.models import resolve_model

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\s*\n\s*")
_SMALL_TEXT_CHARS_PER_TOKEN = 8  # texts shorter than this many chars per budget token are tried whole

_COUNT_BATCH = 1024
_ADDITIVE_PRE_TOKENIZERS = ("BertPreTokenizer", "Whitespace", "WhitespaceSplit")

Unit = tuple[int, int, int, bool]  # start, end (chars), n_tokens, count is exact when re-tokenized alone


def load_tokenizer(path: str | None = None) -> Any:
    """The one way to get a student's tokenizer (cached per folder); default: the packaged MiniLM.

    `path` is a folder, a packaged model name or a model-hub id (labelloop.models.resolve_model).
    The Rust tokenizer is read straight from tokenizer.json (no transformers import, so
    predict and the review app stay light); a folder without one goes through transformers.
    """
    return _load_tokenizer(str(Path(resolve_model(path)).resolve()))


@lru_cache(maxsize=8)
def _load_tokenizer(path: str) -> Any:
    folder = _tokenizer_folder(Path(path))
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - a broken file is reported with the fix
            raise ModelNotAvailableError(
                f"cannot read the tokenizer {str(folder / 'tokenizer.json')!r} ({exc}); save the model again "
                "with a recent transformers, or point the setting at another folder"
            ) from None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"student.encoder: cannot load a tokenizer from {str(folder)!r} ({exc}); "
            "point student.encoder at a local model folder with tokenizer files, or leave it empty "
            "for the packaged MiniLM"
        ) from None
    if not getattr(tok, "is_fast", False):
        raise ModelNotAvailableError(
            f"student.encoder: the tokenizer in {str(folder)!r} is not a fast (Rust) tokenizer; "
            "add a tokenizer.json to the folder (save it with a recent transformers)"
        )
    return tok


def chunker_for(config) -> "Chunker":
    """The run's chunker: system.chunk_size tokens of the configured student model's tokenizer.

    Each saved student records this tokenizer (labelloop.classify.student_input), so predict, Ray
    and serve chunk as ingest did even when student.type auto trained on another encoder.
    """
    return Chunker(load_tokenizer(config.student_model), config.system.chunk_size)


def _tokenizer_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise ModelNotAvailableError(
            f"student.encoder: {str(folder)!r} is not a folder; point it at a local model folder "
            "or leave it empty for the packaged MiniLM"
        )
    if any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return folder
    for sub in sorted(folder.iterdir()):  # sentence-transformers layout: 0_Transformer/
        if sub.is_dir() and (sub / "tokenizer.json").exists():
            return sub
    return folder


_BACKENDS: dict[int, tuple[Any, Any]] = {}


def backend_of(tokenizer: Any):
    """A private copy of the Rust tokenizer with truncation and padding off (cached per tokenizer)."""
    from tokenizers import Tokenizer

    cached = _BACKENDS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not isinstance(backend, Tokenizer):
        raise TypeError(f"expected a fast HF tokenizer or tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    _BACKENDS[id(tokenizer)] = (tokenizer, copy)
    return copy


def split_spans(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """Non-empty, whitespace-trimmed (start, end) spans of text[start:end] between pattern matches."""
    spans = []
    pos = start
    for m in pattern.finditer(text, start, end):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, end))
    out = []
    for s, e in spans:
        piece = text[s:e]
        stripped = piece.strip()
        if stripped:
            s += len(piece) - len(piece.lstrip())
            out.append((s, s + len(stripped)))
    return out


class Chunker:
    """Chunks text by tokens of a fast tokenizer: paragraphs, then sentences, then hard splits."""

    def __init__(self, tokenizer: Any, chunk_size: int):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self._backend = backend_of(tokenizer)
        self._additive = _is_additive(self._backend)

    def __str__(self) -> str:
        return f"Chunker(chunk_size={self.chunk_size})"

    def count(self, texts: list[str]) -> list[int]:
        """Token counts (no special tokens) of each text."""
        return self._counts(texts)

    def chunk(self, text: str) -> list[tuple[str, int]]:
        """(chunk text, n_tokens) pairs of one text, in order."""
        return self.chunk_many([text])[0]

    def chunk_many(self, texts: list[str]) -> list[list[tuple[str, int]]]:
        """Chunk several texts with batched tokenization; one list of (text, n_tokens) per input."""
        size = self.chunk_size
        out: list[list[tuple[str, int]] | None] = [None] * len(texts)
        if not self._additive:
            # short texts that fit whole: one tokenization, one chunk
            small = [i for i, t in enumerate(texts) if len(t) <= size * _SMALL_TEXT_CHARS_PER_TOKEN]
            for i, n in zip(small, self._counts([texts[i].strip() for i in small])):
                if n <= size:
                    out[i] = [(texts[i].strip(), n)] if n else []
        rest = [i for i, o in enumerate(out) if o is None]
        # paragraphs, then sentences of over-long paragraphs, then hard splits of over-long sentences
        paras = [(i, s, e) for i in rest for s, e in split_spans(texts[i], 0, len(texts[i]), _PARAGRAPH_BREAK)]
        para_counts = self._counts([texts[i][s:e] for i, s, e in paras])
        sents = [(k, s, e) for k, n in enumerate(para_counts) if n > size
                 for s, e in split_spans(texts[paras[k][0]], paras[k][1], paras[k][2], _SENTENCE_BREAK)]
        sent_texts = [texts[paras[k][0]][s:e] for k, s, e in sents]
        sent_counts = self._counts(sent_texts)
        too_long = [j for j, n in enumerate(sent_counts) if n > size]
        hard = {j: _hard_split(enc, sents[j][1], size)
                for j, enc in zip(too_long, self._encode([sent_texts[j] for j in too_long]))}
        sent_units: dict[int, list[Unit]] = {}
        for j, ((k, s, e), n) in enumerate(zip(sents, sent_counts)):
            sent_units.setdefault(k, []).extend(hard[j] if j in hard else [(s, e, n, True)])
        units_by_text: dict[int, list[Unit]] = {i: [] for i in rest}
        for k, ((i, s, e), n) in enumerate(zip(paras, para_counts)):
            if n:
                units_by_text[i].extend(sent_units.get(k, []) if n > size else [(s, e, n, True)])
        # pack greedily; re-tokenize chunks whose count is not known exactly
        packed = {i: _pack(units_by_text[i], size) for i in rest}
        to_check = [(i, j) for i in rest for j, (_, _, _, pieces, exact) in enumerate(packed[i])
                    if not exact or (pieces > 1 and not self._additive)]
        checked = dict(zip(to_check, self._encode([texts[i][packed[i][j][0]:packed[i][j][1]] for i, j in to_check])))
        for i in rest:
            chunks: list[tuple[str, int]] = []
            for j, (s, e, n, _, _) in enumerate(packed[i]):
                enc = checked.get((i, j))
                chunks.extend([(texts[i][s:e], n)] if enc is None else self._fit(texts[i][s:e], enc))
            out[i] = [(t, n) for t, n in chunks if n > 0 and t.strip()]
        return out  # type: ignore[return-value]

    def _counts(self, texts: list[str]) -> list[int]:
        """Token counts, encoded in sub-batches so token arrays never pile up in memory."""
        counts: list[int] = []
        for start in range(0, len(texts), _COUNT_BATCH):
            counts.extend(len(e) for e in self._backend.encode_batch(texts[start:start + _COUNT_BATCH], add_special_tokens=False))
        return counts

    def _encode(self, texts: list[str]) -> list:
        if not texts:
            return []
        return self._backend.encode_batch(texts, add_special_tokens=False)

    def _fit(self, text: str, enc: Any, depth: int = 0) -> list[tuple[str, int]]:
        """Split text (with its encoding) until every piece re-tokenizes within chunk_size."""
        n = len(enc.ids)
        if n <= self.chunk_size:
            return [(text, n)]
        if depth > 8:
            return self._fit_by_chars(text)
        pieces = _hard_split(enc, 0, self.chunk_size)
        out = []
        for (s, e, _, _), penc in zip(pieces, self._encode([text[s:e] for s, e, _, _ in pieces])):
            out.extend(self._fit(text[s:e], penc, depth + 1))
        return out

    def _fit_by_chars(self, text: str) -> list[tuple[str, int]]:
        """Last resort: longest prefixes (by characters) that fit, found by bisection."""
        out = []
        while text.strip():
            lo, hi = 1, len(text)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count([text[:mid]])[0] <= self.chunk_size:
                    lo = mid
                else:
                    hi = mid - 1
            out.append((text[:lo], self.count([text[:lo]])[0]))
            text = text[lo:]
        return out


def _is_additive(backend: Any) -> bool:
    """True when tokens never cross whitespace, so pieces joined by whitespace add up exactly."""
    return type(backend.pre_tokenizer).__name__ in _ADDITIVE_PRE_TOKENIZERS


def _hard_split(enc: Any, base: int, size: int) -> list[Unit]:
    """Windows of at most `size` tokens of one encoding, cut at word starts where possible."""
    offsets = enc.offsets
    word_ids = enc.word_ids
    n = len(offsets)
    units: list[Unit] = []
    i = 0
    exact_start = True
    while i < n:
        j = min(i + size, n)
        if j < n:
            k = j
            while k > i and not _word_start(word_ids, k):
                k -= 1
            if k > i:
                j = k
        exact_end = j == n or _word_start(word_ids, j)
        s, e = offsets[i][0], offsets[j - 1][1]
        if e > s:
            units.append((base + s, base + e, j - i, exact_start and exact_end))
        exact_start = exact_end
        i = j
    return units


def _word_start(word_ids: list, k: int) -> bool:
    return word_ids[k] is None or word_ids[k] != word_ids[k - 1]


def _pack(units: list[Unit], size: int) -> list[tuple[int, int, int, int, bool]]:
    """Greedy packing of consecutive units into (start, end, n_tokens, n_units, exact) within size."""
    packed: list[tuple[int, int, int, int, bool]] = []
    cur: list | None = None
    for s, e, n, exact in units:
        if cur is not None and cur[2] + n <= size:
            cur[1], cur[2], cur[3], cur[4] = e, cur[2] + n, cur[3] + 1, cur[4] and exact
        else:
            if cur is not None:
                packed.append(tuple(cur))  # type: ignore[arg-type]
            cur = [s, e, n, 1, exact]
    if cur is not None:
        packed.append(tuple(cur))  # type: ignore[arg-type]
    return packed
