"""Multi-label: a student taught by an LLM's label sets against the same student taught by gold sets.

Data: BBC News as a multi-label set (bench_data.bbc_multilabel, bench/notes/multilabel-data.md):
single articles (one topic) and documents that join two articles of different topics (both
topics), each article cut to keep a document one chunk (max_chars=1000). The pool's first
--dev documents are a gold dev split, used only to choose between settings (pruning); the test
split (200 documents, 100 joined) is never used for any choice.

Teachers, each asked through labelloop's own backends:
  fake90    the fake OpenAI-compatible server, each label's yes/no right 90% of the time,
            asked over real HTTP with the label-set JSON schema (OpenAIBackend)
  embedded  the default embedded model (llama.cpp), one calibrated yes/no per label (EmbeddedBackend),
            its sets as the loop's large model gives them (calibrated p >= 0.5); --embedded-n training
            and --embedded-test test documents (it takes seconds per document on 2 cores)

For N training documents the default student (embedding-head on all-MiniLM-L6-v2, one logistic
regression per label) is fitted as the loop fits it (labelloop.loop.training.fit_labeled:
cross-validation, cleanlab's multi-label label issues, pruning, thresholds tuned on out-of-fold
probabilities) on the teacher's sets, and on the gold sets of the same documents (a person's
labels are never pruned). Reported on the gold test split: micro-F1, macro-F1, subset accuracy and
Hamming loss, with 95% bootstrap intervals, for the teacher itself, the student on the teacher's
labels, and the student on gold.

Run: .venv/bin/python bench/bench_multilabel.py [--sizes 200,500] [--teachers fake90,embedded]
     [--embedded-n 120] [--quick]
Writes bench/results/<date>-multilabel.json and prints the tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import BBC_TOPICS, bbc_multilabel  # noqa: E402
from common import DictCache, environment, write_results  # noqa: E402

from labelloop.classify import make_student  # noqa: E402
from labelloop.evaluate import evaluate_multilabel  # noqa: E402
from labelloop.labels import decode_set  # noqa: E402
from labelloop.llm.base import LabelTask  # noqa: E402
from labelloop.loop.training import fit_labeled  # noqa: E402

CLASSES = list(BBC_TOPICS)
DESC = "Tag BBC news articles with every topic they cover: a document may join two articles."
RULES = ""  # the description only: per-label rules made the embedded models say yes more (bench_embedded_multilabel.py)
TEACHER_ACCURACY = 0.9


def task(text: str) -> LabelTask:
    return LabelTask(text, tuple(CLASSES), RULES, DESC, multi_label=True)


def ask(backend, texts: list[str], concurrency: int = 8) -> list[tuple[list[str] | None, dict | None]]:
    """(label set or None when unreadable, per-class probabilities) of every text, through the backend."""
    async def run():
        gate = asyncio.Semaphore(concurrency)

        async def one(text):
            async with gate:
                return await backend.classify(task(text))

        try:
            return await asyncio.gather(*(one(t) for t in texts))
        finally:
            await backend.aclose()

    answers = asyncio.run(run())
    return [(decode_set(a.label) if a.label is not None else None, a.probs) for a in answers]


def fake_teacher(items) -> tuple[dict, dict]:
    from labelloop.config import LLMSection
    from labelloop.llm.openai_backend import OpenAIBackend
    from labelloop.testing import FakeOpenAI

    with FakeOpenAI(gold={t: y for t, y in items}, accuracy=TEACHER_ACCURACY, seed=0) as fake:
        backend = OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model), 8, backoff_s=0.01)
        t0 = time.perf_counter()
        answers = ask(backend, [t for t, _ in items])
        seconds = time.perf_counter() - t0
        info = {"requests": fake.total, "seconds": round(seconds, 1)}
    return {t: a for (t, _), a in zip(items, answers)}, info


def embedded_teacher(items) -> tuple[dict, dict]:
    """The default embedded model's label sets, as the loop's large model gives them (calibrated p >= 0.5)."""
    from labelloop.config import LLMSection, SystemSection
    from labelloop.llm.factory import make_backend
    from labelloop.llm.prompts import PromptSet

    backend = make_backend(LLMSection(), SystemSection(), PromptSet())
    identity = backend.identity
    t0 = time.perf_counter()
    answers = ask(backend, [t for t, _ in items], concurrency=1)
    seconds = time.perf_counter() - t0
    info = {"seconds": round(seconds, 1), "per_chunk_s": round(seconds / max(1, len(items)), 2), "model": identity}
    return {t: a for (t, _), a in zip(items, answers)}, info


def scores(reference, predicted) -> dict:
    m = evaluate_multilabel(reference, predicted, CLASSES)
    out = {k: round(getattr(m, k), 4) for k in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")}
    out["ci"] = {k: [round(v, 4) for v in m.intervals[k]] for k in out}
    out["per_label_f1"] = {c: round(v["f1"], 4) for c, v in m.per_class.items()}
    return out


def fit(texts, labels, sources, cache, prune: bool, soft: np.ndarray | None = None):
    student = make_student("embedding-head", CLASSES, cache=cache, multi_label=True)
    fit = fit_labeled(student, texts, labels, sources, list(range(len(texts))), CLASSES, prune=prune,
                      multi_label=True, soft=soft)
    return student, len(fit.flags.flagged), int(fit.ignored.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,500")
    ap.add_argument("--teachers", default="fake90,embedded")
    ap.add_argument("--dev", type=int, default=100)
    ap.add_argument("--embedded-n", type=int, default=150, help="training documents the embedded teacher labels")
    ap.add_argument("--embedded-test", type=int, default=100, help="test documents the embedded teacher labels")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.embedded_n, args.embedded_test = [100], 30, 30
    pool, test = bbc_multilabel(max_chars=1000)
    dev, train_pool = pool[: args.dev], pool[args.dev:]
    cache = DictCache()
    results = {"environment": environment(), "classes": CLASSES, "teacher_accuracy": TEACHER_ACCURACY,
               "data": {"pool": len(train_pool), "dev": len(dev), "test": len(test),
                        "test_joined": sum(len(y) == 2 for _t, y in test)},
               "teachers": {}, "rows": []}
    for teacher in args.teachers.split(","):
        if teacher == "fake90":
            n_max = max(sizes)
            answers, info = fake_teacher(train_pool[:n_max] + dev + test)
            test_items = test
            run_sizes = sizes
        elif teacher == "embedded":
            n_max = args.embedded_n
            test_items = test[: args.embedded_test]
            answers, info = embedded_teacher(train_pool[:n_max] + test_items)
            run_sizes = [n_max]
        else:
            raise SystemExit(f"unknown teacher {teacher!r}; use fake90 or embedded")
        teacher_test = [answers[t][0] or [] for t, _ in test_items]
        info["test"] = scores([y for _t, y in test_items], teacher_test)
        info["test_n"] = len(test_items)
        info["unreadable"] = sum(answers[t][0] is None for t, _ in train_pool[:n_max] + test_items)
        results["teachers"][teacher] = info
        print(f"{teacher}: teacher on {len(test_items)} gold test docs: {info['test']['micro_f1']:.3f} micro-F1 "
              f"({info['seconds']} s)")
        eval_texts = [t for t, _ in test_items]
        eval_gold = [y for _t, y in test_items]
        for n in run_sizes:
            items = train_pool[:n]
            texts = [t for t, _ in items]
            taught = [answers[t][0] if answers[t][0] is not None else [] for t in texts]
            gold = [y for _t, y in items]
            soft = np.array([[float((answers[t][1] or {}).get(c, c in y)) for c in CLASSES]
                             for t, y in zip(texts, taught)])
            row = {"teacher": teacher, "n": n, "teacher_label_agreement": scores(gold, taught)["micro_f1"]}
            for name, labels, sources, prune, targets in (
                    ("on_teacher", taught, ["llm-small"] * n, True, None),
                    ("on_teacher_no_prune", taught, ["llm-small"] * n, False, None),
                    ("on_teacher_soft", taught, ["llm-small"] * n, True, soft),
                    ("on_teacher_soft_no_prune", taught, ["llm-small"] * n, False, soft),
                    ("on_gold", gold, ["human"] * n, False, None)):
                t0 = time.perf_counter()
                student, flagged, pruned = fit(texts, labels, sources, cache, prune, targets)
                pred = student.predict(eval_texts)
                row[name] = {**scores(eval_gold, pred), "flagged": flagged, "pruned": pruned,
                             "thresholds": dict(zip(CLASSES, map(float, student.thresholds_))),
                             "seconds": round(time.perf_counter() - t0, 1)}
                if teacher == "fake90":  # which pruning setting: chosen on the dev split, never on test
                    row[name]["dev_micro_f1"] = scores([y for _t, y in dev], student.predict([t for t, _ in dev]))["micro_f1"]
            row["gap_micro_f1"] = round(row["on_teacher"]["micro_f1"] - row["on_gold"]["micro_f1"], 4)
            results["rows"].append(row)
            print(f"  n={n}: " + " / ".join(f"{k} {v['micro_f1']:.3f}" for k, v in row.items() if k.startswith("on_")))
    write_results("multilabel", results)
    print()
    print(table(results))


WHO = (("on_teacher", "student, teacher's labels"),
       ("on_teacher_no_prune", "student, teacher's labels, no pruning"),
       ("on_teacher_soft", "student, teacher's per-label probabilities"),
       ("on_teacher_soft_no_prune", "student, teacher's per-label probabilities, no pruning"),
       ("on_gold", "student, gold labels"))


def _cells(m: dict) -> str:
    low, high = m["ci"]["micro_f1"]
    return (f"{100 * m['micro_f1']:.1f} [{100 * low:.1f}, {100 * high:.1f}] | {100 * m['macro_f1']:.1f} | "
            f"{100 * m['subset_accuracy']:.1f} | {m['hamming_loss']:.3f}")


def table(results: dict) -> str:
    """The bench's table (scores in %, Hamming loss as a fraction), for the terminal and bench/RESULTS.md."""
    lines = ["| teacher | N | who | micro-F1 [95% CI] | macro-F1 | subset accuracy | Hamming loss | decisions left out |",
             "|---|---|---|---|---|---|---|---|"]
    for teacher, info in results["teachers"].items():
        lines.append(f"| {teacher} | – | the teacher itself ({info['test_n']} test docs) | {_cells(info['test'])} | – |")
        for row in (r for r in results["rows"] if r["teacher"] == teacher):
            for who, label in WHO:
                if who in row:
                    lines.append(f"| {teacher} | {row['n']} | {label} | {_cells(row[who])} | {row[who]['pruned']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
