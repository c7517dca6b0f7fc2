"""Export every chunk with its final label and where that label came from, as JSONL or CSV."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from labelloop import labels as policy
from labelloop.errors import LabelloopError
from labelloop.store import Label, Store

FORMATS = ("jsonl", "csv")
COLUMNS = [
    "chunk_id", "text", "source", "position", "split",
    "label", "label_source", "status", "confidence",
    "llm_small_label", "llm_small_confidence", "llm_small_status",
    "llm_large_label", "llm_large_confidence", "llm_large_status",
    "human_label", "human_status", "human_from_student",
    "student_label", "student_confidence",
]


def columns(multi_label: bool) -> list[str]:
    """The export's columns; a multi-label project's label columns hold lists (`labels`, `human_labels`, ...)."""
    if not multi_label:
        return list(COLUMNS)
    return [c + "s" if c == "label" or c.endswith("_label") else c for c in COLUMNS]


def is_multi_label(store: Store) -> bool:
    """Whether the project was labeled with label sets (recorded by `labelloop run`)."""
    return bool(store.get_meta("multi_label"))


def export_rows(store: Store) -> list[dict]:
    """One dict per chunk (in chunk order) with the columns of columns(multi_label)."""
    held = store.labels_of_chunks()
    rows = [_row(chunk, held.get(chunk.id, {})) for chunk in store.chunks()]
    return [_as_sets(row) for row in rows] if is_multi_label(store) else rows


def _row(chunk, labels: dict[str, Label]) -> dict:
    """One chunk's export row (label columns as stored); its status and label are labelloop.labels'."""
    human, student = labels.get(policy.HUMAN), labels.get(policy.STUDENT)
    chosen = policy.final(labels)
    status = policy.status_of(labels)
    return {
        "chunk_id": chunk.id, "text": chunk.text, "source": chunk.source, "position": chunk.position,
        "split": chunk.split,
        "label": chosen.label if chosen is not None else None,
        # a discard has no label, on purpose: a person's decision
        "label_source": chosen.source if chosen is not None else (policy.HUMAN if policy.is_discard(human) else None),
        "status": status,
        "confidence": chosen.confidence if chosen is not None else None,
        **_source_columns("llm_small", labels.get(policy.SMALL)),
        **_source_columns("llm_large", labels.get(policy.LARGE)),
        "human_label": human.label if human is not None else None,
        "human_status": human.status if human is not None else None,
        "human_from_student": policy.began_as_student(human) if human is not None else None,
        "student_label": student.label if student is not None else None,
        "student_confidence": student.confidence if student is not None else None,
    }


def _as_sets(row: dict) -> dict:
    """A row's label columns as lists of classes (multi-label), under their plural names."""
    out = {}
    for key, value in row.items():
        if key == "label" or key.endswith("_label"):
            out[key + "s"] = policy.decode_set(value) if value is not None else None
        else:
            out[key] = value
    return out


def _cell(value):
    """A CSV cell: empty for none, a label set as its JSON list."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value


def _source_columns(prefix: str, lab: Label | None) -> dict:
    return {
        f"{prefix}_label": lab.label if lab is not None else None,
        f"{prefix}_confidence": lab.confidence if lab is not None else None,
        f"{prefix}_status": lab.status if lab is not None else None,
    }


def export_labels(store: Store, out_path: Path, fmt: str = "jsonl") -> int:
    """Write every chunk with its final label to `out_path` (jsonl or csv); return the rows written.

    In CSV an empty cell means "none"; JSONL keeps null and numbers as they are.
    """
    if fmt not in FORMATS:
        raise LabelloopError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)} "
                             "(pass --format jsonl or --format csv)")
    out_path = Path(out_path)
    if out_path.is_dir():
        raise LabelloopError(f"{str(out_path)!r} is a folder; give a file path such as {out_path / ('labels.' + fmt)}")
    rows = export_rows(store)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(f, fieldnames=columns(is_multi_label(store)), quoting=csv.QUOTE_MINIMAL)
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    os.replace(tmp, out_path)
    return len(rows)
