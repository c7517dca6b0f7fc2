"""The Hugging Face post's experiment: few-shot LLM vs students trained on the same gold examples.

For k = 0..6 gold examples per class (drawn from the pool, nested: k+1 adds one per class):
  llm               the embedded Gemma 3 270M with those k examples per class in its prompt
                    (class log-probs, calibrated; no rules, the task description only)
  embedding-head    MiniLM embeddings + logistic regression trained on the same examples
  setfit            SetFit trained on the same examples
all scored on the same held-out gold test items. Seeds change which examples are drawn;
k = 0 is the zero-shot LLM (no student can train on nothing). Defaults are labelloop's;
nothing is tuned. Writes bench/results/<date>-fewshot.json and bench/plots/fewshot_<dataset>.png.

    .venv/bin/python bench/bench_fewshot.py [--quick] [--datasets drugs2] [--n 100] [--ks 0,1,2,3,4,5,6]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_data import DATASETS  # noqa: E402
from common import environment, write_results  # noqa: E402
from report import PLOTS, plot_fewshot  # noqa: E402


def held_out(test: list, n: int) -> list:
    """The same n gold test items for every k, seed and model."""
    items = list(test)
    random.Random("fewshot-items").shuffle(items)
    return items[:n]


def draw(pool: list, classes: list[str], k: int, seed: int) -> list[tuple[str, str]]:
    """k examples per class, nested in k, interleaved by class (no class always last)."""
    per = {}
    for c in classes:
        texts = [t for t, lab in pool if lab == c]
        random.Random(f"{seed}-{c}").shuffle(texts)
        per[c] = texts[:k]
    return [(per[c][i], c) for i in range(k) for c in classes]


def llm_accuracy(backend, examples, items, classes, desc) -> tuple[float, float]:
    """Accuracy of the few-shot LLM on the items, and items/s."""
    from labelloop.llm.base import Example, LabelTask

    shots = tuple(Example(text=t, label=c) for t, c in examples)

    async def go():
        out = []
        for text, _ in items:
            out.append(await backend.classify(LabelTask(text=text, classes=tuple(classes), rules="",
                                                        description=desc, examples=shots)))
        return out

    t0 = time.perf_counter()
    results = asyncio.run(go())
    rate = len(items) / (time.perf_counter() - t0)
    return float(np.mean([r.label == gold for r, (_, gold) in zip(results, items)])), rate


def student_accuracy(kind, examples, items, classes, prepare, seed, cache, setfit_iterations) -> float:
    from labelloop.classify import make_student
    from labelloop.config import StudentSection

    settings = StudentSection(type=kind, seed=seed, setfit_iterations=setfit_iterations)
    student = make_student(kind, classes, settings=settings, cache=cache)
    student.fit(prepare([t for t, _ in examples]), [c for _, c in examples])
    pred = student.predict(prepare([t for t, _ in items]))
    return float(np.mean([p == gold for p, (_, gold) in zip(pred, items)]))


def one_dataset(name: str, ks: list[int], seeds: list[int], n: int, students: list[str],
                setfit_iterations: int, n_ctx: int, cache) -> dict:
    from labelloop.config import LLMSection
    from labelloop.llm.embedded import EmbeddedBackend
    from labelloop.classify.student_input import StudentInput, default_max_length
    from labelloop.models import default_encoder_path

    loader, classes, desc = DATASETS[name]
    pool, test = loader()
    items = held_out(test, n)
    prepare = StudentInput(encoder=None, max_length=default_max_length(default_encoder_path()), truncation="head-tail",
                           chunk_size=256, classes=tuple(classes))
    backend = EmbeddedBackend(LLMSection(mode="embedded", n_ctx=n_ctx), max_doc_tokens=256)
    curves: dict[str, dict[str, list[float]]] = {"LLM few-shot (Gemma 3 270M)": {}}
    curves.update({s: {} for s in students})
    llm_rates, seconds = [], {}
    for k in ks:
        for seed in (seeds if k > 0 else seeds[:1]):  # zero-shot does not depend on the seed
            examples = draw(pool, classes, k, seed)
            t0 = time.perf_counter()
            acc, rate = llm_accuracy(backend, examples, items, classes, desc)
            llm_rates.append(rate)
            curves["LLM few-shot (Gemma 3 270M)"].setdefault(str(k), []).append(acc)
            line = f"    k={k} seed={seed}: llm {acc:.3f} ({time.perf_counter() - t0:.0f}s)"
            if k > 0:
                for s in students:
                    t0 = time.perf_counter()
                    sacc = student_accuracy(s, examples, items, classes, prepare, seed, cache, setfit_iterations)
                    curves[s].setdefault(str(k), []).append(sacc)
                    seconds.setdefault(s, []).append(time.perf_counter() - t0)
                    line += f", {s} {sacc:.3f} ({seconds[s][-1]:.0f}s)"
            print(line, flush=True)
    majority = Counter(lab for _, lab in items).most_common(1)[0][1] / len(items)
    return {"dataset": name, "classes": classes, "n_items": len(items), "ks": ks, "seeds": seeds,
            "majority": majority, "curves": curves, "llm_items_per_s": float(np.mean(llm_rates)),
            "student_fit_seconds": {s: float(np.mean(v)) for s, v in seconds.items()},
            "llm": {"model": backend.identity, "n_ctx": n_ctx, "max_doc_tokens": 256, "calibrated": True}}


def table(results: list[dict]) -> str:
    from report import ms

    lines = []
    for r in results:
        ks = r["ks"]
        lines += [f"### {r['dataset']}: accuracy % on {r['n_items']} held-out gold items "
                  f"(majority class {100 * r['majority']:.1f}%), mean ± sd over seeds {r['seeds']}", "",
                  "| model | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for who, series in r["curves"].items():
            lines.append(f"| {who} | " + " | ".join(ms(series.get(str(k), []), 100) for k in ks) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="drugs2, 20 items, k = 0, 1, 2, one seed, small SetFit")
    ap.add_argument("--datasets", default=None, help="default: bbc,drugs2,drugs3 (quick: drugs2)")
    ap.add_argument("--n", type=int, default=None, help="held-out items (default 100; quick 20)")
    ap.add_argument("--ks", default=None, help="examples per class (default 0..6; quick 0,1,2)")
    ap.add_argument("--seeds", default=None, help="default 0,1,2 (quick 0)")
    ap.add_argument("--students", default="embedding-head,setfit")
    ap.add_argument("--setfit-iterations", type=int, default=None, help="default 20 (labelloop's); quick 5")
    ap.add_argument("--n-ctx", type=int, default=None,
                    help="Gemma context (default 4096 when k x classes > 6, else 2048: room for the examples)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    q = args.quick
    datasets = (args.datasets or ("drugs2" if q else "bbc,drugs2,drugs3")).split(",")
    n = args.n or (20 if q else 100)
    ks = [int(k) for k in (args.ks or ("0,1,2" if q else "0,1,2,3,4,5,6")).split(",")]
    seeds = [int(s) for s in (args.seeds or ("0" if q else "0,1,2")).split(",")]
    its = args.setfit_iterations or (5 if q else 20)
    name = args.name or ("fewshot-quick" if q else "fewshot")
    students = [s for s in args.students.split(",") if s]
    import tempfile

    from labelloop.store import Store

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Store(Path(tmp) / "embeddings.db")  # the embedding-head student's embedding cache
        for ds in datasets:
            print(f"... few-shot {ds}", flush=True)
            n_ctx = args.n_ctx or (4096 if max(ks) * len(DATASETS[ds][1]) > 6 else 2048)
            results.append(one_dataset(ds, ks, seeds, n, students, its, n_ctx, cache))
            path = plot_fewshot(results[-1], PLOTS / f"{'quick-' if q else ''}fewshot_{ds}.png")
            print(f"    plot: {path}", flush=True)
            write_results(name, {"env": environment(), "args": vars(args), "results": results}, quiet=True)
    md = table(results)
    print(md)
    write_results(name, {"env": environment(), "args": vars(args), "results": results, "table": md})
    return results


if __name__ == "__main__":
    main()
