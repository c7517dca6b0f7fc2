"""`labelloop predict`: run a saved student over files, streaming in batches; never loads an LLM.

Read, chunk, predict and write a batch of chunks at a time, so memory stays flat in the input's size.
Each chunk gets a row in OUTPUT (`kind: "chunk"`); each input (a .jsonl row, a file, as the rows'
`input` says) gets a row in the documents file beside it (`kind: "document"`): the decision rule
(labelloop.classify.decision) on its chunks' pooled probabilities. The single-process engine lives
here; labelloop.serving.ray_predict runs the same steps on Ray and labelloop.serving.http serves them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelloop import labels as policy
from labelloop.classify.decision import DocumentPool, confidence, decide
from labelloop.classify.student_input import StudentInput
from labelloop.errors import LabelloopError
from labelloop.files import atomic_file
from labelloop.serving import RUNTIMES

CHUNK, DOCUMENT = "chunk", "document"  # a row's `kind`: one chunk's answer, or one input's (pooled over its chunks)
DOCUMENTS_INFIX = ".documents"


def check_model_dir(model_dir: Path) -> Path:
    """The classifier folder, or an error naming what to pass instead."""
    model_dir = Path(model_dir)
    if not (model_dir / "labelloop.json").exists():
        raise LabelloopError(
            f"{str(model_dir)!r} is not a labelloop classifier folder (no labelloop.json); "
            "pass one of <output_dir>/classifiers/classifier_<N>"
        )
    return model_dir


def student_input_for(model_dir: Path) -> StudentInput:
    """What the saved student saw in training (its student_input.json): cut every text the same way."""
    return StudentInput.load(check_model_dir(model_dir))


def pick_runtime(model_dir: Path, runtime: str = "auto") -> str:
    """torch or onnx for this folder: auto means onnx when model.onnx is there and onnxruntime is installed."""
    from labelloop.serving.onnx_runtime import has_onnx

    model_dir = check_model_dir(model_dir)
    if runtime not in RUNTIMES:
        raise LabelloopError(f"unknown runtime {runtime!r}; expected one of {list(RUNTIMES)} (--runtime)")
    if runtime == "onnx" and not has_onnx(model_dir):
        raise LabelloopError(
            f"{str(model_dir)!r} has no model.onnx; write one with `labelloop export {model_dir} --onnx`, "
            "or predict with --runtime torch"
        )
    if runtime == "auto":
        return "onnx" if has_onnx(model_dir) and _onnxruntime_installed() else "torch"
    return runtime


def load_predictor(model_dir: Path, runtime: str = "auto"):
    """The student predict runs: onnxruntime when model.onnx is there (runtime auto), else the saved student."""
    if pick_runtime(model_dir, runtime) == "onnx":
        from labelloop.serving.onnx_runtime import OnnxStudent

        return OnnxStudent.load(model_dir)
    from labelloop.classify import load_student

    return load_student(model_dir)


def _onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def thresholds_of(student) -> np.ndarray | None:
    """A multi-label student's per-class decision thresholds; None for a single-label one."""
    return np.asarray(student.thresholds_, dtype=np.float64) if getattr(student, "multi_label", False) else None


def answer_rows(probs, classes: list[str], thresholds: np.ndarray | None = None) -> list[dict]:
    """label, confidence, probs and source of each probability row, decided by labelloop.classify.decision.

    Multi-label (thresholds given): `labels` (every class whose probability reaches its threshold, maybe
    none), each class's probability, the thresholds, and the least sure decision as the confidence.
    """
    probs = np.asarray(probs, dtype=np.float64)
    answers = decide(probs, classes, thresholds)
    sure = confidence(probs, thresholds)
    key = "label" if thresholds is None else "labels"
    extra = {} if thresholds is None else {"thresholds": {c: float(t) for c, t in zip(classes, thresholds)}}
    return [{key: a, "confidence": float(s), "probs": {c: float(v) for c, v in zip(classes, p)}, **extra,
             "source": policy.STUDENT} for p, a, s in zip(probs, answers, sure)]


def document_row(input_: str | int, pooled: DocumentPool, classes: list[str], thresholds: np.ndarray | None) -> dict:
    """One input's answer: the decision on its chunks' pooled probabilities, with how many chunks it had."""
    return {"input": input_, "kind": DOCUMENT, "chunks": pooled.chunks,
            **answer_rows(pooled.probs()[None, :], classes, thresholds)[0]}


