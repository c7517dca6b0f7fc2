"""Issue 7, kills: `kill -9` a `labelloop run` at many points (ingest, labeling, training, outputs),
rerun the same command each time, and check the final project is whole: one label per chunk and
source with the teacher's answer, zero repeated successful LLM calls by the fake's own count,
classifier folders complete or absent, no temp leftovers, and an intact SQLite file.

The kill points follow the run's progress as seen in its project file (read-only), plus a seeded
random delay, so the kills spread over every phase whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.projects import (
    CLASSES,
    LABELLOOP,
    assert_repeats_only_unsaved,
    make_project,
    record,
    short_docs,
    unsaved_answers,
)

pytestmark = pytest.mark.e2e

SIZES = {"max_iters": 3, "test_set_size": 8, "train_set_size": 12, "train_set_increment": 6}
# (phase, iteration, max random delay in s after the phase is seen); at least 10 of these must land
TARGETS = [
    ("ingest", 0, 0.3), ("label-large", 0, 0.3), ("label-large", 0, 0.3),
    ("label-small", 1, 0.2), ("train", 1, 1.5), ("train", 1, 4.0),
    ("label-small", 2, 0.2), ("train", 2, 3.0),
    ("label-small", 3, 0.2), ("train", 3, 2.0),
    ("outputs", 0, 0.5), ("outputs", 0, 1.5),
]
ORDER = {"startup": -1, "ingest": 0, "label-large": 1, "label-small": 2, "train": 3, "between": 4, "outputs": 100}
TEMP_PREFIXES = (".classifier_", ".dataset_", ".predictions", ".llm_classifications", ".report", ".rules_")


def rank(phase: tuple[str, int]) -> float:
    name, n = phase
    return ORDER[name] if name in ("startup", "ingest", "label-large", "outputs") else 2 * n + ORDER[name] / 10


def phase_of(db: Path) -> tuple[str, int]:
    """Which phase a running project is in, read from its file without writing to it."""
    if not db.exists():
        return ("startup", 0)
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            if one("PRAGMA user_version") == 0 or one("SELECT COUNT(*) FROM chunks") == 0:
                return ("ingest", 0)
            test = one("SELECT COUNT(*) FROM chunks WHERE split = 'test'")
            large = one("SELECT COUNT(*) FROM labels WHERE source = 'llm-large'")
            if test == 0 or large < test:
                return ("label-large", 0)
            if one("SELECT COUNT(*) FROM iterations WHERE stop_reason IS NOT NULL"):
                return ("outputs", 0)
            cur = one("SELECT COALESCE(MAX(split_iteration), 0) FROM chunks WHERE split = 'train'")
            missing = one("SELECT COUNT(*) FROM chunks c WHERE split = 'train' AND NOT EXISTS "
                          "(SELECT 1 FROM labels l WHERE l.chunk_id = c.id AND l.source = 'llm-small')")
            if cur == 0 or missing:
                return ("label-small", max(cur, 1))
            done = one(f"SELECT COUNT(*) FROM iterations WHERE n = {cur} AND status = 'done'")
            return ("between", cur) if done else ("train", cur)
        finally:
            conn.close()
    except sqlite3.Error:
        return ("ingest", 0)


def runs_started(db: Path) -> int:
    """Rows in the runs table: a new one means a new process got past startup and opened its run."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def folders_ok(out: Path) -> list[str]:
    """Problems with classifier folders: each must hold its config and weights, or not exist."""
    bad = []
    for d in sorted((out / "classifiers").glob("classifier_*")):
        for name in ("labelloop.json", "head.safetensors"):
            if not (d / name).is_file():
                bad.append(f"{d.name} lacks {name}")
    return bad


