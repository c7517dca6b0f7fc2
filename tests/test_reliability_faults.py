"""Issue 7, faults: `labelloop run` through the CLI against a fake teacher that fails on purpose.

With 500/429s, hangs past the client timeout, malformed bodies and truncated streams the run
finishes with the same labels as a fault-free run; with the server gone it stops after the
retry budget, names the server, keeps what it paid for, and resumes on a new port.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.projects import (
    FAULT_RATES, LABELLOOP, MAX_RETRIES, make_project, record, run_cli, set_base_url, short_docs,
)

pytestmark = pytest.mark.e2e













def llm_labels(db: Path) -> dict[tuple[str, str], str | None]:
    """{(source, chunk text): label} for the two LLM sources."""
    store = Store(db, create=False)
    text = {c.id: c.text for c in store.chunks()}
    return {(lab.source, text[lab.chunk_id]): lab.label for lab in store.labels()
            if lab.source in ("llm-small", "llm-large")}


def count_labels(db: Path, source: str) -> int:
    """Labels of one source, read without opening a Store (which would migrate a half-made file)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM labels WHERE source = ?", (source,)).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def merged_repeats(*fakes: FakeOpenAI) -> dict[str, int]:
    """Request hashes answered successfully more than once across several fake servers."""
    total: Counter[str] = Counter()
    for fake in fakes:
        total.update(fake.successes)
    return {h: n for h, n in total.items() if n > 1}


@pytest.fixture(scope="module")
def docs():
    return short_docs()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, docs):
    tmp = tmp_path_factory.mktemp("clean")
    with FakeOpenAI(gold=dict(docs), accuracy=0.8, seed=0) as fake:
        cfg = make_project(tmp, docs, fake)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert fake.by_status.keys() <= {"200"}
    return tmp / "output"


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, docs):
    tmp = tmp_path_factory.mktemp("faulty")
    fake = FakeOpenAI(gold=dict(docs), accuracy=0.8, seed=0, fault_rates=FAULT_RATES,
                      retry_after_s=0.05, hang_s=2.0)
    # ~30 requests make the rates alone a coin toss per kind: queue one of each kind as well
    fake.queue_faults("hang", "http_500", "malformed", "http_429", "truncated")
    with fake:
        cfg = make_project(tmp, docs, fake, timeout_s=1.0)
        t0 = time.perf_counter()
        res = run_cli("run", str(cfg))
        elapsed = time.perf_counter() - t0
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp / "output", fake, elapsed


def test_faulty_run_gives_the_same_labels_as_a_clean_one(clean_run, faulty_run):
    out, fake, _ = faulty_run
    clean, faulty = llm_labels(clean_run / "labelloop.db"), llm_labels(out / "labelloop.db")
    assert len(clean) == 8 + 12 + 6
    assert faulty == clean
    assert None not in faulty.values()
    # the faults really happened, of every kind asked for
    for status in ("500", "429", "hang"):
        assert fake.by_status[status] > 0, dict(fake.by_status)
    assert fake.by_status["malformed"] > 0 and fake.by_status["truncated"] > 0, dict(fake.by_status)
    assert fake.repeated_successes() == {}
    _, _, elapsed = faulty_run
    record("faults", {"requests": fake.total, "by_status": dict(fake.by_status), "llm_labels": len(faulty),
                      "same_labels_as_fault_free_run": faulty == clean, "seconds": round(elapsed, 1),
                      "rates": FAULT_RATES})


def test_faulty_run_retries_within_limits_and_logs_every_fault(faulty_run):
    out, fake, _ = faulty_run
    store = Store(out / "labelloop.db", create=False)
    calls = store.calls()
    assert calls and all(c.status == "ok" for c in calls)
    # each call's first reply parses (the fake answers a bare class), so only transport retries count
    assert max(c.attempts for c in calls) <= MAX_RETRIES + 1
    # the client's attempt count is the server's request count: no hidden retries in the HTTP library
    assert sum(c.attempts for c in calls) == fake.total
    faults = store.call_stats()["faults"]
    assert faults.get("http_500", 0) == fake.by_status["500"]
    assert faults.get("http_429", 0) == fake.by_status["429"]
    assert faults.get("timeout", 0) == fake.by_status["hang"]
    server_broken = fake.by_status["malformed"] + fake.by_status["truncated"]
    assert faults.get("malformed", 0) + faults.get("connection", 0) == server_broken


def test_status_and_report_show_the_fault_counts(faulty_run):
    out, fake, _ = faulty_run
    res = run_cli("status", str(out))
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "faults survived" in ln)
    assert f"http_500={fake.by_status['500']}" in line and f"http_429={fake.by_status['429']}" in line
    assert f"timeout={fake.by_status['hang']}" in line
    report = (out / "report.html").read_text()
    assert f"http_500={fake.by_status['500']}" in report and f"timeout={fake.by_status['hang']}" in report


def test_server_down_for_good_stops_clearly_then_resumes_on_a_new_port(tmp_path, docs):
    first = FakeOpenAI(gold=dict(docs), accuracy=0.8, seed=0, latency_s=0.1).start()
    cfg = make_project(tmp_path, docs, first, max_retries=2, concurrency=2)
    db = tmp_path / "output" / "labelloop.db"
    proc = subprocess.Popen([LABELLOOP, "run", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if count_labels(db, "llm-large") >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "run ended before the server could be stopped: " + "".join(proc.communicate())[-3000:]
        down_url = first.base_url
        first.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        first.stop()
    assert proc.returncode == 2, out[-2000:] + err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    assert down_url in err and "server" in err and "run again" in err, err
    store = Store(db)
    saved = len(store.labels("llm-large"))
    assert saved >= 3
    assert store.runs()[-1]["status"] == "failed"
    assert store.integrity_check() == "ok"

    with FakeOpenAI(gold=dict(docs), accuracy=0.8, seed=0) as second:
        set_base_url(cfg, second.base_url)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert merged_repeats(first, second) == {}
    store = Store(db)
    ok_calls = [c for c in store.calls() if c.status == "ok"]
    # every success either server delivered was logged once: nothing paid for twice, nothing lost
    assert sum(first.successes.values()) + sum(second.successes.values()) == len(ok_calls)
    assert len(store.labels("llm-large")) == 8 and len(store.labels("llm-small")) == 18
    assert store.runs()[-1]["status"] == "done"
    record("server_down", {"exit_code": proc.returncode, "labels_saved_before_stop": saved,
                           "repeated_successes_after_resume": len(merged_repeats(first, second))})


def test_closed_port_fails_fast_with_the_server_named(tmp_path, docs):
    fake = FakeOpenAI(gold=dict(docs)).start()
    cfg = make_project(tmp_path, docs, fake, max_retries=1)
    url = fake.base_url
    fake.stop()  # nothing listens on this port now
    res = run_cli("run", str(cfg), timeout=300)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert url in res.stderr and "Traceback" not in res.stderr
    assert "Check that the server is running" in res.stderr
    store = Store(tmp_path / "output" / "labelloop.db")
    assert len(store.chunks()) == 40  # ingest before the failure is kept
    dbg = run_cli("--debug", "run", str(cfg), timeout=300)
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr
