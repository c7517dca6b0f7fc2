"""Score the demo against the true BBC topics (gold.jsonl): teacher labels and the final student."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from labelloop.classify import load_student
from labelloop.evaluate import evaluate
from labelloop.serving.predict import student_input_for
from labelloop.store import Store

HERE = Path(__file__).parent


def main() -> None:
    out = HERE / "output"
    gold = {g["file"]: g["label"] for g in map(json.loads, (HERE / "gold.jsonl").open())}
    store = Store(out / "labelloop.db", create=False)
    classes = store.get_meta("classes")
    truth = {c.id: gold.get(c.source) for c in store.chunks()}
    rows = []
    for source in ("llm-large", "llm-small"):
        labs = [lab for lab in store.labels(source) if truth.get(lab.chunk_id)]
        pred = [lab.label or "(unlabeled)" for lab in labs]
        m = evaluate([truth[lab.chunk_id] for lab in labs], pred, classes)
        rows.append((f"teacher ({source}) on the chunks it labeled", m.n, m.accuracy, m.macro_f1))
    last = [it for it in store.iterations() if it.status == "done"][-1]
    student = load_student(last.model_path)
    prepare = student_input_for(Path(last.model_path))
    labeled = {lab.chunk_id for lab in store.labels() if lab.source in ("llm-small", "llm-large")}
    rest = [c for c in store.chunks() if c.id not in labeled and truth.get(c.id)]
    probs = student.predict_proba(prepare([c.text for c in rest]))
    pred = [student.classes_[i] for i in np.argmax(probs, axis=1)]
    m = evaluate([truth[c.id] for c in rest], pred, classes)
    rows.append(("student on the chunks no LLM labeled", m.n, m.accuracy, m.macro_f1))
    print("| what | chunks | accuracy vs true topic | macro-F1 |\n|---|---|---|---|")
    for name, n, acc, f1 in rows:
        print(f"| {name} | {n} | {acc:.3f} | {f1:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