@pytest.mark.slow
def test_ten_kills_then_the_project_is_whole(tmp_path):
    docs = short_docs()
    rng = random.Random(7)
    with FakeOpenAI(gold=dict(docs), accuracy=0.8, seed=0, latency_s=0.05) as fake:
        cfg = make_project(tmp_path, docs, fake, concurrency=2, **SIZES)
        out = tmp_path / "output"
        db = out / "labelloop.db"
        kills: list[dict] = []
        unsaved: set[str] = set()  # answers some kill cut off before the run could save them
        finished_early = 0
        targets = list(TARGETS)
        while targets:
            proc = subprocess.Popen([LABELLOOP, "run", str(cfg)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            t0 = time.time()
            before = runs_started(db)
            while targets and proc.poll() is None:
                if runs_started(db) <= before:  # still importing: a kill here would test nothing new
                    time.sleep(0.01)
                    continue
                now = phase_of(db)
                name, n, jitter = targets[0]
                if rank(now) > rank((name, n)):
                    targets.pop(0)  # this run is already past that point: aim at the next one
                    continue
                if rank(now) == rank((name, n)):
                    time.sleep(rng.uniform(0, jitter))
                    if proc.poll() is None:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()
                        unsaved |= unsaved_answers(fake, db)
                        targets.pop(0)
                        kills.append({"target": f"{name}{n or ''}", "landed": "{}{}".format(*phase_of(db)),
                                      "after_s": round(time.time() - t0, 2)})
                        problems = folders_ok(out)
                        assert not problems, f"after kill {len(kills)} ({kills[-1]}): {problems}"
                    break
                time.sleep(0.01)
            if proc.poll() is None:  # every target passed while this run was still going
                proc.wait(timeout=300)
            if proc.returncode == 0:
                finished_early += 1
                if len(kills) < 10:
                    continue
                break
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]

        final = subprocess.run([LABELLOOP, "run", str(cfg)], capture_output=True, text=True, timeout=600)
        assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
        landed = {k["landed"].rstrip("0123456789") for k in kills}
        assert len(kills) >= 10, kills
        assert {"label-large", "train", "outputs"} <= landed, kills
        repeats = fake.repeated_successes()
        assert_repeats_only_unsaved(fake, unsaved, in_flight=2, kills=len(kills))

    store = Store(db, create=False)
    assert store.integrity_check() == "ok"
    chunks = {c.id: c for c in store.chunks()}
    test_ids = {c.id for c in store.chunks("test")}
    train_ids = {c.id for c in store.chunks("train")}
    assert len(chunks) == 40 and len(test_ids) == 8 and len(train_ids) == 12 + 6 + 6
    per_source: dict[str, list[int]] = {}
    for lab in store.labels():
        per_source.setdefault(lab.source, []).append(lab.chunk_id)
    for source, ids in per_source.items():
        assert len(ids) == len(set(ids)), f"{source} labels a chunk twice"
    assert set(per_source["llm-large"]) == test_ids
    assert set(per_source["llm-small"]) == train_ids
    # every label is the teacher's deterministic answer: nothing lost or mixed up by a kill
    for lab in store.labels():
        if lab.source in ("llm-small", "llm-large"):
            assert lab.label == fake.teacher.answer_label(chunks[lab.chunk_id].text, CLASSES)[0]
    # every successful answer the fake delivered was logged exactly once
    ok_keys = [c.key for c in store.calls() if c.status == "ok"]
    assert len(ok_keys) == len(set(ok_keys)) == sum(fake.successes.values())
    its = store.iterations()
    assert [(it.n, it.status) for it in its] == [(1, "done"), (2, "done"), (3, "done")]
    assert not folders_ok(out) and len(list((out / "classifiers").glob("classifier_*"))) == 3
    leftovers = [str(p.relative_to(out)) for p in out.rglob(".*") if p.name.startswith(TEMP_PREFIXES)]
    assert not leftovers
    preds = [json.loads(line) for line in (out / "final_classifier_output" / "predictions.jsonl").open()]
    assert {p["chunk_id"] for p in preds} == set(chunks) - test_ids - train_ids
    runs = store.runs()
    assert runs[-1]["status"] == "done" and all(r["status"] in ("running", "done") for r in runs)
    record("kills", {"kills": len(kills), "landed": [k["landed"] for k in kills], "reruns_completed": True,
                     "repeated_successes": len(repeats), "cut_off_by_kills": len(unsaved),
                     "fake": dict(fake.by_status)})
    print(f"\nkills: {kills}\nfinished before a kill: {finished_early}; fake: {dict(fake.by_status)}")
