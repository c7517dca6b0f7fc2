"""`labelloop predict`: run a saved student over files, batched; never loads an LLM.

The single-process engine lives here; labelloop.serving.ray_predict runs the same steps
(input_files -> chunk_file -> load_predictor + student_input_for) on Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelloop import labels as policy
from labelloop.errors import LabelloopError
from labelloop.files import atomic_file
from labelloop.serving import RUNTIMES
from labelloop.classify.student_input import StudentInput



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


def prediction_fields(p: np.ndarray, classes: list[str], thresholds: np.ndarray | None = None) -> dict:
    """label, confidence, probs and source of one probability row.

    Multi-label (thresholds given): `labels` (every class whose probability reaches its threshold, maybe
    none), each class's probability, the thresholds, and the least sure decision as the confidence.
    """
    if thresholds is not None:
        from labelloop.classify.thresholds import apply_thresholds

        return {
            "labels": apply_thresholds(p[None, :], thresholds, classes)[0],
            "confidence": float(np.min(np.maximum(p, 1.0 - p))),
            "probs": {c: float(v) for c, v in zip(classes, p)},
            "thresholds": {c: float(t) for c, t in zip(classes, thresholds)},
            "source": policy.STUDENT,
        }
    i = int(np.argmax(p))
    return {
        "label": classes[i],
        "confidence": float(p[i]),
        "probs": {c: float(v) for c, v in zip(classes, p)},
        "source": policy.STUDENT,
    }


def iter_predictions(
    student, texts: Sequence[str], student_input, batch_size: int = 64, *, progress: bool = True
) -> Iterator[dict]:
    classes = list(student.classes_)
    thresholds = thresholds_of(student)
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("predict", total=len(texts), rate="")
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            probs = student.predict_proba(student_input(batch))
            for text, p in zip(batch, probs):
                yield {"text": text, **prediction_fields(p, classes, thresholds)}
            bar.update(task, advance=len(batch))


def input_files(path: Path, on_problem: Callable) -> list[tuple[Path, str]]:
    """(file, source name) pairs to read: the file itself, or every supported file under a folder."""
    from labelloop.ingest.readers import iter_files

    path = Path(path)
    if not path.exists():
        raise LabelloopError(f"input {str(path)!r} does not exist; pass a .jsonl file, a document, or a folder")
    if path.is_file():
        return [(path, path.name)]
    return list(iter_files(path, on_problem))


def chunk_file(path: Path, source: str, chunker, text_column: str, on_problem: Callable) -> list[dict]:
    """Chunk rows of one file: input (its source, row or page), position (running per input), text."""
    from labelloop.ingest.readers import read_file

    rows: list[dict] = []
    positions: dict[str, int] = {}
    for doc in read_file(Path(path), source, text_column=text_column, on_problem=on_problem):
        for chunk, _n in chunker.chunk(doc.text):
            i = positions.get(doc.source, 0)
            positions[doc.source] = i + 1
            rows.append({"input": doc.source, "position": i, "text": chunk})
    return rows


def make_chunker(contract: StudentInput):
    """A Chunker with the student's tokenizer and chunk size, as ingest cut the training chunks."""
    from labelloop.ingest.chunking import Chunker

    return Chunker(contract.tokenizer(), contract.chunk_size)


def print_problem(problem) -> None:
    print(f"warning: {problem.path}: {problem.message}")


def read_inputs(path: Path, contract: StudentInput, text_column: str = "text") -> list[dict]:
    """Texts to predict: a .jsonl with `text` (one row each), or files/folders chunked as in ingest."""
    chunker = make_chunker(contract)
    rows: list[dict] = []
    for file, source in input_files(path, print_problem):
        rows.extend(chunk_file(file, source, chunker, text_column, print_problem))
    return rows


def predict_path(
    model_dir: Path, input_path: Path, output: Path, *, batch_size: int = 64, text_column: str = "text",
    progress: bool = True, runtime: str = "auto",
) -> int:
    """Predict every chunk of input_path into one .jsonl; the number of rows written."""
    model_dir = check_model_dir(model_dir)
    student = load_predictor(model_dir, runtime)
    prepare = student_input_for(model_dir)
    rows = read_inputs(input_path, prepare, text_column)
    n = 0
    with atomic_file(Path(output)) as fh:
        preds = iter_predictions(student, [r["text"] for r in rows], prepare, batch_size, progress=progress)
        for row, pred in zip(rows, preds):
            fh.write(json.dumps({"input": row["input"], "position": row["position"], **pred}, ensure_ascii=False) + "\n")
            n += 1
    return n
