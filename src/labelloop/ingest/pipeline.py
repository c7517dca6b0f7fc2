"""Ingest the input folder into the store: read, chunk, dedupe, record; report every problem.

A file is skipped when the store already holds it with the same sha256. Documents are
chunked in batches across files (fast tokenization); a big streamed file is written in
batches as it is read and recorded with its real sha256 only after its last part, so a
re-run adds nothing and a killed run re-reads the file (its chunks then dedupe).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text

from labelloop.config import Config
from labelloop.files import sha256_file
from labelloop.errors import IngestError
from labelloop.ingest.chunking import chunker_for
from labelloop.ingest.readers import Document, Problem, iter_files, read_file, supported_list
from labelloop.store import Dropped, NewChunk, Store, text_hash

INCOMPLETE = "incomplete:"  # sha256 prefix of a document whose parts are still being written
BATCH_CHARS = 1 << 20
BATCH_DOCS = 512
BATCH_FILES = 256


@dataclass
class IngestReport:
    """What one ingest run saw and did."""

    input_dir: str = ""
    files_seen: int = 0
    files_ingested: int = 0
    documents: int = 0
    new_chunks: int = 0
    duplicate_chunks: int = 0
    skipped_already_ingested: int = 0
    unchanged_chunks: int = 0
    dropped_chunks: int = 0
    problems: list[Problem] = field(default_factory=list)
    extensions: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> str:
        changed = ""
        if self.unchanged_chunks or self.dropped_chunks:
            changed = (f", {self.unchanged_chunks} unchanged chunk(s) of changed file(s) kept, "
                       f"{self.dropped_chunks} stale chunk(s) dropped")
        return (
            f"Ingested {self.files_ingested} of {self.files_seen} file(s) from {self.input_dir} "
            f"({self.documents} document(s)): {self.new_chunks} new chunk(s), "
            f"{self.duplicate_chunks} duplicate chunk(s){changed}; {self.skipped_already_ingested} file(s) "
            f"already ingested, skipped; {len(self.errors)} error(s), {len(self.warnings)} warning(s)."
        )

    def render(self) -> Text:
        """The summary line and one line per problem (a rich Text; str() gives plain text)."""
        out = Text(self.summary())
        for p in self.problems:
            out.append("\n")
            out.append(f"  {p.severity:<7} ", style="bold red" if p.severity == "error" else "yellow")
            out.append(f"{p.path}: {' '.join(p.message.split())}")
        return out


@dataclass
class _FileState:
    path: Path
    source: str
    sha256: str
    size: int
    ingest_pass: str = field(default_factory=lambda: uuid.uuid4().hex)  # this reading of the file
    done: bool = False
    written: int = 0
    problems: list[Problem] = field(default_factory=list)
    positions: Counter = field(default_factory=Counter)


def file_sha256(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a file."""
    size = os.stat(path).st_size
    return sha256_file(path), size


def count_chunks(config: Config, text_column: str | None = None) -> tuple[int, float | None]:
    """(distinct chunks, their mean length in characters) that ingest would make; reads, writes nothing."""
    chunker = chunker_for(config)
    seen: set[str] = set()
    chars = 0
    column = text_column or config.ingest.text_column
    for path, source in iter_files(Path(config.path.input_dir), lambda _p: None):
        texts = [doc.text for doc in read_file(path, source, text_column=column, on_problem=lambda _p: None)]
        for chunks in chunker.chunk_many(texts) if texts else []:
            for text, _n in chunks:
                h = text_hash(text)
                if h not in seen:
                    seen.add(h)
                    chars += len(text)
    return len(seen), (chars / len(seen) if seen else None)


def ingest(config: Config, store: Store, *, progress: bool = True, text_column: str | None = None) -> IngestReport:
    """Read config.path.input_dir into the store; raise IngestError only if the store is left with no chunks."""
    return _Run(config, store, text_column or config.ingest.text_column).run(progress)


