"""Walk the input folder and read each supported file into Documents; report every problem.

Readers never raise on bad input: they call `on_problem` with a `Problem` and go on.
Plain text streams: a .txt/.md file is read in blocks of about `BLOCK_CHARS`
characters cut at paragraph boundaries, one Document per block (`part` 0, 1, ...),
so a file of any size never sits in memory at once.

Encodings: a byte-order mark (UTF-8/16/32) wins; then strict UTF-8 over the whole file;
then Windows-1252 if the text reads as a Latin-script language in it, else
charset-normalizer's guess, else latin-1. Every non-UTF-8 decode is reported as a warning
that names the encoding used.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import stat
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BLOCK_CHARS = 1 << 20
SAMPLE_BYTES = 1 << 16
MAX_ROW_PROBLEMS = 20
TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED = (".txt", ".md", ".pdf", ".docx", ".jsonl", ".csv")

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # Cc except tab, newlines, form feed


@dataclass(frozen=True)
class Document:
    """Text from one file, one row (jsonl/csv), one page (pdf) or one streamed block (txt/md)."""

    source: str
    text: str
    metadata: dict = field(default_factory=dict)
    part: int = 0


@dataclass(frozen=True)
class Problem:
    """Something wrong with one input path; `path` may carry a row (`f.jsonl:12`)."""

    path: str
    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


OnProblem = Callable[[Problem], None]


def supported_list() -> str:
    return ", ".join(SUPPORTED)


# ---------------------------------------------------------------- walking


def iter_files(input_dir: Path, on_problem: OnProblem) -> Iterator[tuple[Path, str]]:
    """Yield (path, source) for every supported regular file, sorted, without following loops.

    `source` is the path relative to input_dir in POSIX form. Hidden entries, unknown
    extensions, broken links, special files and link loops are reported, not read.
    """
    root = Path(input_dir)
    visited_dirs: set[str] = {os.path.realpath(root)}
    seen_files: dict[str, str] = {}
    yield from _walk(root, root, visited_dirs, seen_files, on_problem)


def _walk(
    folder: Path, root: Path, visited: set[str], seen_files: dict[str, str], on_problem: OnProblem
) -> Iterator[tuple[Path, str]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        on_problem(Problem(_rel(folder, root), "error", f"cannot list folder ({_oserror(exc)}); fix its permissions"))
        return
    for entry in entries:
        path = Path(entry.path)
        rel = _rel(path, root)
        if entry.name.startswith("."):
            on_problem(Problem(rel, "warning", "hidden (name starts with '.'), skipped"))
            continue
        try:
            st = os.stat(path)  # follows links
        except FileNotFoundError:
            target = os.readlink(path) if os.path.islink(path) else "?"
            on_problem(Problem(rel, "error", f"broken link to {target!r}, skipped; fix or remove the link"))
            continue
        except OSError as exc:
            on_problem(Problem(rel, "error", f"cannot access ({_oserror(exc)}), skipped"))
            continue
        real = os.path.realpath(path)
        if stat.S_ISDIR(st.st_mode):
            if real in visited:
                on_problem(Problem(rel, "warning", f"folder already visited (link loop or duplicate link to {real!r}), skipped"))
                continue
            visited.add(real)
            yield from _walk(path, root, visited, seen_files, on_problem)
        elif not stat.S_ISREG(st.st_mode):
            on_problem(Problem(rel, "error", f"not a regular file ({_kind(st.st_mode)}), skipped"))
        elif path.suffix.lower() not in SUPPORTED:
            on_problem(
                Problem(rel, "warning", f"unsupported file type {path.suffix or '(no extension)'!r}, skipped; "
                        f"supported: {supported_list()}")
            )
        elif real in seen_files:
            on_problem(Problem(rel, "warning", f"same file as {seen_files[real]!r} (a link), skipped"))
        else:
            seen_files[real] = rel
            yield path, rel


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def _oserror(exc: OSError) -> str:
    return f"{exc.strerror or type(exc).__name__}" + (f" [errno {exc.errno}]" if exc.errno else "")


# ---------------------------------------------------------------- dispatch


def iter_documents(
    input_dir: Path, *, text_column: str = "text", on_problem: OnProblem
) -> Iterator[Document]:
    """Every Document under input_dir, in sorted path order."""
    for path, source in iter_files(Path(input_dir), on_problem):
        yield from read_file(path, source, text_column=text_column, on_problem=on_problem)


def read_file(path: Path, source: str, *, text_column: str = "text", on_problem: OnProblem) -> Iterator[Document]:
    """Documents of one file; an unreadable or broken file yields nothing and one problem."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        on_problem(Problem(source, "warning", f"unsupported file type {path.suffix!r}, skipped; supported: {supported_list()}"))
        return
    try:
        if os.path.getsize(path) == 0:
            on_problem(Problem(source, "warning", "empty file (0 bytes), nothing to ingest"))
            return
        yield from reader(path, source, text_column, on_problem)
    except PermissionError as exc:
        on_problem(Problem(source, "error", f"cannot read ({_oserror(exc)}); fix its permissions (chmod u+r) or remove it"))
    except OSError as exc:
        on_problem(Problem(source, "error", f"cannot read ({_oserror(exc)}), skipped"))
    except Exception as exc:  # a reader library failing on odd input must not stop the run
        on_problem(Problem(source, "error", f"could not be read ({type(exc).__name__}: {exc}), skipped"))


# ---------------------------------------------------------------- encodings


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


def _open_text(path: Path, source: str, on_problem: OnProblem):
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


