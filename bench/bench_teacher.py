"""The embedded teacher: which packaged model labels best, at what cost, with its own rules.

For each data set (BBC topics, drug reviews 2-class) and each packaged model:
1. the model writes its own rules from the task description and 5 sample texts, through the same
   code path as `labelloop run` (labelloop.llm.rules.create_rules, the call log on a scratch store);
2. on a dev sample drawn from the pool (never the gold test split), each prompt order
   (text first / question first; chat models only) is scored, raw and calibrated from the same
   pass: the best of these on dev is the setting reported;
3. that setting labels the report items from the gold test split: accuracy, macro-F1, s/label.

Run: .venv/bin/python bench/bench_teacher.py [--models a,b] [--datasets bbc,drugs2] [--n 100] [--dev 40]
Writes bench/results/<date>-teacher.json and prints the tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.common import environment, write_results  # noqa: E402
from bench_data import DATASETS  # noqa: E402

from labelloop.config import LLMSection  # noqa: E402
from labelloop.evaluate import evaluate  # noqa: E402
from labelloop.llm.base import LabelTask  # noqa: E402
from labelloop.llm.calls import CallLog  # noqa: E402
from labelloop.llm.embedded import EmbeddedBackend  # noqa: E402
from labelloop.llm.embedded_chat import DEFAULT_ORDER, ORDERS  # noqa: E402
from labelloop.llm.rules import create_rules, says_nothing  # noqa: E402
from labelloop.store import Store  # noqa: E402

MODELS = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "gemma-3-270m"]
DESCRIPTIONS = {  # the demo's description for BBC: what a user would write
    "bbc": ("Classify each news article by its main topic. business: companies, markets, the economy. "
            "entertainment: film, music, TV, celebrities. politics: government, parties, elections. "
            "sports: games, athletes, competitions. tech: computers, the internet, gadgets, software."),
}


def balanced(items: list[tuple[str, str]], n: int, classes: list[str], rng: random.Random) -> list[tuple[str, str]]:
    per = max(1, n // len(classes))
    out = []
    for c in classes:
        mine = [it for it in items if it[1] == c]
        out += rng.sample(mine, min(per, len(mine)))
    rng.shuffle(out)
    return out


def own_rules(backend: EmbeddedBackend, desc: str, classes: list[str], samples: list[str]) -> tuple[str, float, str]:
    """(rules, seconds, author) as `labelloop run` would write them with this model as the large role."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "p.db")
        notes: list[str] = []
        t0 = time.perf_counter()
        rules = asyncio.run(create_rules(store, backend, description=desc, classes=classes, samples=samples,
                                         call_log=CallLog(store), notes=notes))
        return rules.text, time.perf_counter() - t0, rules.author


def label_all(backend: EmbeddedBackend, items, classes, rules: str, desc: str) -> tuple[list[dict], float]:
    async def go():
        out = []
        for text, _gold in items:
            r = await backend.classify(LabelTask(text, tuple(classes), rules, desc))
            out.append({"calibrated": r.label if r.response.get("calibrated") else None,
                        "raw": max(r.response["uncalibrated"], key=r.response["uncalibrated"].get),
                        "cal_probs": r.response["probs"] if r.response.get("calibrated") else None})
        return out

    t0 = time.perf_counter()
    answers = asyncio.run(go())
    return answers, (time.perf_counter() - t0) / max(1, len(items))


def accuracy(answers: list[dict], items, key: str) -> float:
    return sum(a[key] == gold for a, (_t, gold) in zip(answers, items)) / max(1, len(items))


