"""Where a run's files go, in the layout Augmentoolkit documents (labelloop.files writes them atomically)."""

from __future__ import annotations

import shutil
from pathlib import Path


def label_key(config) -> str:
    """The field a row's label goes in: `label` (a class), or `labels` (multi-label: a list of classes)."""
    return "labels" if config.multi_label else "label"


def classifier_dir(output_dir: Path, n: int) -> Path:
    return output_dir / "classifiers" / f"classifier_{n}"


def dataset_path(output_dir: Path, n: int) -> Path:
    return output_dir / "classifiers" / "datasets" / f"dataset_{n}.jsonl"


def truth_path(output_dir: Path) -> Path:
    return output_dir / "classifiers" / "truth_labels_classification" / "llm_classifications.yaml"


def predictions_path(output_dir: Path) -> Path:
    return output_dir / "final_classifier_output" / "predictions.jsonl"


_TEMP_PREFIXES = (".classifier_", ".dataset_", ".predictions.jsonl.", ".llm_classifications.yaml.",
                  ".report.html.", ".rules_creation_generation.yaml.", ".meta_dataset.jsonl.")


def clean_stale_temps(output_dir: Path) -> None:
    """Remove half-written temp folders/files a killed run left behind."""
    if not output_dir.is_dir():
        return
    for p in output_dir.rglob(".*"):
        if p.name.startswith(_TEMP_PREFIXES) and p.exists():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
