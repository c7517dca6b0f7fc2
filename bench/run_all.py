"""Run every benchmark: `make bench` (full) or `make bench-quick` (small sizes, a few minutes).

Each script prints its table and writes JSON under bench/results/. CI never runs these.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).parent

FULL = [
    ["bench_ingest.py"],
    ["bench_llm_http.py"],
    ["bench_embedded.py"],
    ["bench_students.py"],
    ["bench_teacher.py"],
    ["bench_student_choice.py", "--students", "head-minilm,head-mpnet,static,auto", "--budget", "120"],
    ["bench_loop.py", "--seeds", "0,1,2"],
    ["bench_fewshot.py"],
    ["bench_active.py", "--seeds", "0,1"],
    ["bench_scale.py"],
    ["bench_label_rate.py", "--latency", "0.2"],
    ["bench_label_rate.py", "--latency", "0.05"],
    ["bench_reliability.py", "--readme"],
]
QUICK = [  # results go to *quick* files (git ignores them): the full runs' numbers stay as they are
    ["bench_ingest.py", "--docs", "2000", "--name", "ingest-quick"],
    ["bench_llm_http.py", "--seconds", "1", "--out", str(HERE / "results" / "quick-llm_http.json")],
    ["bench_embedded.py", "--n", "30", "--out", str(HERE / "results" / "quick-embedded.json")],
    ["bench_students.py", "--students", "embedding-head", "--train-per-class", "8",
     "--out", str(HERE / "results" / "quick-students.json")],
    ["bench_student_choice.py", "--quick", "--datasets", "drugs2", "--students", "head-minilm,static",
     "--no-throughput", "--name", "student-choice-quick"],
    ["bench_loop.py", "--quick", "--datasets", "drugs2", "--teachers", "fake90", "--name", "loop-quick"],
    ["bench_fewshot.py", "--quick"],
    ["bench_active.py", "--quick", "--name", "active-quick"],
]


def main() -> int:
    plan = QUICK if "--quick" in sys.argv[1:] else FULL
    failed = []
    for args in plan:
        print(f"\n=== {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
        print(f"=== {args[0]}: exit {rc} in {time.perf_counter() - t0:.0f}s", flush=True)
        if rc:
            failed.append(args[0])
    if plan is FULL:  # the quick run's numbers are for development, not for RESULTS.md
        today = date.today().isoformat()
        subprocess.call([sys.executable, str(HERE / "report.py"), "--loop", f"{today}-loop.json",
                         "--fewshot", f"{today}-fewshot.json", "--active", f"{today}-active.json"])
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
