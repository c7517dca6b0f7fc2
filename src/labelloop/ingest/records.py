"""Row formats: one Document per JSONL line or CSV row, the text under `text_column`.

A bad row is reported (capped at MAX_ROW_PROBLEMS per file) and skipped; the other rows are read.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from labelloop.ingest.documents import Document, OnProblem, Problem
from labelloop.ingest.textfiles import SAMPLE_BYTES, open_text

MAX_ROW_PROBLEMS = 20


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


def read_jsonl(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    """One Document per JSON object line with a string under text_column."""
    handle = open_text(path, source, on_problem)
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
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, a too-long integer, too deep nesting
                rows.add(where, "error", f"not valid JSON ({_json_error(exc)}), line skipped; fix or remove it")
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


def read_csv(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    """One Document per CSV row with text in the text_column column."""
    handle = open_text(path, source, on_problem)
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
        except csv.Error as exc:
            on_problem(Problem(source, "error", f"bad CSV header ({exc}), file skipped; fix its first line"))
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


def _json_error(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}, column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _csv_dialect(sample: str, text_column: str) -> type[csv.Dialect] | csv.Dialect:
    """Comma unless the header only makes sense with another delimiter."""
    first = sample.splitlines()[0] if sample else ""
    try:
        if text_column in next(csv.reader([first]), []):
            return csv.excel
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:  # an odd first line or no delimiter found: the reader reports the rows
        return csv.excel