# ---------------------------------------------------------------- readers


def _read_text(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    handle = _open_text(path, source, on_problem)
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


def _read_pdf(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                pass
        pages = reader.pages
        n_pages = len(pages)
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        on_problem(Problem(source, "error", f"cannot read PDF ({type(exc).__name__}: {exc}); the file is "
                                            "corrupt, truncated or encrypted; re-export or re-download it"))
        return
    any_text = False
    for i in range(n_pages):
        try:
            text = pages[i].extract_text() or ""
        except Exception as exc:
            on_problem(Problem(f"{source}#page{i + 1}", "error",
                               f"cannot extract text ({type(exc).__name__}: {exc}), page skipped"))
            continue
        if text.strip():
            any_text = True
            yield Document(source, text, {"page": i + 1}, i)
    if not any_text:
        on_problem(Problem(source, "warning", f"PDF with {n_pages} page(s) but no text layer (scanned?); run OCR on it first"))


def _read_docx(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        doc = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        on_problem(Problem(source, "error", f"cannot read DOCX ({type(exc).__name__}: {exc}); the file is "
                                            "corrupt or not a Word .docx (old .doc files are not supported); "
                                            "re-save it as .docx"))
        return
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            parts.append(" | ".join(c for c in cells if c))
    text = "\n\n".join(p for p in parts if p.strip())
    if text.strip():
        yield Document(source, text, {}, 0)
    else:
        on_problem(Problem(source, "warning", "DOCX has no text, nothing to ingest"))


class _RowProblems:
    """Per-file row problems, capped so one bad file cannot flood the report."""

    def __init__(self, source: str, on_problem: OnProblem, limit: int = MAX_ROW_PROBLEMS):
        self.source, self.on_problem, self.limit = source, on_problem, limit
        self.count = 0

    def add(self, where: str, severity: Literal["error", "warning"], message: str) -> None:
        self.count += 1
        if self.count <= self.limit:
            self.on_problem(Problem(where, severity, message))

    def close(self) -> None:
        if self.count > self.limit:
            self.on_problem(Problem(self.source, "warning",
                                    f"{self.count - self.limit} more row problem(s) not shown ({self.count} in all)"))


def _read_jsonl(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    handle = _open_text(path, source, on_problem)
    if handle is None:
        return
    rows = _RowProblems(source, on_problem)
    hint = "set the key with `--text-column NAME` or `ingest.text_column` in the config"
    yielded = False
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{source}:{lineno}"
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                rows.add(where, "error", f"not valid JSON ({exc.msg}, column {exc.colno}), line skipped; fix or remove it")
                continue
            if not isinstance(row, dict):
                rows.add(where, "error",
                         f"expected a JSON object with a {text_column!r} key, got {type(row).__name__}, line skipped")
                continue
            if text_column not in row:
                rows.add(where, "error", f"no {text_column!r} key (keys found: {sorted(row)}), line skipped; {hint}")
                continue
            text = row[text_column]
            if not isinstance(text, str):
                rows.add(where, "error", f"{text_column!r} is {type(text).__name__}, expected a string, line skipped")
                continue
            if not text.strip():
                rows.add(where, "warning", f"{text_column!r} is empty, line skipped")
                continue
            metadata = {k: v for k, v in row.items() if k != text_column}
            yielded = True
            yield Document(f"{source}#L{lineno}", text, metadata, 0)
    rows.close()
    if not yielded and rows.count == 0:
        on_problem(Problem(source, "warning", "no rows, nothing to ingest"))


def _read_csv(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    handle = _open_text(path, source, on_problem)
    if handle is None:
        return
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with handle:
        sample = handle.read(SAMPLE_BYTES)
        handle.seek(0)
        dialect = _csv_dialect(sample, text_column)
        handle = open(handle.name, encoding=handle.encoding, errors=handle.errors, newline="")
    with handle:
        reader = csv.reader(handle, dialect)
        try:
            header = next(reader)
        except StopIteration:
            on_problem(Problem(source, "warning", "no rows, nothing to ingest"))
            return
        header = [h.strip() for h in header]
        if text_column not in header:
            on_problem(Problem(source, "error", f"no column {text_column!r}; columns found: {header}; set the text "
                                                "column with `--text-column NAME` or `ingest.text_column` in the config"))
            return
        col = header.index(text_column)
        rows = _RowProblems(source, on_problem)
        yielded = False
        n = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                n += 1
                rows.add(f"{source}#row{n}", "error", f"bad CSV row ({exc}), skipped")
                continue
            if not values:
                continue
            n += 1
            where = f"{source}#row{n}"
            if len(values) != len(header):
                rows.add(where, "warning", f"has {len(values)} fields, header has {len(header)}")
            text = values[col] if col < len(values) else ""
            if not text.strip():
                rows.add(where, "warning", f"{text_column!r} is empty, row skipped")
                continue
            metadata = {h: v for h, v in zip(header, values) if h != text_column}
            yielded = True
            yield Document(where, text, metadata, 0)
        rows.close()
    if not yielded and rows.count == 0:
        on_problem(Problem(source, "warning", "header only, no rows, nothing to ingest"))


def _csv_dialect(sample: str, text_column: str):
    """Comma unless the header only makes sense with another delimiter."""
    first = sample.splitlines()[0] if sample else ""
    if text_column in next(csv.reader([first]), []):
        return csv.excel
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


_READERS = {
    ".txt": _read_text, ".md": _read_text, ".pdf": _read_pdf, ".docx": _read_docx,
    ".jsonl": _read_jsonl, ".csv": _read_csv,
}
