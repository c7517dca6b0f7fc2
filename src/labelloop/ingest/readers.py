"""Walk the input folder and hand each supported file to its format's reader; report every problem.

Readers never raise on bad input: they call `on_problem` with a `Problem` and go on. A
bug in labelloop's own code is not bad input and propagates. The formats live in
`textfiles` (.txt, .md), `office` (.pdf, .docx) and `records` (.jsonl, .csv).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from labelloop.ingest.documents import Document, OnProblem, Problem
from labelloop.ingest.office import read_docx, read_pdf
from labelloop.ingest.records import read_csv, read_jsonl
from labelloop.ingest.textfiles import read_text

__all__ = ["SUPPORTED", "Document", "OnProblem", "Problem", "iter_documents", "iter_files", "read_file",
           "supported_list"]

Reader = Callable[[Path, str, str, OnProblem], Iterator[Document]]


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
    """Documents of one file; an unreadable or broken file yields nothing more and one problem.

    Only what says the file is bad is caught here: OSError (cannot open or read it) and
    UnicodeDecodeError (bytes its encoding cannot decode). Each reader catches what its own
    library raises on a corrupt file; anything else is a bug in labelloop and propagates.
    """
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
    except UnicodeDecodeError as exc:
        on_problem(Problem(source, "error", f"cannot decode as {exc.encoding} ({exc.reason}), the rest of the file "
                                            "skipped; re-save it as UTF-8"))


_READERS: dict[str, Reader] = {
    ".txt": read_text, ".md": read_text, ".pdf": read_pdf, ".docx": read_docx,
    ".jsonl": read_jsonl, ".csv": read_csv,
}
SUPPORTED = tuple(_READERS)
