"""Labeling rate against a server of known capacity: is the achieved rate within 10% of capacity / latency?

The fake OpenAI-compatible server runs in its own process with `capacity` requests served at
once, each taking `latency` seconds: at most capacity / latency calls/s. Over capacity it either
queues requests or refuses them with 429 + Retry-After. The whole labeler (call log, store
writes) runs against it with system.concurrency_limit at capacity, a quarter above it (so a
queueing server never waits on the client between requests), and far above it with and
without the adaptive (AIMD) limit.

    .venv/bin/python bench/bench_label_rate.py [--capacity 8] [--latency 0.05] [--seconds 4]

Prints a table and writes bench/results/<date>-label_rate-<latency>ms.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_llm_http import CLASSES, RULES, texts  # noqa: E402
from common import environment, write_results  # noqa: E402

from labelloop.config import LLMSection  # noqa: E402
from labelloop.errors import LLMError  # noqa: E402
from labelloop.llm.labeler import label_chunks  # noqa: E402
from labelloop.llm.openai_backend import OpenAIBackend  # noqa: E402
from labelloop.store import NewChunk, Store  # noqa: E402
from labelloop.testing import FakeOpenAI  # noqa: E402


def _server_process(conn, options: dict) -> None:
    """Child: one fake server with these options; answers 'stats' with its counters until 'stop'."""
    fake = FakeOpenAI(**options).start()
    conn.send(fake.base_url)
    while conn.recv() == "stats":
        conn.send({"by_status": dict(fake.by_status), "max_in_flight": fake.max_in_flight})
    fake.stop()


class ServerProcess:
    """A FakeOpenAI in another process (its own GIL), so the server's CPU does not slow the client."""

    def __init__(self, **options):
        self._conn, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_server_process, args=(child, options), daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()

    def stats(self) -> dict:
        self._conn.send("stats")
        return self._conn.recv()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self._conn.send("stop")
        self._proc.join(10)


async def label_all(base_url: str, limit: int, adaptive: bool, n: int, folder: Path, tag: str) -> dict:
    store = Store(folder / f"{tag}.db")
    store.add_document(tag, "0" * 64, None, [NewChunk(t, tag, i) for i, t in enumerate(texts(n, tag))])
    rules = store.add_rules(RULES, author="bench")
    backend = OpenAIBackend(LLMSection(mode="api", base_url=base_url, model="fake-model", max_retries=50),
                            limit, adaptive=adaptive)
    start = time.perf_counter()
    summary = await label_chunks(store, backend, store.chunks(), source="llm-small", classes=CLASSES, rules=rules,
                                 description="News topics.", concurrency_limit=limit, progress=False)
    wall = time.perf_counter() - start
    await backend.aclose()
    s = backend.limiter.stats
    return {"labeled": summary.labeled, "seconds": wall, "calls_per_s": summary.labeled / wall,
            "final_limit": backend.limiter.limit, "client_max_in_flight": s.max_in_flight,
            "decreases": s.decreases, "overloads": s.overloads}


def scenario(name: str, args, folder: Path, *, over: str, limit: int, adaptive: bool, retry_after: float) -> dict:
    ideal = args.capacity / args.latency
    n = int(ideal * args.seconds)
    with ServerProcess(capacity=args.capacity, over_capacity=over, latency_s=args.latency,
                       retry_after_s=retry_after) as server:
        asyncio.run(label_all(server.base_url, limit, adaptive, 20, folder, f"{name}-warmup"))
        server.stats()
        start = time.perf_counter()
        try:
            row = asyncio.run(label_all(server.base_url, limit, adaptive, n, folder, name))
        except LLMError as exc:  # a request refused max_retries times in a row: the run stops, as a real one would
            wall = time.perf_counter() - start
            row = {"labeled": 0, "seconds": wall, "calls_per_s": 0.0, "final_limit": limit,
                   "client_max_in_flight": limit, "error": str(exc).split(". ")[0]}
        stats = server.stats()
    row.update(scenario=name, over_capacity=over, concurrency_limit=limit, adaptive=adaptive,
               retry_after_s=retry_after, ideal_calls_per_s=ideal, ratio=row["calls_per_s"] / ideal,
               server_429=stats["by_status"].get("429", 0), server_max_in_flight=stats["max_in_flight"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=8, help="requests the fake server serves at once")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--seconds", type=float, default=4.0, help="rough duration of each scenario")
    parser.add_argument("--over-limit", type=int, default=32, help="concurrency_limit for the over-capacity cases")
    args = parser.parse_args()
    c, big = args.capacity, args.over_limit
    margin = math.ceil(c * 1.25)
    plan = [
        ("at capacity, server queues", dict(over="queue", limit=c, adaptive=True, retry_after=1.0)),
        (f"{margin} (capacity +25%), server queues", dict(over="queue", limit=margin, adaptive=True, retry_after=1.0)),
        ("at capacity, server refuses", dict(over="reject", limit=c, adaptive=True, retry_after=1.0)),
        (f"{big} > capacity, 429, adaptive", dict(over="reject", limit=big, adaptive=True, retry_after=1.0)),
        (f"{big} > capacity, 429, fixed", dict(over="reject", limit=big, adaptive=False, retry_after=1.0)),
        (f"{big} > capacity, 429 0.05s, adaptive", dict(over="reject", limit=big, adaptive=True, retry_after=0.05)),
        (f"{big} > capacity, 429 0.05s, fixed", dict(over="reject", limit=big, adaptive=False, retry_after=0.05)),
    ]
    rows = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in plan:
            rows.append(scenario(name, args, Path(tmp), **kw))
            r = rows[-1]
            print(f"{name}: {r['calls_per_s']:.1f} calls/s ({r['ratio']:.0%} of {r['ideal_calls_per_s']:.0f})"
                  + (f" FAILED: {r['error']}" if "error" in r else ""), flush=True)
    load_end = os.getloadavg()
    print(f"\nfake server: capacity {c} in flight x {args.latency * 1000:.0f} ms = {c / args.latency:.0f} calls/s at most; "
          f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} -> {load_end[0]:.1f}")
    print(f"{'scenario':<36} {'calls/s':>8} {'of cap':>7} {'429s':>6} {'limit end':>9} {'client max':>10} {'server max':>10}")
    for r in rows:
        print(f"{r['scenario']:<36} {r['calls_per_s']:>8.1f} {r['ratio']:>7.1%} {r['server_429']:>6} "
              f"{r['final_limit']:>9} {r['client_max_in_flight']:>10} {r['server_max_in_flight']:>10}"
              + ("  gave up: a request was refused max_retries times" if "error" in r else ""))
    write_results(f"label_rate-{args.latency * 1000:.0f}ms",
                  {"env": environment(), "args": vars(args), "load_avg": [load_start, load_end], "rows": rows})


if __name__ == "__main__":
    main()
