"""Spend less on the LLM: sampling strategies, stopping rules and label-error flags, measured against gold.

For each data set x strategy x seed, one in-process `labelloop run` with a noisy small model
(the fake OpenAI-compatible teacher, right with probability --small-acc) and a better large
model (--large-acc), small rounds, no early stop. Then, on a held-out gold test split the loop
never sees:
  curve      every round's saved student: gold accuracy against the LLM calls spent on training labels
  calls      training-label calls each strategy needs to reach the target (sequential's accuracy
             at the end of the budget, minus --slack), relative to sequential
  stopping   where each stopping rule would have stopped the same run (calls, gold accuracy)
  flags      precision of the loop's label-error flags (cleanlab) against gold, and the gold
             accuracy gained by fixing the flagged labels (review: gold; relabel: the large
             model's answer) against fixing the same number of random LLM labels

All runs of a data set share one ingested project file (copied), so the encoder embeds each
text once. Nothing is tuned: the loop uses labelloop's defaults apart from the round sizes.

    .venv/bin/python bench/bench_active.py [--quick] [--datasets bbc,drugs2,drugs3]
        [--strategies sequential,random,uncertainty,diverse-uncertainty,balanced] [--seeds 0,1,2]
        [--order shuffled|source]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_data import DATASETS  # noqa: E402
from bench_loop import project, teacher_settings  # noqa: E402
from common import environment, write_results  # noqa: E402
from review_sim import copy_project  # noqa: E402

from labelloop.loop.sampling import STRATEGIES  # noqa: E402

PLOTS = Path(__file__).parent / "plots"
REQUIRED = {"bbc": 0.9, "drugs2": 0.8, "drugs3": 0.7}  # for the post-hoc stopping rules (vs teacher labels)
CACHE = Path(tempfile.gettempdir()) / "labelloop-bench-embeddings.db"  # embeddings kept between bench runs


class SharedCache:
    """Embedding cache that reads the project file, then a file shared by bench runs; writes both."""

    def __init__(self, store, shared):
        self.store, self.shared = store, shared

    def get(self, keys: list[str]) -> dict:
        found = self.store.get_embeddings(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            more = self.shared.get_embeddings(missing)
            if more:
                self.store.put_embeddings(more)
            found.update(more)
        return found

    def put(self, vectors: dict) -> None:
        self.store.put_embeddings(vectors)
        self.shared.put_embeddings(vectors)


def sizes(quick: bool) -> dict:
    """Small rounds, so the curves have points where the strategies differ."""
    if quick:
        return {"pool": 160, "test": 100, "llm_test": 40, "first": 20, "step": 20, "rounds": 5}
    return {"pool": 600, "test": 300, "llm_test": 100, "first": 20, "step": 20, "rounds": 10}


def gold_acc(model_dir: str, X: np.ndarray, gold: list[str], classes: list[str]) -> float:
    """Gold accuracy of a saved embedding-head student from precomputed embeddings."""
    from labelloop.classify.folder import load_head, read_meta
    from labelloop.classify.head import head_proba

    saved = read_meta(model_dir)["classes"]
    coef, intercept = load_head(Path(model_dir), len(saved))
    pred = [saved[i] for i in np.argmax(head_proba(X, coef, intercept), axis=1)]
    return float(np.mean([p == g for p, g in zip(pred, gold)]))


def base_project(tmp: Path, name: str, pool, test, llm: dict, seed: int, quick: bool):
    """Ingest the pool once and embed every chunk and gold test text into its project file."""
    from labelloop.classify.encoder import Encoder
    from labelloop.ingest.pipeline import ingest
    from labelloop.classify.student_input import StudentInput
    from labelloop.store import Store

    _, classes, desc = DATASETS[name]
    config = project(tmp, pool, classes, desc, llm, quick, seed)
    store = Store(config.db_path)
    ingest(config, store, progress=False)
    prepare = StudentInput.from_config(config)
    enc = Encoder(config.student_model, cache=SharedCache(store, Store(CACHE)), max_seq_length=prepare.max_length)
    enc.encode(prepare([c.text for c in store.chunks()]))
    X_test = enc.encode(prepare([t for t, _ in test]))
    store.close()
    return config.db_path, X_test, prepare


def configure(config, strategy: str, s: dict, large: dict, relabel: bool) -> None:
    config.sampling.strategy = strategy
    config.training.test_set_size = s["llm_test"]
    config.training.train_set_size = s["first"]
    config.training.train_set_increment = s["step"]
    config.training.max_iters = s["rounds"]
    config.system.required_accuracy = 1.0  # never stop early: every run spends the same budget
    config.stopping.kappa = 1.0  # predictions are recorded for the post-hoc kappa rule ...
    config.stopping.kappa_window = 1000  # ... which never fires inside the run
    config.review.relabel_suspects = relabel
    from labelloop.config import LLMSection

    config.large_model = LLMSection(**large)


def one_run(name, strategy, seed, s, pool, test, base, fakes, relabel, work: Path) -> dict:
    """One loop run with a strategy, from a copy of the ingested project; its curve, stops and flags."""
    from rich.console import Console

    from labelloop.loop.runner import run
    from labelloop.store import Store

    base_db, X_test, prepare = base
    small, large = fakes
    _, classes, desc = DATASETS[name]
    tag = f"{strategy}{'+relabel' if relabel else ''}-{seed}"
    config = project(work / tag, pool, classes, desc, teacher_settings("fake", small), True, seed)
    configure(config, strategy, s, teacher_settings("fake", large), relabel)
    copy_project(base_db, config.db_path).close()
    t0 = time.perf_counter()
    run(config, console=Console(quiet=True), progress=False)
    seconds = time.perf_counter() - t0
    store = Store(config.db_path)
    its = [it for it in store.iterations() if it.status == "done"]
    base_calls = its[0].llm_calls - its[0].train_size  # rules + the large model's test set
    gold = [lab for _, lab in test]
    curve = [{"n": it.n, "train": it.train_size, "calls": it.llm_calls - base_calls,
              "gold_acc": gold_acc(it.model_path, X_test, gold, classes), "teacher_acc": it.accuracy,
              "teacher_acc_low": it.accuracy_low} for it in its]
    row = {"dataset": name, "strategy": strategy, "relabel": relabel, "seed": seed, "seconds": seconds,
           "curve": curve, "stopping": post_hoc_stops(its, name, s, curve)}
    row["flags"] = flag_quality(config, store, its, X_test, gold, prepare, large_fake=large, seed=seed)
    store.close()
    return row


def post_hoc_stops(its, name: str, s: dict, curve: list[dict]) -> dict:
    """Where each stopping rule would have stopped this run: round, training calls, gold accuracy."""
    from labelloop.loop.stopping import LowerBound, PredictionsStable, ProjectedGain, RequiredAccuracy

    rules = {"required_accuracy": RequiredAccuracy(REQUIRED[name]), "lower_bound": LowerBound(REQUIRED[name]),
             "kappa": PredictionsStable(0.99, 2), "min_gain": ProjectedGain(0.005, s["step"])}
    out = {}
    for key, rule in rules.items():
        hit = next((k for k in range(1, len(its) + 1) if rule.stop(its[:k])), None)
        out[key] = None if hit is None else {"n": hit, "calls": curve[hit - 1]["calls"],
                                             "gold_acc": curve[hit - 1]["gold_acc"]}
    return out


def flag_quality(config, store, its, X_test, gold, prepare, *, large_fake, seed: int) -> dict:
    """Precision of the last round's flags against gold; the gain of fixing them vs fixing random ones."""
    from labelloop.loop.label_errors import METRICS_KEY
    from labelloop.loop.training import new_student, round_data

    last = its[-1]
    flags = last.metrics.get(METRICS_KEY) or {}
    flagged = flags.get("flagged") or []
    data = round_data(store, last.n)
    truth = {c.id: c.metadata.get("gold") for c in data.train}
    labels = dict(zip((c.id for c in data.train), data.train_labels))
    llm_ids = [c.id for c, src in zip(data.train, data.train_sources) if src == "llm-small"]
    wrong = {cid for cid in llm_ids if labels[cid] != truth[cid]}
    hits = sum(cid in wrong for cid in flagged)
    texts = {c.id: c.text for c in data.train}

    def score(fixes: dict[int, str]) -> float:
        """Gold accuracy of the same student retrained with some labels fixed."""
        from labelloop.classify.head import head_proba

        student = new_student(config, prepare, cache=store)
        ids = [c.id for c in data.train]
        student.fit(prepare([texts[i] for i in ids]), [fixes.get(i, labels[i]) for i in ids])
        pred = [student.classes_[i] for i in np.argmax(head_proba(X_test, student.coef_, student.intercept_), axis=1)]
        return float(np.mean([p == g for p, g in zip(pred, gold)]))

    def large_answer(cid: int) -> str:
        return large_fake.teacher.answer_label(texts[cid], config.classes)[0]

    out = {"flagged": len(flagged), "checked": flags.get("checked"), "flag_precision": hits / len(flagged)
           if flagged else None, "flag_recall": hits / len(wrong) if wrong else None,
           "label_error_rate": len(wrong) / len(llm_ids) if llm_ids else None, "base_acc": score({})}
    k = len([cid for cid in flagged if cid in labels])
    if k:
        rng = np.random.default_rng(seed)
        draws = [rng.choice(llm_ids, size=min(k, len(llm_ids)), replace=False).tolist() for _ in range(5)]
        for how, fix in (("review", lambda cid: truth[cid]), ("relabel", large_answer)):
            out[f"{how}_flagged_acc"] = score({cid: fix(cid) for cid in flagged if cid in labels})
            out[f"{how}_random_acc"] = statistics.fmean(score({cid: fix(cid) for cid in d}) for d in draws)
    return out


