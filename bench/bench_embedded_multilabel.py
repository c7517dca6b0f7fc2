"""Embedded multi-label labeling: per-label agreement with BBC gold, and seconds per chunk vs single-label.

Data: the test split of bench_data.bbc_multilabel (half single articles, half two articles of
different topics joined; every article cut so a document stays one chunk, max_chars=1000), the
first --n documents. Each model answers every document twice through EmbeddedBackend: as a
multi-label task (one calibrated yes/no per class, the text evaluated once) and as a single-label
task (for the time per chunk only). The first call of each kind also scores the content-free
inputs (calibration, once per prompt); it is timed apart and left out of the per-chunk times.

Reported per model: per-label accuracy, precision, recall, F1 and ROC AUC of calibrated p(yes)
against gold, micro-/macro-F1 and subset accuracy at the calibrated 0.5. With two models, also
the small model (last in --models) with per-label thresholds tuned (classify.thresholds) on the
large model's (first in --models) label sets, as the loop does: no gold is used for that choice.

Run: .venv/bin/python bench/bench_embedded_multilabel.py [--n 40] [--models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b]
     [--no-rules]
Writes bench/results/<date>-embedded-multilabel[-no-rules].json and prints a table.
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
from common import environment, write_results  # noqa: E402

from labelloop.classify.thresholds import tune_thresholds  # noqa: E402
from labelloop.config import LLMSection  # noqa: E402
from labelloop.llm.base import LabelTask  # noqa: E402
from labelloop.llm.embedded import EmbeddedBackend  # noqa: E402

CLASSES = tuple(BBC_TOPICS)
DESC = "BBC News articles by topic. A document may join two articles; it then has both topics."
RULES = "\n".join(f"{i}. {c}: the document, or a part of it, is about {c}." for i, c in enumerate(CLASSES, 1))


def run_model(model: str, items, rules: str) -> dict:
    """Every document as a multi-label and a single-label task; probabilities and seconds per chunk."""
    backend = EmbeddedBackend(LLMSection(model=model, calibrate=True))

    def ask(text: str, multi_label: bool):
        t0 = time.perf_counter()
        answer = asyncio.run(backend.classify(LabelTask(text, CLASSES, rules, DESC, multi_label=multi_label)))
        return answer, time.perf_counter() - t0

    first = {kind: ask(items[0][0], kind)[1] for kind in (True, False)}  # includes the calibration
    probs, multi_s, single_s, prompt_tokens = [], [], [], []
    for text, _ in items:
        answer, seconds = ask(text, True)
        probs.append([answer.probs[c] for c in CLASSES])
        multi_s.append(seconds)
        prompt_tokens.append(answer.request["prompt_tokens"])
        single_s.append(ask(text, False)[1])
    return {"identity": backend.identity, "probs": np.array(probs),
            "multi_s": float(np.mean(multi_s)), "single_s": float(np.mean(single_s)),
            "first_call_s": {"multi": round(first[True], 2), "single": round(first[False], 2)},
            "prompt_tokens": float(np.mean(prompt_tokens))}


def per_label(Y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    out = {}
    for j, c in enumerate(CLASSES):
        y, p = Y[:, j].astype(bool), pred[:, j]
        tp = float((y & p).sum())
        out[c] = {"accuracy": float((y == p).mean()), "precision": tp / max(1.0, p.sum()),
                  "recall": tp / max(1.0, y.sum()), "f1": 2 * tp / max(1.0, p.sum() + y.sum()),
                  "auc": float(roc_auc_score(y, probs[:, j])) if 0 < y.sum() < len(y) else None}
    return out


def overall(Y: np.ndarray, pred: np.ndarray) -> dict:
    tp = float((Y & pred).sum())
    f1s = [2 * float((Y[:, j] & pred[:, j]).sum()) / max(1.0, pred[:, j].sum() + Y[:, j].sum())
           for j in range(Y.shape[1])]
    return {"micro_f1": 2 * tp / max(1.0, pred.sum() + Y.sum()), "macro_f1": float(np.mean(f1s)),
            "subset_accuracy": float((Y == pred).all(axis=1).mean()),
            "label_accuracy": float((Y == pred).mean()), "mean_labels": float(pred.sum(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--models", default="qwen2.5-coder-1.5b,qwen2.5-coder-0.5b")
    parser.add_argument("--no-rules", action="store_true", help="the task description only, no rule per label")
    args = parser.parse_args()
    _, test = bbc_multilabel(n_train=0, n_test=args.n, joined_share=0.5, seed=0, max_chars=1000)
    Y = np.array([[c in labels for c in CLASSES] for _, labels in test])
    rules = "" if args.no_rules else RULES
    results = {}
    for model in args.models.split(","):
        run = run_model(model, test, rules)
        pred = run["probs"] >= 0.5
        results[model] = {k: v for k, v in run.items() if k != "probs"}
        results[model].update(at_half=overall(Y, pred), per_label=per_label(Y, pred, run["probs"]),
                              probs=run["probs"].round(4).tolist())
        print(f"{model}: {run['multi_s']:.2f} s/chunk multi-label, {run['single_s']:.2f} single-label", flush=True)
    names = args.models.split(",")
    if len(names) >= 2:
        large, small = names[0], names[-1]
        teacher = np.array(results[large]["probs"]) >= 0.5
        thresholds = tune_thresholds(np.array(results[small]["probs"]), teacher)
        pred = np.array(results[small]["probs"]) >= thresholds
        results[f"{small} @ thresholds from {large}"] = {
            "thresholds": dict(zip(CLASSES, map(float, thresholds))), "at_half": overall(Y, pred),
            "per_label": per_label(Y, pred, np.array(results[small]["probs"]))}
    payload = {"environment": environment(), "n": len(test), "joined": int((Y.sum(axis=1) == 2).sum()),
               "rules": rules, "description": DESC, "results": results}
    write_results("embedded-multilabel" + ("-no-rules" if args.no_rules else ""), payload)
    print(table(payload))


def table(payload: dict) -> str:
    title = (f"BBC multi-label test split, first {payload['n']} documents ({payload['joined']} joined), "
             f"rules: {'per label' if payload['rules'] else 'none'}")
    header = ("| model | decision | micro-F1 | macro-F1 | subset acc | label acc | labels/doc | s/chunk multi | "
              "s/chunk single |")
    lines = [title, header, "|---|---|---|---|---|---|---|---|---|"]
    for name, r in payload["results"].items():
        m = r["at_half"]
        decision = "tuned on large" if "thresholds" in r else "calibrated 0.5"
        times = (f"{r['multi_s']:.2f} | {r['single_s']:.2f}" if "multi_s" in r else "- | -")
        lines.append(f"| {name.split(' @')[0]} | {decision} | {m['micro_f1']:.3f} | {m['macro_f1']:.3f} | "
                     f"{m['subset_accuracy']:.3f} | {m['label_accuracy']:.3f} | {m['mean_labels']:.2f} | {times} |")
    lines += ["", "| model | decision | " + " | ".join(f"{c} F1 / AUC" for c in CLASSES) + " |",
              "|---|---|" + "---|" * len(CLASSES)]
    for name, r in payload["results"].items():
        decision = "tuned on large" if "thresholds" in r else "calibrated 0.5"
        cells = [f"{v['f1']:.2f} / {v['auc']:.2f}" if v["auc"] is not None else f"{v['f1']:.2f} / -"
                 for v in r["per_label"].values()]
        lines.append(f"| {name.split(' @')[0]} | {decision} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
