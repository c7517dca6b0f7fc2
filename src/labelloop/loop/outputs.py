"""Files a run writes, in the layout Augmentoolkit documents. Folders appear complete or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml


def classifier_dir(output_dir: Path, n: int) -> Path:
    return output_dir / "classifiers" / f"classifier_{n}"


def dataset_path(output_dir: Path, n: int) -> Path:
    return output_dir / "classifiers" / "datasets" / f"dataset_{n}.jsonl"


def truth_path(output_dir: Path) -> Path:
    return output_dir / "classifiers" / "truth_labels_classification" / "llm_classifications.yaml"


def predictions_path(output_dir: Path) -> Path:
    return output_dir / "final_classifier_output" / "predictions.jsonl"


def save_folder_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder into a temp sibling, then rename it into place: complete or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator:
    """Open a temp file beside path; it replaces path only when the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_file(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_yaml(path: Path, data) -> None:
    with atomic_file(path) as fh:
        yaml.safe_dump(data, fh, sort_keys=False, allow_unicode=True, width=100)


_TEMP_PREFIXES = (".classifier_", ".dataset_", ".predictions.jsonl.", ".llm_classifications.yaml.",
                  ".report.html.", ".rules_creation_generation.yaml.", ".meta_dataset.jsonl.")


def clean_stale_temps(output_dir: Path) -> None:
    """Remove half-written temp folders/files a killed run left behind."""
    if not output_dir.is_dir():
        return
    for p in output_dir.rglob(".*"):
        if p.name.startswith(_TEMP_PREFIXES) and p.exists():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
