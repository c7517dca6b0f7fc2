"""`labelloop predict`: run a saved student over files, batched; never loads an LLM."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelloop.errors import LabelloopError
from labelloop.loop.outputs import atomic_file


def run_info(model_dir: Path) -> dict:
    path = Path(model_dir) / "labelloop_run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def student_input_for(model_dir: Path) -> Callable[[list[str]], list[str]]:
    """The truncation the model was trained with (head-tail unless its folder says otherwise)."""
    from labelloop.loop.student_input import make_student_input

    cfg_path = Path(model_dir) / "labelloop.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    info = run_info(model_dir)
    encoder = None
    if (Path(model_dir) / "body").is_dir():
        encoder = str(Path(model_dir) / "body")
    elif (Path(model_dir) / "tokenizer.json").exists():
        encoder = str(model_dir)
    return make_student_input(encoder, cfg.get("max_seq_length"), info.get("truncation_type", "head-tail"))


def iter_predictions(
    student, texts: Sequence[str], student_input, batch_size: int = 64, *, progress: bool = True
) -> Iterator[dict]:
    classes = list(student.classes_)
    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("predict", total=len(texts), rate="")
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            probs = student.predict_proba(student_input(batch))
            for text, p in zip(batch, probs):
                i = int(np.argmax(p))
                yield {
                    "text": text,
                    "label": classes[i],
                    "confidence": float(p[i]),
                    "probs": {c: float(v) for c, v in zip(classes, p)},
                    "source": "student",
                }
            bar.update(task, advance=len(batch))


def read_inputs(path: Path, text_column: str = "text", chunk_size: int = 256, encoder: str | None = None) -> list[dict]:
    """Texts to predict: a .jsonl with `text` (one row each), or files/folders chunked as in ingest."""
    path = Path(path)
    if not path.exists():
        raise LabelloopError(f"input {str(path)!r} does not exist; pass a .jsonl file, a document, or a folder")
    from labelloop.ingest.chunking import Chunker, load_tokenizer
    from labelloop.ingest.readers import iter_documents

    problems = []
    chunker = Chunker(load_tokenizer(encoder), chunk_size)
    rows = []
    if path.is_file():
        root, only = path.parent, path
    else:
        root, only = path, None
    for doc in iter_documents(root, text_column=text_column, on_problem=problems.append):
        if only is not None and not doc.source.split("#")[0] == only.name:
            continue
        for i, (chunk, _n) in enumerate(chunker.chunk(doc.text)):
            rows.append({"input": doc.source, "position": i, "text": chunk})
    for p in problems:
        if only is None or p.path.endswith(only.name):
            print(f"warning: {p.path}: {p.message}")
    return rows


def predict_path(
    model_dir: Path, input_path: Path, output: Path, *, batch_size: int = 64, text_column: str = "text", progress: bool = True
) -> int:
    from labelloop.classify import load_student

    model_dir = Path(model_dir)
    if not (model_dir / "labelloop.json").exists():
        raise LabelloopError(
            f"{str(model_dir)!r} is not a labelloop classifier folder (no labelloop.json); "
            "pass one of <output_dir>/classifiers/classifier_<N>"
        )
    student = load_student(model_dir)
    info = run_info(model_dir)
    rows = read_inputs(input_path, text_column, info.get("chunk_size", 256))
    prepare = student_input_for(model_dir)
    n = 0
    with atomic_file(Path(output)) as fh:
        preds = iter_predictions(student, [r["text"] for r in rows], prepare, batch_size, progress=progress)
        for row, pred in zip(rows, preds):
            fh.write(json.dumps({"input": row["input"], "position": row["position"], **pred}, ensure_ascii=False) + "\n")
            n += 1
    return n
