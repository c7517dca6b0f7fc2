"""Calls/s of the HTTP backend against the fake server (fixed latency, high capacity).

Measures OpenAIBackend.classify alone and the whole labeler (call log + store writes)
at concurrency 1, 8 and 32. Prints a table and writes bench/results/llm_http.json.

    .venv/bin/python bench/bench_llm_http.py [--latency 0.05] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import statistics
import tempfile
import time
from pathlib import Path

from labelloop.config import LLMSection
from labelloop.llm.base import LabelTask
from labelloop.llm.labeler import label_chunks
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.store import NewChunk, Store
from labelloop.testing import FakeOpenAI

CLASSES = ("business", "entertainment", "politics", "sport", "tech")
RULES = "\n".join(f"{i}. Label a document `{c}` when it is mainly about {c}." for i, c in enumerate(CLASSES, 1))


def texts(n: int, tag: str) -> list[str]:
    return [f"[{tag} {i}] The minister said the budget would support small firms and the film industry. " * 6
            for i in range(n)]


async def bench_backend(fake: FakeOpenAI, concurrency: int, n: int) -> dict:
    backend = OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model), concurrency)
    latencies: list[float] = []

    async def one(text: str) -> None:
        start = time.perf_counter()
        result = await backend.classify(LabelTask(text, CLASSES, RULES, "News topics."))
        assert result.label is not None
        latencies.append(time.perf_counter() - start)

    await one("warm-up request")
    latencies.clear()
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(t) for t in texts(n, f"backend-c{concurrency}")))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    await backend.aclose()
    return {"calls": n, "seconds": wall, "calls_per_s": n / wall, "client_cpu_ms_per_call": 1000 * cpu / n,
            "mean_wait_ms": 1000 * statistics.mean(latencies)}


async def bench_labeler(fake: FakeOpenAI, concurrency: int, n: int, folder: Path) -> dict:
    store = Store(folder / f"bench_c{concurrency}.db")
    store.add_document("bench", "0" * 64, None,
                       [NewChunk(t, "bench", i) for i, t in enumerate(texts(n, f"labeler-c{concurrency}"))])
    rules = store.add_rules(RULES, author="bench")
    backend = OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model), concurrency)
    start = time.perf_counter()
    summary = await label_chunks(store, backend, store.chunks(), source="llm-small", classes=CLASSES, rules=rules,
                                 description="News topics.", concurrency_limit=concurrency, progress=False)
    wall = time.perf_counter() - start
    assert summary.labeled == n, summary
    start = time.perf_counter()
    cached = await label_chunks(store, backend, store.chunks(), source="llm-small", classes=CLASSES, rules=rules,
                                description="News topics.", concurrency_limit=concurrency, progress=False)
    cached_wall = time.perf_counter() - start
    assert cached.cached == n
    await backend.aclose()
    return {"calls": n, "seconds": wall, "calls_per_s": n / wall, "cached_rerun_per_s": n / cached_wall}


def _serve(conn, latency: float) -> None:
    """Child process: run the fake server (its own GIL) and report its port; stop when told."""
    fake = FakeOpenAI(latency_s=latency, capacity=256).start()
    conn.send(fake.base_url)
    while True:
        msg = conn.recv()
        if msg == "stop":
            break
        conn.send(fake.max_in_flight)
        fake.reset_counts()
    fake.stop()


class _RemoteFake:
    """The fake server in another process, so the client's CPU time is measured alone."""

    def __init__(self, latency: float):
        self._conn, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_serve, args=(child, latency), daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()
        self.model = "fake-model"

    def take_max_in_flight(self) -> int:
        self._conn.send("stats")
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake spends per request")
    parser.add_argument("--seconds", type=float, default=3.0, help="rough target duration per measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "llm_http.json")
    args = parser.parse_args()
    rows = []
    fake = _RemoteFake(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in (1, 8, 32):
                ideal = concurrency / args.latency
                n = max(20, int(ideal * args.seconds))
                fake.take_max_in_flight()
                b = asyncio.run(bench_backend(fake, concurrency, n))
                max_in_flight = fake.take_max_in_flight()
                lab = asyncio.run(bench_labeler(fake, concurrency, n, Path(tmp)))
                rows.append({"concurrency": concurrency, "ideal_calls_per_s": ideal, "max_in_flight": max_in_flight,
                             "backend": b, "labeler": lab})
    finally:
        fake.stop()
    header = f"{'conc':>4} {'ideal/s':>8} {'backend/s':>10} {'eff':>5} {'cpu ms/call':>11} " \
             f"{'labeler/s':>10} {'cached/s':>9} {'in-flight':>9}"
    print(f"fake server latency {args.latency * 1000:.0f} ms per request")
    print(header)
    for r in rows:
        b, lab = r["backend"], r["labeler"]
        print(f"{r['concurrency']:>4} {r['ideal_calls_per_s']:>8.0f} {b['calls_per_s']:>10.1f} "
              f"{b['calls_per_s'] / r['ideal_calls_per_s']:>5.0%} {b['client_cpu_ms_per_call']:>11.1f} "
              f"{lab['calls_per_s']:>10.1f} {lab['cached_rerun_per_s']:>9.0f} {r['max_in_flight']:>9}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"latency_s": args.latency, "machine": platform.platform(),
                                    "python": platform.python_version(), "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