class _Run:
    """One ingest pass; holds the batch of documents waiting to be chunked and written."""

    def __init__(self, config: Config, store: Store, text_column: str):
        self.root = Path(config.path.input_dir)
        self.store = store
        self.text_column = text_column
        self.chunker = chunker_for(config)
        self.report = IngestReport(input_dir=str(self.root))
        self.pending: list[tuple[_FileState, Document]] = []
        self.pending_chars = 0
        self.finished: list[_FileState] = []
        self.current: _FileState | None = None
        self.recorded = {(r["path"], r["severity"], r["message"]) for r in store.ingest_problems()}

    def problem(self, p: Problem, state: _FileState | None = None) -> None:
        """Report every problem in this run's report; store each distinct one once across runs."""
        self.report.problems.append(p)
        if (p.path, p.severity, p.message) not in self.recorded:
            self.recorded.add((p.path, p.severity, p.message))
            self.store.add_ingest_problem(p.path, p.severity, p.message)
        state = state or self.current
        if state is not None:
            state.problems.append(p)

    def run(self, progress: bool) -> IngestReport:
        files = list(iter_files(self.root, self.problem))
        bar = _progress() if progress and files else nullcontext()
        with bar as prog:
            task = prog.add_task("ingest", total=len(files)) if prog else None
            for path, source in files:
                if prog:
                    prog.update(task, description=f"ingest {_short(source)}")
                self.ingest_file(path, source)
                if prog:
                    prog.advance(task)
            self.flush()
            if prog:
                prog.update(task, description="ingested")
        self.current = None
        nothing_now = self.report.files_ingested == 0 and self.report.skipped_already_ingested == 0
        if nothing_now and self.store.counts()["chunks"] == 0:
            raise self.nothing_error()
        return self.report

    def ingest_file(self, path: Path, source: str) -> None:
        self.report.files_seen += 1
        self.report.extensions[path.suffix.lower()] += 1
        try:
            sha, size = file_sha256(path)
        except OSError as exc:
            self.current = None
            self.problem(Problem(source, "error", f"cannot read ({exc.strerror or exc}); fix its permissions "
                                                  "(chmod u+r) or remove it"))
            return
        if self.store.document_seen(source, sha):
            self.report.skipped_already_ingested += 1
            return
        state = _FileState(path, source, sha, size)
        self.current = state
        for doc in read_file(path, source, text_column=self.text_column, on_problem=self.problem):
            self.report.documents += 1
            self.pending.append((state, doc))
            self.pending_chars += len(doc.text)
            if self.pending_chars >= BATCH_CHARS or len(self.pending) >= BATCH_DOCS:
                self.flush()
        state.done = True
        self.finished.append(state)
        self.current = None
        if len(self.finished) >= BATCH_FILES:
            self.flush()

    def flush(self) -> None:
        """Chunk the pending documents and write them; record files whose last part is in."""
        results = self.chunker.chunk_many([doc.text for _, doc in self.pending]) if self.pending else []
        by_file: dict[int, tuple[_FileState, list[NewChunk]]] = {}
        for (state, doc), chunks in zip(self.pending, results):
            entry = by_file.setdefault(id(state), (state, []))[1]
            for text, n in chunks:
                position = state.positions[doc.source]
                state.positions[doc.source] += 1
                entry.append(NewChunk(text=text, source=doc.source, position=position, n_tokens=n, metadata=doc.metadata))
        for state in self.finished:
            by_file.setdefault(id(state), (state, []))
        for state, chunks in by_file.values():
            if state.done:
                self.finish(state, chunks)
            elif chunks:
                self.write(state, chunks, INCOMPLETE + state.sha256, "incomplete", "still being ingested",
                           last_part=False)
        self.pending, self.pending_chars, self.finished = [], 0, []

    def write(self, state: _FileState, chunks: list[NewChunk], sha: str, status: str, message: str | None,
              last_part: bool = True) -> None:
        added = self.store.add_document(state.source, sha, state.size, chunks, status=status, message=message,
                                        ingest_pass=state.ingest_pass, last_part=last_part)
        state.written += len(chunks)
        self.report.new_chunks += added.new
        self.report.duplicate_chunks += added.duplicate
        self.report.unchanged_chunks += added.unchanged
        self.dropped(state, added.dropped)

    def dropped(self, state: _FileState, dropped: Dropped) -> None:
        """Count and report the stale chunks a changed file's re-ingest deleted."""
        self.report.dropped_chunks += dropped.chunks
        if dropped.chunks:
            self.problem(Problem(state.source, "warning", f"changed since the last ingest (now sha256 "
                                                          f"{state.sha256[:12]}): {dropped}"), state)

    def finish(self, state: _FileState, chunks: list[NewChunk]) -> None:
        if state.written + len(chunks) == 0:
            if not state.problems:
                self.problem(Problem(state.source, "warning", "no text found, nothing ingested"), state)
            self.dropped(state, self.store.retire_file(state.source, state.ingest_pass))
            return
        status, message = "ok", None
        if state.problems:
            status = "problems"
            message = f"{len(state.problems)} problem(s); first: {state.problems[0].message}"
        self.write(state, chunks, state.sha256, status, message)
        self.report.files_ingested += 1

    def nothing_error(self) -> IngestError:
        r = self.report
        found = ", ".join(f"{n} {ext}" for ext, n in sorted(r.extensions.items())) or "no supported files"
        shown = "\n".join(f"  {p}" for p in r.problems[:10])
        more = f"\n  ... and {len(r.problems) - 10} more" if len(r.problems) > 10 else ""
        problems = f"\nProblems:\n{shown}{more}" if r.problems else ""
        err = IngestError(
            f"nothing could be ingested from {r.input_dir}: found {found} ({r.files_seen} readable file(s)); "
            f"supported: {supported_list()}. Put documents there, fix the problems below, or point "
            f"path.input_dir at your documents.{problems}"
        )
        err.report = r  # type: ignore[attr-defined]
        return err


def _short(source: str, width: int = 40) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3):]


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False
    )