def predict_rows(student, rows: Iterable[dict], prepare, batch_size: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Chunk rows ({input, position, text}) answered batch by batch, each input's document row after its last chunk.

    Streams: one batch of chunks and one pooled row are held at a time, so an input's chunks must come
    together (as chunk_rows yields them).
    """
    classes = list(student.classes_)
    thresholds = thresholds_of(student)
    current, pooled = None, None
    for batch in _batches(rows, batch_size):
        probs = np.asarray(student.predict_proba(prepare([r["text"] for r in batch])), dtype=np.float64)
        for row, p, fields in zip(batch, probs, answer_rows(probs, classes, thresholds)):
            if pooled is None or row["input"] != current:
                if pooled is not None:
                    yield document_row(current, pooled, classes, thresholds)
                current, pooled = row["input"], DocumentPool(thresholds is not None)
            pooled.add(p)
            yield {"input": row["input"], "position": row["position"], "kind": CHUNK, "text": row["text"], **fields}
        if on_batch is not None:
            on_batch(len(batch))
    if pooled is not None:
        yield document_row(current, pooled, classes, thresholds)


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    it = iter(rows)
    while batch := list(islice(it, max(1, size))):
        yield batch


def iter_predictions(
    student, texts: Sequence[str], student_input, batch_size: int = 64, *, progress: bool = True
) -> Iterator[dict]:
    """{text, answer fields} of each text as it is (no chunking): the loop's predictions on stored chunks."""
    classes = list(student.classes_)
    thresholds = thresholds_of(student)
    with _progress(progress, total=len(texts)) as advance:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            probs = student.predict_proba(student_input(batch))
            for text, fields in zip(batch, answer_rows(probs, classes, thresholds)):
                yield {"text": text, **fields}
            advance(len(batch))


@contextmanager
def _progress(show: bool, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A transient progress bar (chunks done, and of how many when known); yields its advance(n)."""
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn() if total is not None
               else TextColumn("{task.completed:.0f} chunks"), TimeRemainingColumn())
    with Progress(*columns, disable=not show, transient=True) as bar:
        task = bar.add_task("predict", total=total)
        yield lambda n: bar.update(task, advance=n)


def input_files(path: Path, on_problem: Callable) -> list[tuple[Path, str]]:
    """(file, source name) pairs to read: the file itself, or every supported file under a folder."""
    return list(iter_input_files(path, on_problem))


def iter_input_files(path: Path, on_problem: Callable) -> Iterator[tuple[Path, str]]:
    """input_files one at a time; a missing path is reported at once, before the first file is asked for."""
    from labelloop.ingest.readers import iter_files

    path = Path(path)
    if not path.exists():
        raise LabelloopError(f"input {str(path)!r} does not exist; pass a .jsonl file, a document, or a folder")
    return iter([(path, path.name)]) if path.is_file() else iter_files(path, on_problem)


def file_chunk_rows(path: Path, source: str, chunker, text_column: str, on_problem: Callable) -> Iterator[dict]:
    """Chunk rows of one file, as read: input (its source, row or page), position (running per input), text."""
    from labelloop.ingest.readers import read_file

    positions: dict[str, int] = {}
    for doc in read_file(Path(path), source, text_column=text_column, on_problem=on_problem):
        for chunk, _n in chunker.chunk(doc.text):
            i = positions.get(doc.source, 0)
            positions[doc.source] = i + 1
            yield {"input": doc.source, "position": i, "text": chunk}


def chunk_file(path: Path, source: str, chunker, text_column: str, on_problem: Callable) -> list[dict]:
    """All chunk rows of one file (Ray's flat_map step)."""
    return list(file_chunk_rows(path, source, chunker, text_column, on_problem))


def make_chunker(contract: StudentInput):
    """The one place serving builds a chunker: the saved contract's, so documents are cut as ingest cut them."""
    return contract.chunker()


def print_problem(problem) -> None:
    print(f"warning: {problem.path}: {problem.message}")


def chunk_rows(path: Path, contract: StudentInput, text_column: str = "text") -> Iterator[dict]:
    """Texts to predict, streamed: a .jsonl with `text` (one input per row), or files/folders chunked as in ingest."""
    files = iter_input_files(path, print_problem)
    chunker = make_chunker(contract)
    return (row for file, source in files for row in file_chunk_rows(file, source, chunker, text_column, print_problem))


def read_inputs(path: Path, contract: StudentInput, text_column: str = "text") -> list[dict]:
    """Every chunk row at once (for tests and benches on small inputs; predict streams chunk_rows)."""
    return list(chunk_rows(path, contract, text_column))


def documents_path(output: Path) -> Path:
    """Where document rows go beside OUTPUT: preds.jsonl -> preds.documents.jsonl; a folder preds -> preds.documents."""
    output = Path(output)
    return output.with_name(f"{output.stem}{DOCUMENTS_INFIX}{output.suffix}")


def predict_path(
    model_dir: Path, input_path: Path, output: Path, *, batch_size: int = 64, text_column: str = "text",
    progress: bool = True, runtime: str = "auto", documents: Path | None = None,
) -> int:
    """Predict every chunk of input_path into one .jsonl, and each input's answer into the documents file
    (documents, default documents_path(output)); the number of chunk rows written.

    Streams in batches of batch_size chunks: memory stays flat whatever the input's size.
    """
    model_dir = check_model_dir(model_dir)
    output = Path(output)
    documents = Path(documents) if documents is not None else documents_path(output)
    if documents.resolve() == output.resolve():
        raise LabelloopError(f"--documents {str(documents)!r} is the --output file; pass another path for the "
                             "document rows (default: beside the output, named *.documents.jsonl)")
    student = load_predictor(model_dir, runtime)
    prepare = student_input_for(model_dir)
    rows = chunk_rows(input_path, prepare, text_column)
    n = 0
    with atomic_file(output) as fh, atomic_file(documents) as dh, _progress(progress) as advance:
        for row in predict_rows(student, rows, prepare, batch_size, advance):
            is_chunk = row["kind"] == CHUNK
            (fh if is_chunk else dh).write(json.dumps(row, ensure_ascii=False) + "\n")
            n += is_chunk
    return n
