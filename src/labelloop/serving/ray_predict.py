"""`labelloop predict --engine ray`: the single engine's steps as a Ray Data pipeline.

files (listed on the driver) -> flat_map(read + chunk) -> map_batches(student, one per actor)
-> write_json / write_parquet; then the written chunk rows -> groupby(input) -> one document row
each (the single engine's document_row on the chunks' pooled probabilities) -> a second folder
beside the first (documents_path). Rows and predictions are the single engine's: the same
input_files / chunk_file / load_predictor / student_input_for / answer_rows / document_row.
On a cluster (--address), MODEL_DIR, INPUT and OUTPUT must be at the same path on every
node (a shared file system) and labelloop installed there.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from labelloop.classify.decision import DocumentPool
from labelloop.errors import LabelloopError
from labelloop.serving import PART_FORMATS
from labelloop.serving.predict import (
    CHUNK,
    answer_rows,
    chunk_file,
    check_model_dir,
    document_row,
    documents_path,
    input_files,
    load_predictor,
    make_chunker,
    pick_runtime,
    print_problem,
    student_input_for,
    thresholds_of,
)

INSTALL_HINT = "pip install 'labelloop[ray]'"
_OUR_ERROR = re.compile(r"labelloop\.errors\.\w+: (.+)")
_QUIET_LOGGERS = ("ray", "ray.data", "ray._private", "ray.train", "ray.tune")


def import_ray():
    """The ray module, or an error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships as an extra of the ray wheel
    except ImportError as exc:
        raise LabelloopError(
            f"--engine ray needs Ray Data, which is not installed ({exc}); install it with {INSTALL_HINT}, "
            "or leave --engine at its default (local)"
        ) from None
    return ray


