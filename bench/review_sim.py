"""A simulated reviewer who knows gold: review k labels chosen by a review queue, then retrain.

The reviewer works only on training chunks (the labels the student learns from), in the
order the review app's queue shows them (labelloop.review.queues), and writes each answer
through the app's own action code (labelloop.review.actions.apply): "accept" when the
suggestion is already the gold label, "correct" to the gold label otherwise. Each queue
starts from a copy of the finished run's project file, so queues never see each other's work.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np

QUEUES = ("random", "disagreements", "label-issues", "low-confidence")


def copy_project(src_db: Path, dst_db: Path):
    """A Store on a consistent copy of a project file (SQLite backup API: safe with WAL)."""
    from labelloop.store import Store

    dst_db.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(src_db), sqlite3.connect(dst_db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return Store(dst_db)


def choose(store, queue: str, k: int, seed: int) -> tuple[list[int], str | None]:
    """Up to k pending training chunk ids in the order the queue shows them, and the queue's note."""
    from labelloop.review.queues import records
    from labelloop.review.records import load

    snap = load(store)
    if queue == "random":
        ids = [r.id for r in snap.records if r.state == "pending" and r.chunk.split == "train"]
        random.Random(f"review-{seed}").shuffle(ids)
        return ids[:k], None
    recs, note = records(snap, queue)
    return [r.id for r in recs if r.chunk.split == "train"][:k], note


def review(store, ids: list[int], gold_by_id: dict[int, str], classes: list[str]) -> dict:
    """Review the chunks as a person who knows gold; count the labels that were wrong."""
    from labelloop.review.actions import apply
    from labelloop.review.records import load

    snap = load(store, ids)
    wrong = 0
    for cid in ids:
        gold = gold_by_id[cid]
        suggestion = snap.by_id[cid].suggestion[0]
        if suggestion == gold:
            apply(store, cid, "accept", reviewer="bench")
        else:
            wrong += 1
            apply(store, cid, "correct", gold, reviewer="bench", classes=classes)
    return {"reviewed": len(ids), "fixed": wrong}


def retrain_and_score(config, store, n: int, prepare, test_texts: list[str], test_gold: list[str]) -> float:
    """Train round n's student again on the labels as they stand now, as `labelloop run` would
    (likely LLM label errors left out, reviewed labels kept); accuracy on the gold test split."""
    from labelloop.loop.training import fit_student, round_data

    data = round_data(store, n)
    student = fit_student(config, store, data, prepare).student
    pred = student.predict(prepare(test_texts))
    return float(np.mean([p == g for p, g in zip(pred, test_gold)]))


def simulate(config, db_path: Path, work: Path, n: int, gold_by_id: dict[int, str], prepare,
             test_texts: list[str], test_gold: list[str], ks: list[int], seed: int) -> list[dict]:
    """For each queue and k: copy the project, review k labels, retrain, score on gold."""
    rows = []
    for queue in QUEUES:
        for k in ks:
            store = copy_project(db_path, work / f"{queue}-{k}" / "labelloop.db")
            ids, note = choose(store, queue, k, seed)
            done = review(store, ids, gold_by_id, config.classes)
            acc = retrain_and_score(config, store, n, prepare, test_texts, test_gold)
            rows.append({"queue": queue, "k": k, **done, "student_acc": acc, "note": note})
    return rows
