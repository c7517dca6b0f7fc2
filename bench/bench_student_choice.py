"""Which student for which task: accuracy under a noisy teacher, speed, and the rare-class case.

For each data set (drugs2, drugs3, BBC), the same N training texts from the pool carry two label
sets: gold, and a teacher right 90% of the time whose errors are spread evenly over the other
classes (seeded; the fake teacher of bench_loop.py, without the HTTP round trips). Every student
is fitted on each as the loop fits it (labelloop's defaults; the teacher's labels that confident
learning flags are left out, gold labels never are), and scored on a fixed sample of the gold test split
(never used for any choice). Students:

  head-minilm      embedding-head on all-MiniLM-L6-v2 (the default)
  head-mpnet       embedding-head on all-mpnet-base-v2 (student.encoder: all-mpnet-base-v2)
  static           model2vec static embeddings distilled from MiniLM + the same head
  setfit           all-MiniLM-L6-v2 tuned on contrastive pairs, then the head (student.type: setfit)
  transformer      all-MiniLM-L6-v2 fine-tuned end to end (student.type: transformer)
                   (the fine-tuned two have their labels checked by the frozen MiniLM head, as in the loop)
  auto             student.type auto: candidates scored by 5-fold agreement with the teacher's
                   labels (training side only), within --budget seconds

Throughput: chunks/s of static, head-minilm and its int8 ONNX export on the same unseen drug
reviews (all 689 that the rate students were not fitted on), and the embedded teacher (qwen2.5-coder-1.5b) on 8 of them.

One round: the embedding-head's 5-fold cross-validation and final fit on 1,000 BBC chunks, with
new and with cached embeddings, and auto's wall time on the same chunks.

Soft labels: the embedded qwen2.5-coder-0.5b labels --soft-n drugs2 reviews with its calibrated
class probabilities; the heads are fitted on its top labels and on its distribution.

Rare class: BBC, one topic (entertainment) made rare (7% of the training pool) against all the
others, the 90% teacher flipping 10% of each class. Macro-F1 of the default head (balancing auto),
with and without class weights, with confident-learning pruning (labelloop's rows_to_prune on
cleanlab's flags), with a rare-class threshold chosen by cross-validation, and with the large model
(a second, independent 90% teacher) asked about flagged labels (review.relabel_suspects) or about
every label of a rare class (review.confirm_rare, labelloop's rare_classes), against the
gold-label student.

Run: .venv/bin/python bench/bench_student_choice.py [--quick] [--datasets drugs2,drugs3,bbc]
     [--students head-minilm,head-mpnet,static,transformer,auto] [--budget 300]
Writes bench/results/<date>-student-choice.json and prints the tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import DATASETS, bbc  # noqa: E402
from common import DictCache, environment, write_results  # noqa: E402

from labelloop.classify import make_student  # noqa: E402
from labelloop.classify.selection import choose  # noqa: E402

TEACHER_ACCURACY = 0.9
STUDENTS = ["head-minilm", "head-mpnet", "static", "setfit", "transformer", "auto"]
KINDS = {"head-minilm": ("embedding-head", None), "head-mpnet": ("embedding-head", "all-mpnet-base-v2"),
         "static": ("static", None), "setfit": ("setfit", None), "transformer": ("transformer", None)}
RARE = "entertainment"
SETTINGS: dict = {}  # per student type, from --epochs / --max-len / --setfit-iterations (the fine-tuned ones)


def noisy(labels: list[str], classes: list[str], accuracy: float, seed: int) -> list[str]:
    """A teacher right with probability `accuracy`, its errors spread evenly over the other classes."""
    rng = random.Random(seed)
    return [g if rng.random() < accuracy else rng.choice([c for c in classes if c != g]) for g in labels]


def scored(pred: list[str], gold: list[str]) -> dict:
    return {"accuracy": round(float(accuracy_score(gold, pred)), 4),
            "macro_f1": round(float(f1_score(gold, pred, average="macro")), 4)}


def pruned(labels: list[str], classes: list[str], oos: np.ndarray) -> list[int]:
    """The rows the loop trains on: all but the labels confident learning flags (prune_label_errors)."""
    from labelloop.classify.label_quality import find_issues
    from labelloop.loop.label_errors import rows_to_prune

    y = np.array([classes.index(lab) for lab in labels])
    dropped = set(rows_to_prune(find_issues(y, oos, len(classes)).rows, labels))
    return [i for i in range(len(labels)) if i not in dropped]


def fit_and_score(name, classes, train_texts, labels, test_texts, test_gold, cache, budget, prune: bool):
    """As the loop fits a student: cross-validate, leave out the flagged LLM labels (prune), fit, score."""
    t0 = time.perf_counter()
    extra = {}
    if name == "auto":
        make = lambda kind, enc: make_student(kind, classes, model_path=enc, cache=cache)  # noqa: E731
        choice = choose(make, train_texts, labels, target=0.99, budget_s=budget, previous_best=None, folds=5)
        student, oos = choice.student, choice.oos
        extra = {"chose": choice.kind + (f" ({choice.encoder})" if choice.encoder else ""),
                 "trials": choice.to_dict()["trials"]}
    else:
        kind, enc = KINDS[name]
        student = make_student(kind, classes, model_path=enc, cache=cache, settings=SETTINGS.get(kind))
        oos = student.label_check_proba(train_texts, labels, folds=5) if prune else None
    keep = pruned(labels, classes, oos) if prune else list(range(len(labels)))
    student.fit([train_texts[i] for i in keep], [labels[i] for i in keep])
    fit_s = time.perf_counter() - t0
    pred = student.predict(test_texts)
    head = student.__dict__.get("head_settings_")
    extra["head"] = head.to_dict() if head is not None else None
    return {**scored(pred, test_gold), "fit_s": round(fit_s, 1), "trained_on": len(keep), **extra}, student


def bench_dataset(name: str, args, cache) -> list[dict]:
    load, classes, _desc = DATASETS[name]
    pool, test = load()
    rng = random.Random(args.seed)
    test = rng.sample(test, min(args.test, len(test)))
    train = pool[:args.train]
    texts = [t for t, _ in train]
    gold = [g for _, g in train]
    teacher = noisy(gold, classes, TEACHER_ACCURACY, args.seed)
    test_texts, test_gold = [t for t, _ in test], [g for _, g in test]
    rows = []
    for student in args.students:
        for source, labels in (("teacher90", teacher), ("gold", gold)):
            if student == "auto" and source == "gold":
                continue
            print(f"  {name} {student} on {source} labels ...", flush=True)
            row, _ = fit_and_score(student, classes, texts, labels, test_texts, test_gold, cache, args.budget,
                                   prune=source == "teacher90")  # the loop prunes LLM labels, never gold ones
            rows.append({"data": name, "student": student, "labels": source, "train": len(texts),
                         "test": len(test), "teacher_accuracy_on_train": round(float(np.mean(
                             [a == b for a, b in zip(teacher, gold)])), 4), **row})
            print(f"    {row['accuracy']:.3f} acc, {row['macro_f1']:.3f} macro-F1, {row['fit_s']} s", flush=True)
    return rows


def rate(predict, texts: list[str]) -> float:
    predict(texts[:16])  # warm-up (loading, first calls)
    t0 = time.perf_counter()
    predict(texts)
    return len(texts) / (time.perf_counter() - t0)


def bench_throughput(args) -> dict:
    """chunks/s on the same unseen drug reviews: static vs MiniLM head (torch, int8 ONNX) vs the teacher."""
    import shutil

    from labelloop.serving.onnx_export import export_onnx
    from labelloop.serving.onnx_runtime import OnnxStudent

    load, classes, desc = DATASETS["drugs2"]
    pool, test = load()
    fit = pool[:200]
    texts = [t for t, _ in pool[200:] + test][:args.rate_n]  # never trained on
    out = {"texts": len(texts)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("static", "head-minilm"):
            kind, enc = KINDS[name]
            student = make_student(kind, classes, model_path=enc).fit([t for t, _ in fit], [g for _, g in fit])
            out[name] = {"chunks_per_s": round(rate(student.predict, texts), 1)}
            if name == "head-minilm":
                student.save(Path(tmp) / "head")
                copy = Path(tmp) / "int8"
                shutil.copytree(Path(tmp) / "head", copy)
                export_onnx(copy, int8=True)
                onnx = OnnxStudent.load(copy)
                out["head-minilm-int8-onnx"] = {"chunks_per_s": round(rate(onnx.predict, texts), 1)}
        out["teacher"] = teacher_rate(texts[:args.teacher_n], classes, desc)
    return out


def teacher_rate(texts: list[str], classes: list[str], desc: str) -> dict:
    """The embedded default (qwen2.5-coder-1.5b) labelling the same texts, with the description as rules."""
    import asyncio

    from labelloop.config import LLMSection
    from labelloop.llm.base import LabelTask
    from labelloop.llm.embedded import EmbeddedBackend

    backend = EmbeddedBackend(LLMSection(mode="embedded"))

    async def label_all() -> float:
        def task(t):
            return LabelTask(t, tuple(classes), desc, desc)
        await backend.classify(task(texts[0]))  # warm-up: loading the model
        t0 = time.perf_counter()
        for t in texts:
            await backend.classify(task(t))
        elapsed = time.perf_counter() - t0
        await backend.aclose()
        return elapsed

    elapsed = asyncio.run(label_all())
    return {"model": backend.settings.model or "qwen2.5-coder-1.5b", "items_per_s": round(len(texts) / elapsed, 3),
            "items": len(texts)}


def bench_soft(args, cache) -> list[dict]:
    """drugs2: the embedded teacher labels N training reviews with its class probabilities; the same
    students fitted on its top labels (hard) and on its distribution (soft), same chunks and seeds."""
    import asyncio

    from labelloop.config import LLMSection
    from labelloop.llm.base import LabelTask
    from labelloop.llm.embedded import EmbeddedBackend

    load, classes, desc = DATASETS["drugs2"]
    pool, test = load()
    train = pool[:args.soft_n]
    backend = EmbeddedBackend(LLMSection(mode="embedded", model=args.soft_model))

    async def label_all():
        out = [await backend.classify(LabelTask(t, tuple(classes), desc, desc)) for t, _ in train]
        await backend.aclose()
        return out

    t0 = time.perf_counter()
    answers = asyncio.run(label_all())
    label_s = time.perf_counter() - t0
    texts = [t for t, _ in train]
    gold = [g for _, g in train]
    hard = [a.label if a.label in classes else max(a.probs, key=a.probs.get) for a in answers]
    soft = np.array([[a.probs.get(c, 0.0) for c in classes] for a in answers], dtype=np.float64)
    soft /= soft.sum(axis=1, keepdims=True)
    teacher_acc = float(np.mean([h == g for h, g in zip(hard, gold)]))
    test_texts, test_gold = [t for t, _ in test], [g for _, g in test]
    rows = []
    for name in ("head-minilm", "head-mpnet"):
        kind, enc = KINDS[name]
        for mode in ("hard", "soft"):
            student = make_student(kind, classes, model_path=enc, cache=cache)
            student.fit(texts, hard, soft=soft if mode == "soft" else None)
            rows.append({"student": name, "targets": mode, "teacher": args.soft_model, "train": len(texts),
                         "teacher_accuracy_on_train": round(teacher_acc, 4), "label_s": round(label_s, 1),
                         **scored(student.predict(test_texts), test_gold)})
            print(f"  soft {name} {mode}: {rows[-1]['accuracy']:.3f}", flush=True)
    return rows


def bench_rare(args, cache) -> list[dict]:
    """BBC: RARE at ~7% of the training pool vs all the others, a 90% teacher; levers against the noise."""
    pool, test = bbc()
    rng = random.Random(args.seed)
    others = [t for t, g in pool if g != RARE]
    rare = [t for t, g in pool if g == RARE]
    n_rare = round(0.07 / 0.93 * args.rare_others)
    train = [(t, "other") for t in rng.sample(others, args.rare_others)] + [(t, RARE) for t in rng.sample(rare, n_rare)]
    rng.shuffle(train)
    classes = ["other", RARE]
    texts = [t for t, _ in train]
    gold = [g for _, g in train]
    teacher = noisy(gold, classes, TEACHER_ACCURACY, args.seed)
    test_texts = [t for t, _ in test]
    test_gold = [RARE if g == RARE else "other" for _, g in test]
    rows = []

    # The large model: a second, independent teacher right 90% of the time (labelloop's large role).
    large = noisy(gold, classes, TEACHER_ACCURACY, args.seed + 1)

    def reasked(labels: list[str], rows) -> list[str]:
        """The large model's label where it was asked (review.relabel_suspects re-asks the flagged ones)."""
        rows = set(rows)
        return [large[i] if i in rows else lab for i, lab in enumerate(labels)]

    def flagged(labels: list[str]) -> list[int]:
        from labelloop.classify.label_quality import find_issues

        oos = make_student("embedding-head", classes, cache=cache).cross_val_proba(texts, labels, folds=5)
        return find_issues(np.array([classes.index(lab) for lab in labels]), oos, len(classes)).rows

    def run(lever: str, labels: list[str], balancing="auto", prune=False, threshold=False, asked=0):
        t0 = time.perf_counter()
        make = lambda: make_student("embedding-head", classes, cache=cache, balancing=balancing)  # noqa: E731
        keep = list(range(len(texts)))
        student = make()
        if prune:  # as the loop does: the cross-validation that flags labels also chooses the head's settings
            keep = pruned(labels, classes, student.cross_val_proba(texts, labels, folds=5))
        fit_texts, fit_labels = [texts[i] for i in keep], [labels[i] for i in keep]
        cut = 0.5
        if threshold:  # the rare class's threshold: best F1 of the out-of-fold probabilities (training side)
            oos = make().cross_val_proba(fit_texts, fit_labels, folds=5)[:, 1]
            is_rare = np.array([lab == RARE for lab in fit_labels])
            grid = np.linspace(0.05, 0.95, 19)
            cut = float(max(grid, key=lambda c: f1_score(is_rare, oos >= c, zero_division=0)))
        student.fit(fit_texts, fit_labels)
        probs = student.predict_proba(test_texts)[:, 1]
        pred = [RARE if p >= cut else "other" for p in probs]
        rare_labels = sum(lab == RARE for lab in labels)
        false_rare = sum(lab == RARE and g != RARE for lab, g in zip(labels, gold))
        rows.append({"lever": lever, **scored(pred, test_gold), "trained_on": len(fit_texts), "large_model_calls": asked,
                     "rare_labels": rare_labels, "false_rare_labels": false_rare, "threshold": round(cut, 2),
                     "seconds": round(time.perf_counter() - t0, 1), "head": student.head_settings_.to_dict()})
        print(f"  rare {lever}: macro-F1 {rows[-1]['macro_f1']:.3f}", flush=True)

    run("gold labels (the reference)", gold)
    run("teacher, no class weights", teacher, balancing="none")
    run("teacher, class weights", teacher, balancing="class-weight")
    run("teacher, balancing auto (the default: chosen by CV)", teacher)
    run("teacher, class weights + confident-learning pruning", teacher, balancing="class-weight", prune=True)
    run("teacher, balancing auto + confident-learning pruning (the loop's default, no large model asked)", teacher, prune=True)
    run("teacher, class weights + rare threshold by CV", teacher, balancing="class-weight", threshold=True)
    run("teacher, pruning + rare threshold by CV", teacher, prune=True, threshold=True)
    suspects = flagged(teacher)
    run("teacher, flagged labels re-asked of the large model (review.relabel_suspects) + pruning",
        reasked(teacher, suspects), prune=True, asked=len(suspects))
    from labelloop.loop.label_errors import rare_classes

    rare = rare_classes(teacher, classes)  # the loop's review.confirm_rare: these labels go to the large model
    asked = [i for i, lab in enumerate(teacher) if lab in rare]
    run(f"teacher, labels of rare classes ({', '.join(rare) or 'none'}) confirmed by the large model "
        "(review.confirm_rare, the default) + pruning", reasked(teacher, asked), prune=True, asked=len(asked))
    run("teacher, class weights + rare classes confirmed + pruning", reasked(teacher, asked), balancing="class-weight",
        prune=True, asked=len(asked))
    return rows


