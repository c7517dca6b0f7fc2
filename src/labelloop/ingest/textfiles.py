"""Text files: decode them (byte-order mark, UTF-8, a charset guess) and stream .txt/.md in blocks.

A .txt/.md file is read in blocks of about `BLOCK_CHARS` characters cut at paragraph
boundaries, one Document per block (`part` 0, 1, ...), so a file of any size never sits
in memory at once.

Encodings: a byte-order mark (UTF-8/16/32) wins; then strict UTF-8 over the whole file;
then Windows-1252 if the text reads as a Latin-script language in it, else
charset-normalizer's guess, else latin-1. Every non-UTF-8 decode is reported as a warning
that names the encoding used. Bytes the chosen codec cannot decode raise UnicodeDecodeError,
which `readers.read_file` reports as a file problem.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from labelloop.ingest.documents import Document, OnProblem, Problem

BLOCK_CHARS = 1 << 20
SAMPLE_BYTES = 1 << 16

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # Cc except tab, newlines, form feed


@dataclass(frozen=True)
class _Encoding:
    name: str
    errors: str = "strict"
    note: str | None = None  # why it was chosen, when it is not plain UTF-8


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def _detect_encoding(path: Path, sample: bytes) -> _Encoding:
    """BOM, then strict UTF-8 over the whole file (streamed), then a charset guess, then latin-1."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return _Encoding(name, note=f"decoded as {name} (byte-order mark)") if name != "utf-8-sig" else _Encoding(name)
    utf16 = _bomless_utf16(sample)
    if utf16:
        return _Encoding(utf16, "replace", f"decoded as {utf16} (no byte-order mark; guessed from NUL byte pattern)")
    bad = _first_invalid_utf8(path)
    if bad is None:
        return _Encoding("utf-8")
    guess = _charset_guess(path)
    where = f"not valid UTF-8 (first bad byte at offset {bad})"
    if guess:
        return _Encoding(guess, "replace", f"{where}; decoded as {guess} (best guess of charset detection); "
                                            "re-save it as UTF-8 if the text looks wrong")
    return _Encoding("latin-1", "strict", f"{where}; decoded as latin-1 (fallback); re-save it as UTF-8 if the text looks wrong")


def _first_invalid_utf8(path: Path) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK_CHARS):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def _charset_guess(path: Path) -> str | None:
    """Windows-1252 when the text reads as a Latin-script language in it, else charset-normalizer's pick."""
    with open(path, "rb") as f:
        data = f.read(BLOCK_CHARS)
    try:
        if _looks_latin(data.decode("cp1252")):
            return "cp1252"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    best = from_bytes(data).best()
    if best is None or best.encoding in ("utf_8", "ascii"):
        return None
    return best.encoding


_WORD = re.compile(r"[^\W\d_]+")


def _looks_latin(text: str) -> bool:
    """Most words with accented letters also have plain ASCII letters (Latin scripts: 'café', not 'Ïðèâåò')."""
    accented = mixed = 0
    for word in _WORD.findall(text):
        if not word.isascii():
            accented += 1
            mixed += any(ch.isascii() for ch in word)
    return accented == 0 or mixed / accented >= 0.5


def _bomless_utf16(sample: bytes) -> str | None:
    """UTF-16 without a BOM: NULs in nearly every other byte, on one side only."""
    head = sample[: len(sample) - len(sample) % 2]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if odd >= 0.9 * half and even < 0.1 * half:
        return "utf-16-le"
    if even >= 0.9 * half and odd < 0.1 * half:
        return "utf-16-be"
    return None


def _looks_binary(sample_text: str, raw_has_nul: bool) -> str | None:
    """A reason when decoded text looks like binary junk, else None."""
    if raw_has_nul and "\x00" in sample_text:
        return "contains NUL bytes"
    if not sample_text:
        return None
    control = len(_CONTROL.findall(sample_text))
    replaced = sample_text.count("\ufffd")
    ratio = (control + replaced) / len(sample_text)
    if ratio > 0.1:
        return f"{ratio:.0%} control or undecodable characters"
    return None


def open_text(path: Path, source: str, on_problem: OnProblem) -> TextIO | None:
    """Open a text-like file with the detected encoding; None (after a problem) for binary junk."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    enc = _detect_encoding(path, sample)
    sample_text = sample.decode(enc.name, errors="replace")
    reason = _looks_binary(sample_text, b"\x00" in sample)
    if reason:
        on_problem(Problem(source, "error", f"looks like a binary file, not text ({reason}), skipped; "
                                            "convert it to text or remove it from the input folder"))
        return None
    if enc.note:
        on_problem(Problem(source, "warning", enc.note))
    return open(path, encoding=enc.name, errors=enc.errors, newline=None)


# ---------------------------------------------------------------- .txt and .md


def read_text(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    """Documents of a .txt/.md file, one per block of about BLOCK_CHARS characters."""
    handle = open_text(path, source, on_problem)
    if handle is None:
        return
    part = 0
    yielded_text = False
    with handle:
        for block in _paragraph_blocks(handle):
            if block.strip():
                yielded_text = True
                yield Document(source, block, {}, part)
                part += 1
    if not yielded_text:
        on_problem(Problem(source, "warning", "contains only whitespace, nothing to ingest"))


def _paragraph_blocks(handle, block_chars: int | None = None) -> Iterator[str]:
    """Blocks of about block_chars (default BLOCK_CHARS) characters, cut after a blank line where there is one."""
    block_chars = block_chars or BLOCK_CHARS
    buf = ""
    while True:
        data = handle.read(block_chars)
        if not data:
            break
        buf += data
        if len(buf) < block_chars:
            continue
        cut = _cut_point(buf, block_chars)
        yield buf[:cut]
        buf = buf[cut:]
    if buf:
        yield buf


def _cut_point(buf: str, block_chars: int) -> int:
    """Index after the last paragraph break; else last newline; else last space; else a hard cut."""
    limit = min(len(buf), 2 * block_chars)
    window = buf[:limit]
    last = None
    for m in _PARAGRAPH_BREAK.finditer(window, block_chars // 2):
        last = m
    if last is not None:
        return last.end()
    for sep in ("\n", " "):
        i = window.rfind(sep, block_chars // 2)
        if i != -1:
            return i + 1
    return limit