def one(model: str, name: str, n: int, n_dev: int, seed: int) -> dict:
    loader, classes, desc = DATASETS[name]
    desc = DESCRIPTIONS.get(name, desc)
    pool, test = loader()
    rng = random.Random(seed)
    dev = balanced(pool, n_dev, classes, rng)
    report = balanced(test, n, classes, rng)
    samples = [t for t, _ in rng.sample(pool, 5)]
    writer = EmbeddedBackend(LLMSection(model=model, calibrate=True))
    rules, rules_s, author = own_rules(writer, desc, classes, samples)
    chat = writer._slot.chat is not None
    orders = list(ORDERS) if chat else ["text-first"]
    dev_rows = []
    for order in orders:
        backend = EmbeddedBackend(LLMSection(model=model, calibrate=True), order=order)
        answers, s_per = label_all(backend, dev, classes, rules, desc)
        for kind in ("raw", "calibrated"):
            dev_rows.append({"order": order, "calibrate": kind == "calibrated", "dev_acc": accuracy(answers, dev, kind),
                             "s_per_label": s_per})
        print(f"  {model} {name} dev {order}: raw {dev_rows[-2]['dev_acc']:.3f} "
              f"calibrated {dev_rows[-1]['dev_acc']:.3f} ({s_per:.2f} s/label)", flush=True)
    # Ties go to labelloop's default (text-then-task, calibrated), then to the faster setting.
    best = max(dev_rows, key=lambda r: (round(r["dev_acc"], 6), r["order"] == DEFAULT_ORDER and r["calibrate"],
                                        -r["s_per_label"]))
    backend = EmbeddedBackend(LLMSection(model=model, calibrate=True), order=best["order"])
    answers, s_per = label_all(backend, report, classes, rules, desc)  # raw and calibrated from the same pass
    key = "calibrated" if best["calibrate"] else "raw"
    m = evaluate([g for _, g in report], [a[key] for a in answers], classes)
    other = accuracy(answers, report, "raw" if best["calibrate"] else "calibrated")  # for the record only
    row = {"model": model, "data": name, "chat_template": chat, "rules": rules, "rules_author": author,
           "rules_s": round(rules_s, 1), "rules_say_nothing": says_nothing(rules, classes), "dev": dev_rows,
           "chosen": {"order": best["order"], "calibrate": best["calibrate"]}, "n": len(report),
           "accuracy": m.accuracy, "macro_f1": m.macro_f1, "s_per_label": s_per,
           "other_calibration_accuracy_same_pass": other}
    print(f"{model} {name}: acc {m.accuracy:.3f} F1 {m.macro_f1:.3f} ({s_per:.2f} s/label; order {best['order']}, "
          f"calibrated {best['calibrate']}); rules by {author} in {rules_s:.0f}s", flush=True)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | data | accuracy | macro-F1 | s/label | prompt (chosen on dev) | rules | dev accuracy raw / calibrated: "
             + ", ".join(ORDERS) + " |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = {(d["order"], d["calibrate"]): d["dev_acc"] for d in r["dev"]}
        cells = ", ".join(f"{dev[(o, False)]:.2f} / {dev[(o, True)]:.2f}" for o in ORDERS if (o, False) in dev)
        chosen = f"{r['chosen']['order']}, {'calibrated' if r['chosen']['calibrate'] else 'raw'}"
        said = "restate the classes: description used" if "description" in r["rules_author"] else "own"
        lines.append(f"| {r['model']} | {r['data']} | {100 * r['accuracy']:.1f} | {100 * r['macro_f1']:.1f} | "
                     f"{r['s_per_label']:.2f} | {chosen} | {said} ({r['rules_s']:.0f} s) | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--datasets", default="bbc,drugs2")
    parser.add_argument("--n", type=int, default=100, help="report items per data set (gold test split)")
    parser.add_argument("--dev", type=int, default=40, help="dev items per data set (from the pool)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="teacher")
    args = parser.parse_args()
    rows = [one(m, d, args.n, args.dev, args.seed) for d in args.datasets.split(",") for m in args.models.split(",")]
    text = table(rows)
    print("\n" + text)
    write_results(args.name, {**environment(), "args": vars(args), "rows": rows, "table": text})


if __name__ == "__main__":
    main()
