"""Figures for the README's "Reliability" section, computed by running the scenarios.

Runs the reliability tests (faults, server down, kills, bad input, streaming) with
LABELLOOP_FIGURES_DIR set so each writes what it measured, measures peak RSS of
`labelloop ingest` on a big text file (default 200 MB), and runs bench/bench_injection.py.
Prints a table and writes bench/results/<date>-reliability.json. With --readme, the table also
replaces the block between the reliability-figures markers in README.md; --from-json renders a
results file written earlier without running anything. Nothing here is typed in by hand.

    .venv/bin/python bench/bench_reliability.py [--big-mb 200] [--skip-embedded] [--skip-tests] [--readme]
    .venv/bin/python bench/bench_reliability.py --from-json bench/results/<date>-reliability.json --readme
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, environment, write_results  # noqa: E402
from tests.helpers.projects import LABELLOOP, peak_rss_kb, write_big_text, write_config  # noqa: E402

TESTS = ["tests/test_reliability_faults.py", "tests/test_reliability_kills.py", "tests/test_reliability_bad_input.py"]


def run_tests(figures: Path) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT,
                         env={**__import__("os").environ, "LABELLOOP_FIGURES_DIR": str(figures)},
                         capture_output=True, text=True)
    tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-500:]
    out = {"pytest_exit_code": res.returncode, "pytest_summary": tail, "seconds": round(time.perf_counter() - t0)}
    for f in sorted(figures.glob("*.json")):
        out[f.stem] = json.loads(f.read_text())
    return out


def big_ingest(mb: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp, "small"), Path(tmp, "big")
        for d in (small, big):
            (d / "input").mkdir(parents=True)
        (small / "input" / "a.txt").write_text("One short document.\n")
        size = write_big_text(big / "input" / "big.txt", mb << 20)
        _, base_kb, _ = peak_rss_kb(LABELLOOP, "ingest", str(write_config(small, small / "input")))
        t0 = time.perf_counter()
        rc, big_kb, out = peak_rss_kb(LABELLOOP, "ingest", str(write_config(big, big / "input")))
        seconds = time.perf_counter() - t0
    return {"exit_code": rc, "file_mb": round(size / 2**20), "seconds": round(seconds, 1),
            "base_rss_mb": round(base_kb / 1024), "peak_rss_mb": round(big_kb / 1024),
            "rss_growth_mb": round((big_kb - base_kb) / 1024, 1),
            "mb_per_s": round(size / 2**20 / seconds, 2)}


def injection(skip_embedded: bool) -> dict:
    cmd = [sys.executable, "bench/bench_injection.py"] + (["--skip-embedded"] if skip_embedded else [])
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr[-1000:]}
    latest = max(RESULTS.glob("*-injection.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(latest.read_text())


README = ROOT / "README.md"
MARKERS = ("<!-- reliability-figures:start -->", "<!-- reliability-figures:end -->")


def measure(args) -> dict:
    payload: dict = {"env": environment()}
    if not args.skip_tests:
        with tempfile.TemporaryDirectory() as figures:
            payload["scenarios"] = run_tests(Path(figures))
    payload["big_ingest"] = big_ingest(args.big_mb)
    payload["injection"] = injection(args.skip_embedded)
    return payload


INJECTION_CASES = {
    ("embedded", "before_unfenced"): "Gemma 270M, plain prompt (before)",
    ("embedded", "after_fenced"): "Gemma 270M, fenced prompt (after)",
    ("fake_vulnerable", "fenced_prompt_class_constrained"): "fake teacher that obeys any instruction, fenced + "
                                                            "class-constrained",
}


def table(payload: dict) -> list[tuple[str, str]]:
    """(scenario, result) rows, worded from the measured payload."""
    rows = []
    sc = payload.get("scenarios", {})
    if "faults" in sc:
        f = sc["faults"]
        kinds = {k: v for k, v in f["by_status"].items() if k != "200"}
        rows.append(("LLM faults survived", ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
                     + f" in {f['requests']} requests; same labels as fault-free: {f['same_labels_as_fault_free_run']}"))
    if "server_down" in sc:
        s = sc["server_down"]
        rows.append(("server down for good", f"exit {s['exit_code']}, {s['labels_saved_before_stop']} labels kept, "
                     f"{s['repeated_successes_after_resume']} repeated calls after resume"))
    if "kills" in sc:
        k = sc["kills"]
        phases = sorted({p.rstrip("0123456789") for p in k["landed"]})
        rows.append(("kill -9 survived", f"{k['kills']} kills ({', '.join(phases)}); "
                     f"{k['repeated_successes']} repeated successful LLM calls"))
    if "bad_input" in sc:
        bad = sc["bad_input"]
        tried = len(bad["bad_inputs_tried"])
        note = "; as root, the chmod 000 file is readable, so it is ingested" if bad.get("root") else ""
        rows.append(("bad inputs tried", f"{tried} bad inputs, {bad['reported']} reported with a reason, "
                     f"the good files ingested{note}"))
    b = payload["big_ingest"]
    rows.append(("big text file streams", f"{b['file_mb']} MB: peak RSS {b['peak_rss_mb']} MB "
                 f"(+{b['rss_growth_mb']} MB over a one-line input), {b['seconds']} s"))
    inj = payload["injection"]
    for backend in ("embedded", "fake_vulnerable"):
        for cond, s in (inj.get(backend) or {}).items():
            if isinstance(s, dict) and "flip_rate_of_set" in s:
                rows.append((f"injection flips: {INJECTION_CASES.get((backend, cond), f'{backend} {cond}')}",
                             f"{s['flip_rate_of_set']:.1%} of the set ({s['flips_to_injected_class']}/{s['injected']} "
                             f"injected texts flipped); unflagged by the detector: "
                             f"{s['flip_rate_of_set_after_detector']:.1%}"))
    out_of_set = (inj.get("fake_vulnerable") or {}).get("out_of_set_injection")
    if out_of_set:
        rows.append(("injection asking for a label outside the classes",
                     f"{out_of_set['labels_outside_class_set']}/{out_of_set['injected']} labels outside the class set"))
    det = inj.get("detector")
    if det:
        rows.append(("instruction-like text detector", f"flagged {det['flagged_injected']}/{det['injected']} injected, "
                     f"{det['flagged_clean_false_positives']}/{det['clean']} clean texts"))
    if "pytest_summary" in sc:
        rows.append(("scenario tests", sc["pytest_summary"]))
    return rows


def write_readme(rows: list[tuple[str, str]], env: dict) -> None:
    """Replace the block between the markers in README.md with the measured table."""
    text = README.read_text()
    if MARKERS[0] not in text or MARKERS[1] not in text:
        raise SystemExit(f"README.md lacks the markers {MARKERS}; add them where the table belongs")
    body = [f"Measured by `bench/bench_reliability.py` on {env['date']} (commit {env['commit']}, {env['machine']}):", "",
            "| scenario | result |", "|---|---|"] + [f"| {a} | {b.replace('|', '/')} |" for a, b in rows]
    head, rest = text.split(MARKERS[0], 1)
    _, tail = rest.split(MARKERS[1], 1)
    README.write_text(head + MARKERS[0] + "\n" + "\n".join(body) + "\n" + MARKERS[1] + tail)
    print(f"updated {README}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--skip-embedded", action="store_true", help="injection bench on the fake teacher only")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md's reliability block")
    ap.add_argument("--from-json", type=Path, help="render this results file instead of measuring")
    args = ap.parse_args()
    payload = json.loads(args.from_json.read_text()) if args.from_json else measure(args)
    rows = table(payload)
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    if not args.from_json:
        payload["table"] = rows
        write_results("reliability", payload)
    if args.readme:
        write_readme(rows, payload["env"])


if __name__ == "__main__":
    main()