@contextmanager
def output_to_file(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (fds 1 and 2, where Ray's C++ parts write) to a file for a while."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(path, "ab") as fh:
        for fd in saved:
            os.dup2(fh.fileno(), fd)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


@contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[Any]:
    """Ray connected to `address`, or a local instance of `workers` CPUs started for the run and shut down after."""
    ray = import_ray()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if ray.is_initialized():  # a caller (a test, a notebook) already holds a session: use it
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise LabelloopError(
            f"cannot start or reach {where} ({type(exc).__name__}: {exc}); check --address "
            "(e.g. ray://head:10001 or head:6379, or 'auto' on a cluster node), or leave it out to run locally"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


class _RunLog:
    """A tiny actor: rows written and input problems, reported by the workers."""

    def __init__(self) -> None:
        self.rows = 0
        self.problems: list[tuple[str, str]] = []

    def add_rows(self, n: int) -> None:
        self.rows += n

    def add_problems(self, problems: list[tuple[str, str]]) -> None:
        self.problems.extend(problems)

    def summary(self) -> tuple[int, list[tuple[str, str]]]:
        return self.rows, self.problems


@lru_cache(maxsize=4)
def _chunker(model_dir: str):
    return make_chunker(student_input_for(Path(model_dir)))


def _chunk_rows(item: dict, *, model_dir: str, text_column: str, log) -> list[dict]:
    """flat_map step: one file's chunk rows, cut as the student's ingest cut them; problems go to the run log."""
    problems: list = []
    rows = chunk_file(Path(item["path"]), item["source"], _chunker(model_dir), text_column, problems.append)
    if problems:
        import ray

        ray.get(log.add_problems.remote([(p.path, p.message) for p in problems]))
    return rows


class _Predictor:
    """map_batches step: the student, loaded once per actor."""

    def __init__(self, model_dir: str, runtime: str, log):
        self.student = load_predictor(Path(model_dir), runtime)
        self.prepare = student_input_for(Path(model_dir))
        self.classes = list(self.student.classes_)
        self.thresholds = thresholds_of(self.student)
        self.log = log

    def __call__(self, batch):
        import numpy as np
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        probs = np.asarray(self.student.predict_proba(self.prepare(texts)), dtype=np.float64)
        head = {"input": batch.column("input"), "position": batch.column("position"),
                "kind": pa.array([CHUNK] * len(texts), pa.string()), "text": batch.column("text")}
        out = answer_table(head, answer_rows(probs, self.classes, self.thresholds), self.classes, self.thresholds)
        import ray

        ray.get(self.log.add_rows.remote(len(texts)))  # counted before the batch is handed on
        return out


def answer_table(head: dict, rows: list[dict], classes: list[str], thresholds) -> Any:
    """A pyarrow table: the head columns, then answer_rows' fields with fixed types (so every block has one schema)."""
    import pyarrow as pa

    out = dict(head)
    if thresholds is None:
        out["label"] = pa.array([r["label"] for r in rows], pa.string())
    else:
        out["labels"] = pa.array([r["labels"] for r in rows], pa.list_(pa.string()))
    out["confidence"] = pa.array([r["confidence"] for r in rows], pa.float64())
    per_class = pa.struct([(c, pa.float64()) for c in classes])
    out["probs"] = pa.array([r["probs"] for r in rows], per_class)
    if thresholds is not None:
        out["thresholds"] = pa.array([r["thresholds"] for r in rows], per_class)
    out["source"] = pa.array([r["source"] for r in rows], pa.string())
    return pa.table(out)


def _document_rows(group, *, classes: list[str]) -> Any:
    """map_groups step: one input's chunk rows (as written) -> its document row, by the chunks' own thresholds."""
    import numpy as np
    import pyarrow as pa

    group = group.sort_by("position")
    probs = group.column("probs").combine_chunks()
    matrix = np.column_stack([probs.field(c).to_numpy(zero_copy_only=False) for c in classes])
    thresholds = None
    if "thresholds" in group.column_names:
        first = group.column("thresholds")[0].as_py()
        thresholds = np.asarray([first[c] for c in classes], dtype=np.float64)
    row = document_row(group.column("input")[0].as_py(), DocumentPool(thresholds is not None).add(matrix),
                       classes, thresholds)
    head = {"input": pa.array([row["input"]], pa.string()), "kind": pa.array([row["kind"]], pa.string()),
            "chunks": pa.array([row["chunks"]], pa.int64())}
    return answer_table(head, [row], classes, thresholds)


def predict_ray(
    model_dir: Path, input_path: Path, output: Path, *, address: str | None = None, workers: int = 2,
    batch_size: int = 64, text_column: str = "text", runtime: str = "auto", fmt: str = "jsonl",
    preserve_order: bool = True, documents: Path | None = None,
) -> int:
    """Predict every chunk of input_path into the folder `output` (part files), and each input's answer into the
    folder `documents` (default documents_path(output)); the number of chunk rows written."""
    model_dir = check_model_dir(model_dir).resolve()
    output = Path(output).resolve()
    documents = Path(documents).resolve() if documents is not None else documents_path(output)
    if fmt not in PART_FORMATS:
        raise LabelloopError(f"unknown output format {fmt!r}; expected one of {list(PART_FORMATS)} (--format)")
    if workers < 1:
        raise LabelloopError(f"--workers must be at least 1, got {workers}")
    if documents == output:
        raise LabelloopError(f"--documents {str(documents)!r} is the --output folder; pass another folder for the "
                             "document rows (default: beside the output, named <output>.documents)")
    for folder, what in ((output, "--output"), (documents, "--documents")):
        if folder.exists() and (folder.is_file() or any(folder.iterdir())):
            raise LabelloopError(
                f"--engine ray writes a folder of part files, and {what} {str(folder)!r} already exists and is not "
                "an empty folder; pass a new folder path or remove it"
            )
    runtime = pick_runtime(model_dir, runtime)  # checked here, before any worker starts
    files = input_files(Path(input_path).resolve(), print_problem)
    ray_log = Path(tempfile.gettempdir()) / f"labelloop-ray-{os.getpid()}.log"
    try:
        with output_to_file(ray_log), ray_session(address, workers) as ray:
            n, problems = _run(ray, files, model_dir, output, documents, workers=workers,
                               batch_size=batch_size, text_column=text_column, runtime=runtime, fmt=fmt,
                               preserve_order=preserve_order, ray_log=ray_log)
    except LabelloopError as exc:
        if str(ray_log) not in str(exc):
            ray_log.unlink(missing_ok=True)  # kept only when the message points to it
        raise
    ray_log.unlink(missing_ok=True)
    for path, message in problems:
        print(f"warning: {path}: {message}")
    return n


def _run(ray, files, model_dir: Path, output: Path, documents: Path, *, workers: int, batch_size: int,
         text_column: str, runtime: str, fmt: str, preserve_order: bool, ray_log: Path) -> tuple[int, list]:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.execution_options.preserve_order = preserve_order
    ctx.execution_options.verbose_progress = False
    log = ray.remote(num_cpus=0)(_RunLog).remote()
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    doc_staging = documents.parent / f".{documents.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        if files:
            items = [{"path": str(p.resolve()), "source": s} for p, s in files]
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), 16 * workers))
            ds = ds.flat_map(_chunk_rows, fn_kwargs={"model_dir": str(model_dir), "text_column": text_column,
                                                     "log": log},
                             num_cpus=0, concurrency=workers)
            ds = ds.map_batches(_Predictor, fn_constructor_kwargs={"model_dir": str(model_dir), "runtime": runtime,
                                                                  "log": log},
                                batch_size=batch_size, batch_format="pyarrow", concurrency=workers, num_cpus=1)
            write = ds.write_parquet if fmt == "parquet" else ds.write_json
            _execute(write, str(staging), ray_log)
            if staging.exists():
                _execute(lambda path: _write_documents(ray, staging, model_dir, fmt, path), str(doc_staging), ray_log)
        for part, final in ((staging, output), (doc_staging, documents)):
            part.mkdir(parents=True, exist_ok=True)
            if final.exists():
                final.rmdir()  # checked empty before the run
            os.replace(part, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(doc_staging, ignore_errors=True)
    n, problems = ray.get(log.summary.remote())
    return n, problems


def _write_documents(ray, chunk_dir: Path, model_dir: Path, fmt: str, path: str) -> None:
    """Write the document rows of the chunk rows in chunk_dir: grouped by input, pooled as the single engine pools."""
    from labelloop.classify.folder import read_meta

    ds = (ray.data.read_parquet if fmt == "parquet" else ray.data.read_json)(str(chunk_dir))
    keep = [c for c in ("input", "position", "probs", "thresholds") if c in ds.columns()]
    docs = ds.select_columns(keep).groupby("input").map_groups(
        _document_rows, fn_kwargs={"classes": list(read_meta(model_dir)["classes"])}, batch_format="pyarrow")
    (docs.write_parquet if fmt == "parquet" else docs.write_json)(path)


def _execute(write, path: str, ray_log: Path) -> None:
    """Run the pipeline; a worker's error comes back as the project's error, without Ray's traceback."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.")
            write(path)
    except Exception as exc:  # noqa: BLE001 - Ray wraps worker errors in its own types
        ours = _labelloop_message(exc)
        if ours is not None:
            raise LabelloopError(ours) from None
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise LabelloopError(
            f"the Ray pipeline failed ({type(exc).__name__}: {lines[-1] if lines else ''}); Ray's messages are in "
            f"{ray_log}; run again with --debug for the full traceback, or with the default --engine local"
        ) from exc


def _labelloop_message(exc: BaseException) -> str | None:
    """The message of a labelloop error raised in a worker, found in the chain Ray wraps it in (or its text)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, LabelloopError) and "Traceback" not in str(current):
            return str(current)
        matches = _OUR_ERROR.findall(str(current))
        found = matches[-1] if matches else found
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return found
