"""The bootstrap loop on real data: does the student match gold-trained students and beat its teacher?

For each data set x teacher, one `labelloop run` (in process, same code as the CLI), then,
all on the same held-out gold test split:
  teacher   the teacher's own accuracy / macro-F1 (it labels the gold test texts)
  student   the final bootstrapped student (LLM labels only)
  gold-n    the same student class trained on the same chunks with their gold labels
plus seconds per iteration, LLM calls, and predict throughput (student vs teacher).

    .venv/bin/python bench/bench_loop.py [--quick] [--datasets bbc,drugs2] [--teachers fake90,gemma]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, write_results  # noqa: E402
from bench_data import DATASETS  # noqa: E402

from labelloop.config import parse_config  # noqa: E402
from labelloop.evaluate import evaluate  # noqa: E402


def teacher_settings(teacher: str, fake) -> dict:
    if teacher == "gemma":
        return {"mode": "embedded"}
    return {"mode": "api", "base_url": fake.base_url, "model": fake.model, "api_key": "bench"}


def project(tmp: Path, pool, classes, desc, llm: dict, quick: bool, seed: int) -> "Config":  # noqa: F821
    inp = tmp / "input"
    inp.mkdir(parents=True)
    with open(inp / "pool.jsonl", "w") as fh:
        for text, label in pool:
            fh.write(json.dumps({"text": text, "gold": label}) + "\n")
    raw = {
        "classification": {"classes": classes, "desc": desc, "predict_on_whole_set_at_the_end": False},
        "path": {"input_dir": "input", "output_dir": "output"},
        "system": {"chunk_size": 256, "required_accuracy": 0.99, "concurrency_limit": 8},
        "training": {"max_iters": 2 if quick else 3, "test_set_size": 60 if quick else 100,
                     "train_set_size": 100 if quick else 200, "train_set_increment": 100},
        "small_model": llm, "large_model": llm,
        "sampling": {"strategy": "random", "seed": seed},
        "student": {"seed": seed},
    }
    return parse_config(raw, base_dir=tmp)


def teacher_on_gold(config, store, texts: list[str]) -> tuple[list[str], float]:
    """Let the large model label the gold test texts; return labels and seconds per item."""
    from labelloop.llm.labeler import build_task
    from labelloop.loop.labeling import with_backend

    rules = store.rules()

    async def label_all(backend):
        gate = asyncio.Semaphore(8)

        async def one(text):
            async with gate:
                task = build_task(text, classes=config.classes, rules=rules,
                                  description=config.classification.desc, few_shot=None)
                return await backend.classify(task)

        return await asyncio.gather(*(one(t) for t in texts))

    t0 = time.perf_counter()
    results = with_backend(config, "large", label_all)
    per_item = (time.perf_counter() - t0) / max(1, len(texts))
    # an unparseable reply counts as wrong: give it a label no class has
    return [r.label if r.label else "(unlabeled)" for r in results], per_item


def one_case(name: str, teacher: str, quick: bool, seed: int) -> dict:
    from labelloop.classify import load_student
    from labelloop.loop.runner import run
    from labelloop.loop.student_input import make_student_input
    from labelloop.loop.training import new_student, round_data
    from labelloop.store import Store
    from labelloop.testing.fake_openai import FakeOpenAI
    from rich.console import Console

    loader, classes, desc = DATASETS[name]
    pool, test = loader()
    if quick:
        pool, test = pool[:400], test[:100]
    accuracy = {"fake80": 0.8, "fake90": 0.9, "fake95": 0.95}.get(teacher, 1.0)
    fake = FakeOpenAI(gold=dict(pool + test), accuracy=accuracy, seed=seed).start()
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            config = project(Path(tmpdir), pool, classes, desc, teacher_settings(teacher, fake), quick, seed)
            t0 = time.perf_counter()
            result = run(config, console=Console(quiet=True), progress=False)
            run_s = time.perf_counter() - t0
            store = Store(config.db_path)
            its = [it for it in store.iterations() if it.status == "done"]
            last = its[-1]
            prepare = make_student_input(None, None, config.training.truncation_type)
            test_texts, test_gold = [t for t, _ in test], [lab for _, lab in test]

            student = load_student(result.final_model)
            t1 = time.perf_counter()
            probs = student.predict_proba(prepare(test_texts))
            student_s = (time.perf_counter() - t1) / len(test_texts)
            student_pred = [student.classes_[i] for i in np.argmax(probs, axis=1)]

            data = round_data(store, last.n)
            gold_by_id = {c.id: c.metadata.get("gold") for c in store.chunks()}
            gold_student = new_student(config, cache=store)
            gold_student.fit(prepare([c.text for c in data.train]), [gold_by_id[c.id] for c in data.train])
            gold_pred = gold_student.predict(prepare(test_texts))

            llm_labels = [lab for lab in store.labels() if lab.source in ("llm-small", "llm-large")]
            llm_ok = [lab for lab in llm_labels if lab.label]
            label_acc = float(np.mean([lab.label == gold_by_id[lab.chunk_id] for lab in llm_ok])) if llm_ok else 0.0

            teacher_pred, teacher_s = teacher_on_gold(config, store, test_texts)
            m_teacher = evaluate(test_gold, teacher_pred, classes)
            m_student = evaluate(test_gold, student_pred, classes)
            m_gold = evaluate(test_gold, gold_pred, classes)
            calls = store.call_stats()
            return {
                "dataset": name, "teacher": teacher, "seed": seed, "quick": quick,
                "pool": len(pool), "gold_test": len(test), "train_size": last.train_size,
                "teacher_acc": m_teacher.accuracy, "teacher_f1": m_teacher.macro_f1,
                "teacher_label_acc_on_pool": label_acc, "unlabeled": len(llm_labels) - len(llm_ok),
                "student_acc": m_student.accuracy, "student_f1": m_student.macro_f1,
                "student_acc_ci": [m_student.accuracy_low, m_student.accuracy_high],
                "gold_student_acc": m_gold.accuracy, "gold_student_f1": m_gold.macro_f1,
                "student_vs_gold_points": 100 * (m_student.accuracy - m_gold.accuracy),
                "student_vs_teacher_points": 100 * (m_student.accuracy - m_teacher.accuracy),
                "iterations": [{"n": it.n, "train": it.train_size, "acc_vs_llm": it.accuracy,
                                "seconds": it.seconds} for it in its],
                "seconds_per_iteration": float(np.mean([it.seconds for it in its])),
                "run_seconds": run_s,
                "llm_calls": calls["calls"], "tokens": calls["prompt_tokens"] + calls["completion_tokens"],
                "student_chunks_per_s": 1 / student_s, "teacher_items_per_s": 1 / teacher_s,
                "speedup": teacher_s / student_s,
            }
    finally:
        fake.stop()


def table(rows: list[dict]) -> str:
    head = ("| data | teacher | train | teacher acc | student acc | gold-label student | student − gold | "
            "student − teacher | s/iter | LLM calls | student chunks/s | teacher items/s |")
    lines = [head, "|" + "|".join(["---"] * 12) + "|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['teacher']} | {r['train_size']} | {r['teacher_acc']:.3f} | "
            f"{r['student_acc']:.3f} | {r['gold_student_acc']:.3f} | {r['student_vs_gold_points']:+.1f} | "
            f"{r['student_vs_teacher_points']:+.1f} | {r['seconds_per_iteration']:.1f} | {r['llm_calls']} | "
            f"{r['student_chunks_per_s']:.0f} | {r['teacher_items_per_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small pools, 2 iterations")
    ap.add_argument("--datasets", default="bbc,drugs2,drugs3")
    ap.add_argument("--teachers", default="fake90,gemma")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = []
    for name in args.datasets.split(","):
        for teacher in args.teachers.split(","):
            print(f"... {name} x {teacher}", flush=True)
            rows.append(one_case(name, teacher, args.quick, args.seed))
    md = table(rows)
    print(md)
    write_results("loop", {"env": environment(), "args": vars(args), "rows": rows, "table": md})
    return rows


if __name__ == "__main__":
    main()