def mean_curve(rows: list[dict]) -> list[dict]:
    """Round-by-round mean over seeds of training calls and gold accuracy."""
    rounds = min(len(r["curve"]) for r in rows)
    return [{"n": k + 1, "calls": statistics.fmean(r["curve"][k]["calls"] for r in rows),
             "gold_acc": statistics.fmean(r["curve"][k]["gold_acc"] for r in rows)} for k in range(rounds)]


def calls_to_reach(curve: list[dict], target: float) -> float | None:
    return next((p["calls"] for p in curve if p["gold_acc"] >= target - 1e-9), None)


def label(row: dict) -> str:
    return row["strategy"] + ("+relabel" if row["relabel"] else "")


def summarize(rows: list[dict], slack: float) -> list[dict]:
    """Per data set and strategy: calls to reach sequential's accuracy, relative to sequential; flags; stops."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        by = {k: [r for r in mine if label(r) == k] for k in dict.fromkeys(label(r) for r in mine)}
        seq = mean_curve(by["sequential"]) if "sequential" in by else None
        target = seq[-1]["gold_acc"] - slack if seq else None
        seq_calls = calls_to_reach(seq, target) if seq else None
        for strat, rs in by.items():
            curve = mean_curve(rs)
            calls = calls_to_reach(curve, target) if target is not None else None

            def flag(key: str):
                vals = [r["flags"].get(key) for r in rs if r["flags"].get(key) is not None]
                return statistics.fmean(vals) if vals else None

            def stop(rule: str, key: str):
                vals = [r["stopping"][rule][key] for r in rs if r["stopping"][rule]]
                return (statistics.fmean(vals), len(vals)) if vals else None

            gain = {how: (flag(f"{how}_flagged_acc") - flag("base_acc"), flag(f"{how}_random_acc") - flag("base_acc"))
                    if flag(f"{how}_flagged_acc") is not None else None for how in ("review", "relabel")}
            out.append({
                "dataset": ds, "strategy": strat, "seeds": len(rs), "target": target,
                "calls_to_target": calls, "budget": curve[-1]["calls"],
                "vs_sequential": calls / seq_calls if calls is not None and seq_calls else None,
                "final_gold_acc": curve[-1]["gold_acc"], "first_gold_acc": curve[0]["gold_acc"],
                "mean_gold_acc": statistics.fmean(p["gold_acc"] for p in curve),  # area under the curve / rounds
                "flag_precision": flag("flag_precision"), "flag_recall": flag("flag_recall"),
                "label_error_rate": flag("label_error_rate"), "flagged": flag("flagged"), "gain": gain,
                "stops": {rule: {"calls": stop(rule, "calls"), "gold_acc": stop(rule, "gold_acc")}
                          for rule in ("required_accuracy", "lower_bound", "kappa", "min_gain")},
                "seconds": statistics.fmean(r["seconds"] for r in rs),
            })
    return out


def _f(v, fmt=".1f", scale=100.0, none="-") -> str:
    return none if v is None else format(v * scale, fmt)


def tables(summary: list[dict]) -> str:
    """Markdown: calls to reach the target, label-error flags, stopping rules."""
    lines = ["| data set | strategy | target gold acc % | calls to reach | × sequential | gold acc % after 1st / last round "
             "| mean gold acc % over rounds | s/run |", "|---|---|---|---|---|---|---|---|"]
    for r in summary:
        calls = f"{r['calls_to_target']:.0f}" if r["calls_to_target"] is not None else f"> {r['budget']:.0f}"
        ratio = f"{r['vs_sequential']:.2f}" if r["vs_sequential"] is not None else "not reached"
        lines.append(f"| {r['dataset']} | {r['strategy']} | {_f(r['target'])} | {calls} | {ratio} "
                     f"| {_f(r['first_gold_acc'])} / {_f(r['final_gold_acc'])} | {_f(r.get('mean_gold_acc'))} "
                     f"| {r['seconds']:.0f} |")
    lines += ["", "| data set | strategy | LLM label error rate % | flagged | flag precision % | flag recall % "
              "| review gain flagged / random (points) | large-model relabel gain flagged / random (points) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in summary:
        g = r["gain"]
        rev = f"{_f(g['review'][0], '+.1f')} / {_f(g['review'][1], '+.1f')}" if g["review"] else "-"
        rel = f"{_f(g['relabel'][0], '+.1f')} / {_f(g['relabel'][1], '+.1f')}" if g["relabel"] else "-"
        lines.append(f"| {r['dataset']} | {r['strategy']} | {_f(r['label_error_rate'])} | "
                     f"{_f(r['flagged'], '.0f', 1.0)} | {_f(r['flag_precision'])} | {_f(r['flag_recall'])} | {rev} | {rel} |")
    lines += ["", "| data set | strategy | rule: stops at training calls (gold acc %) |", "|---|---|---|"]
    for r in summary:
        parts = []
        for rule, v in r["stops"].items():
            parts.append(f"{rule} {v['calls'][0]:.0f} ({_f(v['gold_acc'][0])})" if v["calls"] else f"{rule} never")
        lines.append(f"| {r['dataset']} | {r['strategy']} | {'; '.join(parts)} |")
    return "\n".join(lines)


def plot(rows: list[dict], summary: list[dict], prefix: str) -> list[Path]:
    """bench/plots/<prefix>active_<dataset>.png: gold accuracy vs training-label calls per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        mine = [r for r in rows if r["dataset"] == ds]
        for i, strat in enumerate(dict.fromkeys(label(r) for r in mine)):
            curve = mean_curve([r for r in mine if label(r) == strat])
            ax.plot([p["calls"] for p in curve], [100 * p["gold_acc"] for p in curve], "o-", ms=3,
                    color=f"C{i}", label=strat)
        target = next((s["target"] for s in summary if s["dataset"] == ds), None)
        if target is not None:
            ax.axhline(100 * target, color="grey", ls=":", label="target (sequential's final - slack)")
        ax.set_xlabel("LLM calls for training labels")
        ax.set_ylabel("student accuracy on gold test split (%)")
        ax.set_title(f"{ds}: learning curve per sampling strategy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        path = PLOTS / f"{prefix}active_{ds}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="160-document pools, 5 rounds of 20, one seed (< 4 min)")
    ap.add_argument("--datasets", default=None, help="default: bbc,drugs2 (quick) or bbc,drugs2,drugs3")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--relabel", default=None,
                    help="also run these strategies with review.relabel_suspects: true (default: diverse-uncertainty; "
                         "'' for none; quick: none)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--small-acc", type=float, default=0.85, help="the small model's accuracy")
    ap.add_argument("--large-acc", type=float, default=0.95, help="the large model's accuracy")
    ap.add_argument("--slack", type=float, default=0.01, help="target = sequential's final gold accuracy - slack")
    ap.add_argument("--order", choices=["shuffled", "source"], default="shuffled",
                    help="pool order in the input file: shuffled, or grouped by class as a folder per topic reads")
    ap.add_argument("--name", default="active", help="results file: bench/results/<date>-<name>.json")
    ap.add_argument("--from-json", type=Path, help="summarize, tabulate and plot this results file again (no runs)")
    args = ap.parse_args(argv)
    if args.from_json:
        return rerender(args.from_json)
    from labelloop.testing.fake_openai import FakeOpenAI

    s = sizes(args.quick)
    datasets = (args.datasets or ("bbc,drugs2" if args.quick else "bbc,drugs2,drugs3")).split(",")
    relabel = [x for x in (args.relabel if args.relabel is not None else
                           ("" if args.quick else "diverse-uncertainty")).split(",") if x]
    plan = [(st, False) for st in args.strategies.split(",")] + [(st, True) for st in relabel]
    rows: list[dict] = []
    started = time.perf_counter()
    for name in datasets:
        loader, _classes, _desc = DATASETS[name]
        pool, test = loader()
        pool, test = pool[: s["pool"]], test[: s["test"]]
        if args.order == "source":
            pool = sorted(pool, key=lambda item: item[1])
        with tempfile.TemporaryDirectory() as tmpdir:
            t0 = time.perf_counter()
            for seed in [int(x) for x in args.seeds.split(",")]:
                small = FakeOpenAI(gold=dict(pool + test), accuracy=args.small_acc, seed=seed).start()
                large = FakeOpenAI(gold=dict(pool + test), accuracy=args.large_acc, seed=seed + 1000).start()
                try:
                    base = base_project(Path(tmpdir) / f"base-{seed}", name, pool, test,
                                        teacher_settings("fake", small), seed, True)
                    print(f"{name}: ingested and embedded in {time.perf_counter() - t0:.0f}s", flush=True)
                    for strategy, rel in plan:
                        row = one_run(name, strategy, seed, s, pool, test, base, (small, large), rel, Path(tmpdir))
                        rows.append(row)
                        last = row["curve"][-1]
                        print(f"  {label(row):28s} seed {seed}: gold acc {100 * last['gold_acc']:.1f}% after "
                              f"{last['calls']} calls ({row['seconds']:.0f}s)", flush=True)
                        write_results(args.name, {"env": environment(), "args": vars(args), "sizes": s,
                                                  "rows": rows}, quiet=True)
                finally:
                    small.stop()
                    large.stop()
    summary = summarize(rows, args.slack)
    md = tables(summary)
    print(md)
    plots = plot(rows, summary, "quick-" if args.quick else "")
    payload = {"env": environment(), "args": vars(args), "sizes": s, "rows": rows, "summary": summary,
               "table": md, "plots": [str(p) for p in plots], "seconds": time.perf_counter() - started}
    write_results(args.name, payload)
    print(f"total {time.perf_counter() - started:.0f}s")
    return payload


def rerender(path: Path) -> dict:
    """Summary, tables and plots of a saved run, written back into the same file."""
    import json

    payload = json.loads(path.read_text())
    payload["summary"] = summarize(payload["rows"], payload["args"]["slack"])
    payload["table"] = tables(payload["summary"])
    payload["plots"] = [str(p) for p in plot(payload["rows"], payload["summary"],
                                             "quick-" if payload["args"].get("quick") else "")]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
    print(payload["table"])
    return payload


if __name__ == "__main__":
    main()
