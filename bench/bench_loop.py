"""The bootstrap loop on real data: does the student match gold-trained students and beat its teacher?

For each data set x teacher x seed, one `labelloop run` (in process, the CLI's own code), then,
all on the same held-out gold test split (never seen by the loop):
  teacher    the teacher's own accuracy / macro-F1 (it labels the gold test texts)
  student    the final bootstrapped student (LLM labels only)
  gold-n     the same student class trained on the same chunks with their gold labels
  review     a simulated reviewer who knows gold reviews k labels picked by each review queue;
             the student is retrained on the corrected labels (bench/review_sim.py)
  curve      every iteration's saved student and a gold-label student of the same size
plus seconds per iteration, LLM calls and tokens, and predict throughput (student vs teacher).

Teachers: fake80 / fake90 / fake95 (the fake OpenAI-compatible server, right with that
probability), gemma (the embedded Gemma 3 270M), server (a real OpenAI-compatible server,
only when LABELLOOP_BENCH_BASE_URL is set; LABELLOOP_BENCH_MODEL and LABELLOOP_BENCH_API_KEY
are optional). Nothing is tuned: the students use labelloop's defaults.

    .venv/bin/python bench/bench_loop.py [--quick] [--datasets bbc,drugs2,drugs3]
        [--teachers fake80,fake90,fake95,gemma] [--seeds 0,1,2] [--no-review]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_data import DATASETS  # noqa: E402
from common import environment, write_results  # noqa: E402

from labelloop.config import parse_config  # noqa: E402
from labelloop.evaluate import evaluate  # noqa: E402

FAKE_ACCURACY = {"fake80": 0.8, "fake90": 0.9, "fake95": 0.95}
REVIEW_KS = [25, 100]


def teacher_settings(teacher: str, fake) -> dict:
    """The small_model / large_model section for a teacher name."""
    if teacher == "gemma":
        return {"mode": "embedded"}
    if teacher == "server":
        url = os.environ.get("LABELLOOP_BENCH_BASE_URL")
        if not url:
            raise SystemExit("teacher 'server' needs LABELLOOP_BENCH_BASE_URL (e.g. http://127.0.0.1:8000/v1)")
        return {"mode": "api", "base_url": url, "model": os.environ.get("LABELLOOP_BENCH_MODEL"),
                "api_key": os.environ.get("LABELLOOP_BENCH_API_KEY", "none"), "timeout_s": 120.0}
    return {"mode": "api", "base_url": fake.base_url, "model": fake.model, "api_key": "bench"}


def sizes(quick: bool) -> dict:
    """Loop sizes: the first training set, the increment, the rounds, the LLM test set."""
    if quick:
        return {"max_iters": 2, "test_set_size": 50, "train_set_size": 100, "train_set_increment": 100}
    return {"max_iters": 4, "test_set_size": 100, "train_set_size": 100, "train_set_increment": 100}


def project(tmp: Path, pool, classes, desc, llm: dict, quick: bool, seed: int):
    """Write the pool as JSONL (gold kept as metadata, never shown to the LLM) and a config."""
    inp = tmp / "input"
    inp.mkdir(parents=True)
    with open(inp / "pool.jsonl", "w") as fh:
        for text, label in pool:
            fh.write(json.dumps({"text": text, "gold": label}) + "\n")
    return parse_config(raw_config(classes, desc, llm, quick, seed), base_dir=tmp)


def raw_config(classes, desc, llm: dict, quick: bool, seed: int) -> dict:
    """The case's config as a dict: labelloop's defaults except the sizes and the teacher."""
    return {
        "classification": {"classes": classes, "desc": desc, "predict_on_whole_set_at_the_end": False},
        "path": {"input_dir": "input", "output_dir": "output"},
        # required_accuracy 0.99: run every round, so each case has the same learning curve points
        "system": {"chunk_size": 256, "required_accuracy": 0.99, "concurrency_limit": 8},
        "training": sizes(quick),
        "small_model": llm, "large_model": llm,
        "sampling": {"strategy": "random", "seed": seed},
        "stopping": {"kappa": None},  # no early stop either
        "student": {"seed": seed},
    }


def teacher_on_gold(config, store, texts: list[str], warmup: bool = False) -> tuple[list[str], float]:
    """Let the large model label the gold test texts (no cache); return labels and items/s.

    The rate is timed once the backend is open; with warmup, one untimed call goes first
    (an embedded model loads its weights on the first call).
    """
    from labelloop.llm.labeler import build_task
    from labelloop.loop.labeling import Teachers

    rules = store.rules()
    seconds = []

    async def label_all(backend):
        gate = asyncio.Semaphore(config.system.concurrency_limit)

        async def one(text):
            async with gate:
                task = build_task(text, classes=config.classes, rules=rules,
                                  description=config.classification.desc, few_shot=None)
                return await backend.classify(task)

        if warmup:
            await one(texts[0])
        t0 = time.perf_counter()
        out = await asyncio.gather(*(one(t) for t in texts))
        seconds.append(time.perf_counter() - t0)
        return out

    results = Teachers(config).run("large", label_all)
    # an unparseable reply counts as wrong: give it a label no class has
    return [r.label if r.label else "(unlabeled)" for r in results], len(texts) / seconds[0]


_EMBEDDED_RATE: dict[str, float] = {}


def embedded_teacher_rate(name: str, config, store, texts: list[str], n: int) -> float | None:
    """Items/s of the embedded default teacher (mode: embedded, no model named) on n of these texts,
    measured once per data set and run. Runs before 2026-12-01 measured Gemma 3 270M, the default then.

    The student's throughput target is against this teacher on the same machine, whatever
    teacher the case itself used (a fake teacher's speed says nothing about a real LLM).
    """
    if n <= 0:
        return None
    if name not in _EMBEDDED_RATE:
        raw = raw_config(config.classes, config.classification.desc, {"mode": "embedded"}, True, 0)
        local = parse_config(raw, base_dir=Path(config.path.input_dir).parent)
        _EMBEDDED_RATE[name] = teacher_on_gold(local, store, texts[:n], warmup=True)[1]
    return _EMBEDDED_RATE[name]


def student_rate(model_dir: str, texts: list[str], prepare) -> tuple[list[str], float]:
    """Predictions of a saved student and its chunks/s (no embedding cache, model warmed up first)."""
    from labelloop.classify import load_student

    student = load_student(model_dir)
    texts = texts[:64]  # enough for a rate; the accuracy uses every test text (see one_case)
    student.predict(prepare(texts[:8]))
    t0 = time.perf_counter()
    pred = student.predict(prepare(texts))
    return list(pred), len(texts) / (time.perf_counter() - t0)


def onnx_int8_rate(model_dir: str, texts: list[str], prepare) -> tuple[list[str], float]:
    """The same student after `labelloop export --onnx --int8` (a copy of its folder): predictions and chunks/s."""
    import shutil

    from labelloop.serving.onnx_runtime import OnnxStudent
    from labelloop.serving.onnx_export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "student"
        shutil.copytree(model_dir, copy)
        export_onnx(copy, int8=True)
        student = OnnxStudent.load(copy)
        student.predict(prepare(texts[:8]))
        t0 = time.perf_counter()
        rate_texts = texts[:64]
        student.predict(prepare(rate_texts))
        rate = len(rate_texts) / (time.perf_counter() - t0)
        return list(student.predict(prepare(texts))), rate


def gold_student_acc(config, store, chunks, gold_by_id, prepare, test_texts, test_gold) -> float:
    """The same student class trained on the same chunks with their gold labels."""
    from labelloop.loop.training import new_student

    student = new_student(config, prepare, cache=store)
    student.fit(prepare([c.text for c in chunks]), [gold_by_id[c.id] for c in chunks])
    return float(np.mean([p == g for p, g in zip(student.predict(prepare(test_texts)), test_gold)]))


def learning_curve(config, store, its, gold_by_id, prepare, test_texts, test_gold) -> list[dict]:
    """Each round's saved student and a gold-label student of the same chunks, on gold test."""
    from labelloop.classify import load_student
    from labelloop.loop.training import round_data

    points = []
    for it in its:
        student = load_student(it.model_path, cache=store)
        acc = float(np.mean([p == g for p, g in zip(student.predict(prepare(test_texts)), test_gold)]))
        data = round_data(store, it.n)
        gold = gold_student_acc(config, store, data.train, gold_by_id, prepare, test_texts, test_gold)
        llm_right = float(np.mean([lab == gold_by_id[c.id] for c, lab in zip(data.train, data.train_labels)]))
        points.append({"n": it.n, "train": len(data.train), "student_acc": acc, "gold_student_acc": gold,
                       "train_label_acc": llm_right, "acc_vs_teacher_test": it.accuracy, "seconds": it.seconds})
    return points


def one_case(name: str, teacher: str, quick: bool, seed: int, review: bool, rate_n: int = 8) -> dict:
    from labelloop.loop.runner import run
    from labelloop.loop.training import round_data
    from labelloop.store import Store
    from labelloop.testing.fake_openai import FakeOpenAI
    from review_sim import simulate
    from rich.console import Console

    loader, classes, desc = DATASETS[name]
    pool, test = loader()
    pool, test = (pool[:400], test[:100]) if quick else (pool[:1000], test)
    accuracy = FAKE_ACCURACY.get(teacher, 1.0)
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
            from labelloop.classify.student_input import StudentInput

            prepare = StudentInput.load(result.final_model)
            test_texts, test_gold = [t for t, _ in test], [lab for _, lab in test]
            gold_by_id = {c.id: c.metadata.get("gold") for c in store.chunks()}

            _, student_cps = student_rate(result.final_model, test_texts, prepare)
            from labelloop.classify import load_student

            final = load_student(result.final_model, cache=store)
            student_pred = list(final.predict(prepare(test_texts)))
            int8_pred, int8_cps = onnx_int8_rate(result.final_model, test_texts, prepare)
            teacher_pred, teacher_ips = teacher_on_gold(config, store, test_texts)
            embedded_ips = teacher_ips if teacher == "gemma" else embedded_teacher_rate(
                name, config, store, test_texts, rate_n)
            data = round_data(store, last.n)
            gold_acc = gold_student_acc(config, store, data.train, gold_by_id, prepare, test_texts, test_gold)
            m_teacher = evaluate(test_gold, teacher_pred, classes)
            m_student = evaluate(test_gold, student_pred, classes)
            llm_labels = [lab for lab in store.labels() if lab.source in ("llm-small", "llm-large")]
            llm_ok = [lab for lab in llm_labels if lab.label]
            label_acc = float(np.mean([lab.label == gold_by_id[lab.chunk_id] for lab in llm_ok])) if llm_ok else 0.0
            calls = store.call_stats()
            curve = learning_curve(config, store, its, gold_by_id, prepare, test_texts, test_gold)
            reviews = []
            if review:
                t1 = time.perf_counter()
                reviews = simulate(config, config.db_path, Path(tmpdir) / "review", last.n, gold_by_id,
                                   prepare, test_texts, test_gold, REVIEW_KS, seed)
                print(f"    review simulation: {time.perf_counter() - t1:.0f}s", flush=True)
            return {
                "dataset": name, "teacher": teacher, "seed": seed, "quick": quick,
                "pool_docs": len(pool), "chunks": len(gold_by_id), "gold_test": len(test),
                "train_size": len(data.train), "config": config.model_dump(mode="json"),
                "teacher_acc": m_teacher.accuracy, "teacher_f1": m_teacher.macro_f1,
                "teacher_label_acc_on_pool": label_acc, "unlabeled": len(llm_labels) - len(llm_ok),
                "student_acc": m_student.accuracy, "student_f1": m_student.macro_f1,
                "student_acc_ci": [m_student.accuracy_low, m_student.accuracy_high],
                "gold_student_acc": gold_acc,
                "student_vs_gold_points": 100 * (m_student.accuracy - gold_acc),
                "student_vs_teacher_points": 100 * (m_student.accuracy - m_teacher.accuracy),
                "curve": curve, "review": reviews,
                "seconds_per_iteration": float(np.mean([it.seconds for it in its])),
                "run_seconds": run_s,
                "llm_calls": calls["calls"], "prompt_tokens": calls["prompt_tokens"],
                "completion_tokens": calls["completion_tokens"],
                "student_chunks_per_s": student_cps, "teacher_items_per_s": teacher_ips,
                "speedup": student_cps / teacher_ips,
                "embedded_teacher_items_per_s": embedded_ips,
                "speedup_vs_embedded": student_cps / embedded_ips if embedded_ips else None,
                "student_int8_chunks_per_s": int8_cps,
                "student_int8_acc": evaluate(test_gold, int8_pred, classes).accuracy,
                "int8_same_labels": float(np.mean([a == b for a, b in zip(int8_pred, student_pred)])),
                "speedup_int8_vs_embedded": int8_cps / embedded_ips if embedded_ips else None,
            }
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="400-document pools, 100 gold test items, 2 rounds")
    ap.add_argument("--datasets", default="bbc,drugs2,drugs3")
    ap.add_argument("--teachers", default="fake80,fake90,fake95,gemma" +
                    (",server" if os.environ.get("LABELLOOP_BENCH_BASE_URL") else ""))
    ap.add_argument("--seeds", default="0", help="comma-separated; three seeds give mean ± sd")
    ap.add_argument("--no-review", action="store_true", help="skip the simulated review")
    ap.add_argument("--review-seeds", default=None, help="seeds that get the simulated review (default: the first)")
    ap.add_argument("--embedded-rate-n", type=int, default=8,
                    help="texts for timing the embedded teacher once per data set (0: skip)")
    ap.add_argument("--name", default="loop", help="results file: bench/results/<date>-<name>.json")
    args = ap.parse_args(argv)
    rows, failures = [], []
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    review_seeds = {int(s) for s in args.review_seeds.split(",")} if args.review_seeds else set(seeds[:1])
    for name in args.datasets.split(","):
        for teacher in args.teachers.split(","):
            for seed in seeds:
                print(f"... {name} x {teacher} seed {seed}", flush=True)
                t0 = time.perf_counter()
                try:
                    rows.append(one_case(name, teacher, args.quick, seed, not args.no_review and seed in review_seeds,
                                         args.embedded_rate_n))
                except Exception as exc:  # one failed case must not lose the others' numbers
                    traceback.print_exc()
                    failures.append({"dataset": name, "teacher": teacher, "seed": seed, "error": repr(exc)})
                print(f"    {time.perf_counter() - t0:.0f}s", flush=True)
                # keep what we have after every case: a long run killed midway still reports
                payload = {"env": environment(), "args": vars(args), "rows": rows, "failures": failures,
                           "seconds": time.perf_counter() - started}
                write_results(args.name, payload, quiet=True)
    from report import loop_tables, plot_curves

    md = loop_tables(rows)
    print(md)
    for f in failures:
        print(f"FAILED: {f}")
    plot_curves(rows, prefix="quick-" if args.quick else "")
    write_results(args.name, {"env": environment(), "args": vars(args), "rows": rows, "failures": failures,
                              "seconds": time.perf_counter() - started, "table": md})
    if failures:
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