def bench_iteration(args) -> dict:
    """One embedding-head round on N BBC chunks as the loop runs it: the student's 5-fold cross-validation
    (label errors) and the final fit, embeddings cold (a new round's chunks) and warm (cached); then auto."""
    pool, _ = bbc()
    items = pool[:args.iter_n]
    texts, labels = [t for t, _ in items], [g for _, g in items]
    classes = DATASETS["bbc"][1]
    cache = DictCache()
    out = {"chunks": len(texts)}
    for state in ("cold", "warm"):
        t0 = time.perf_counter()
        student = make_student("embedding-head", classes, cache=cache)
        student.cross_val_proba(texts, labels, folds=5)
        student.fit(texts, labels)
        out[f"embedding_head_{state}_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    make = lambda kind, enc: make_student(kind, classes, model_path=enc, cache=cache)  # noqa: E731
    choice = choose(make, texts, labels, target=0.99, budget_s=args.budget, previous_best=None, folds=5)
    choice.student.fit(texts, labels)
    out["auto_s"] = round(time.perf_counter() - t0, 1)
    out["auto_budget_s"] = args.budget
    out["auto_chose"] = choice.kind + (f" ({choice.encoder})" if choice.encoder else "")
    print(f"  iteration on {len(texts)} chunks: {out}", flush=True)
    return out


def tables(result: dict) -> str:
    lines = ["| data | student | teacher-label acc | gold-label acc | student − teacher | student − gold | "
             "macro-F1 (teacher labels) | fit s |", "|---|---|---|---|---|---|---|---|"]
    by = {(r["data"], r["student"], r["labels"]): r for r in result["students"]}
    for (data, student, source), r in by.items():
        if source != "teacher90":
            continue
        g = by.get((data, student, "gold"))
        chose = f" → {r['chose']}" if r.get("chose") else ""
        lines.append(
            f"| {data} | {student}{chose} | {100 * r['accuracy']:.1f} | {100 * g['accuracy']:.1f} | "
            f"{100 * (r['accuracy'] - TEACHER_ACCURACY):+.1f} | {100 * (r['accuracy'] - g['accuracy']):+.1f} | "
            f"{100 * r['macro_f1']:.1f} | {r['fit_s']:.0f} |" if g else
            f"| {data} | {student}{chose} | {100 * r['accuracy']:.1f} | - | "
            f"{100 * (r['accuracy'] - TEACHER_ACCURACY):+.1f} | - | {100 * r['macro_f1']:.1f} | {r['fit_s']:.0f} |")
    if result.get("throughput"):
        tp = result["throughput"]
        base = tp["head-minilm"]["chunks_per_s"]
        teacher = tp["teacher"]["items_per_s"]
        lines += ["", "| predictor | chunks/s | × MiniLM head | × embedded teacher |", "|---|---|---|---|"]
        for name in ("static", "head-minilm", "head-minilm-int8-onnx"):
            v = tp[name]["chunks_per_s"]
            lines.append(f"| {name} | {v:.1f} | {v / base:.1f} | {v / teacher:.0f} |")
        lines.append(f"| embedded teacher ({tp['teacher']['model']}) | {teacher:.2f} | {teacher / base:.3f} | 1 |")
    if result.get("iteration"):
        it = result["iteration"]
        lines += ["", f"One round on {it['chunks']} BBC chunks (5-fold cross-validation + final fit): "
                  f"embedding-head {it['embedding_head_cold_s']:.0f} s with new embeddings, "
                  f"{it['embedding_head_warm_s']:.0f} s cached; auto {it['auto_s']:.0f} s "
                  f"(budget {it['auto_budget_s']:g} s, chose {it['auto_chose']}, embeddings already cached)."]
    if result.get("soft"):
        lines += ["", "| soft labels: student | targets | accuracy | macro-F1 | teacher on these chunks |",
                  "|---|---|---|---|---|"]
        for r in result["soft"]:
            lines.append(f"| {r['student']} | {r['targets']} | {100 * r['accuracy']:.1f} | {100 * r['macro_f1']:.1f} | "
                         f"{r['teacher']}, {100 * r['teacher_accuracy_on_train']:.1f} |")
    if result.get("rare"):
        lines += ["", "| rare class: lever | macro-F1 | − gold | rare labels (false) | trained on | threshold | "
                  "large-model calls |", "|---|---|---|---|---|---|---|"]
        ref = result["rare"][0]["macro_f1"]
        for r in result["rare"]:
            lines.append(f"| {r['lever']} | {100 * r['macro_f1']:.1f} | {100 * (r['macro_f1'] - ref):+.1f} | "
                         f"{r['rare_labels']} ({r['false_rare_labels']}) | {r['trained_on']} | {r['threshold']} | "
                         f"{r.get('large_model_calls', 0)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="drugs2,drugs3,bbc")
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--rate-n", type=int, default=1000)
    ap.add_argument("--teacher-n", type=int, default=8)
    ap.add_argument("--rare-others", type=int, default=280)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-rare", action="store_true")
    ap.add_argument("--iter-n", type=int, default=1000, help="chunks of the one-round timing (0: skip)")
    ap.add_argument("--soft-n", type=int, default=200, help="drugs2 reviews the embedded teacher labels (0: skip)")
    ap.add_argument("--soft-model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="transformer epochs (default: labelloop's, 5)")
    ap.add_argument("--max-len", type=int, default=None, help="setfit/transformer max tokens (default: the model's)")
    ap.add_argument("--setfit-iterations", type=int, default=None, help="setfit pairs per example (default: 20)")
    ap.add_argument("--quick", action="store_true", help="100 train, 100 test, 200 texts for rates")
    ap.add_argument("--name", default="student-choice")
    args = ap.parse_args()
    if args.quick:
        args.train, args.test, args.rate_n, args.teacher_n, args.rare_others, args.soft_n, args.iter_n = (
            100, 100, 200, 2, 140, 20, 200)
    args.students = args.students.split(",")
    if args.epochs or args.max_len or args.setfit_iterations:
        from labelloop.config import StudentSection

        SETTINGS["transformer"] = StudentSection(epochs=args.epochs, max_seq_length=args.max_len)
        SETTINGS["setfit"] = StudentSection(max_seq_length=args.max_len,
                                            setfit_iterations=args.setfit_iterations or 20)
    t0 = time.perf_counter()
    cache = DictCache()
    result = {**environment(), "args": vars(args), "teacher_accuracy": TEACHER_ACCURACY, "students": []}
    for name in [d for d in args.datasets.split(",") if d and d != "none"]:
        result["students"] += bench_dataset(name, args, cache)
        write_results(args.name, result, quiet=True)
    if not args.no_rare:
        result["rare"] = bench_rare(args, cache)
    if args.iter_n:
        result["iteration"] = bench_iteration(args)
        write_results(args.name, result, quiet=True)
    if args.soft_n:
        result["soft"] = bench_soft(args, cache)
        write_results(args.name, result, quiet=True)
    if not args.no_throughput:
        result["throughput"] = bench_throughput(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["table"] = tables(result)
    print(result["table"])
    write_results(args.name, result)


if __name__ == "__main__":
    main()
