"""Projects for end-to-end tests: config files pointing at the fake server, the CLI, shared data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from labelloop.testing.fake_openai import FakeOpenAI, request_hash

from tests.helpers.bbc import bbc_docs

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


def write_project(tmp_path: Path, docs, fake: FakeOpenAI, **training) -> Path:
    inp = tmp_path / "input"
    inp.mkdir()
    with open(inp / "news.jsonl", "w") as fh:
        for text, label in docs:
            fh.write(json.dumps({"text": text, "gold": label}) + "\n")
    llm = {"mode": "api", "base_url": fake.base_url, "model": fake.model, "api_key": "test", "max_retries": 3,
           "timeout_s": 10}
    cfg = {
        "classification": {"classes": CLASSES, "desc": "Classify news articles by topic.",
                           "predict_on_whole_set_at_the_end": True},
        "path": {"input_dir": "input", "output_dir": "output"},
        "system": {"chunk_size": 256, "required_accuracy": 0.99, "concurrency_limit": 4},
        "training": {"max_iters": 2, "test_set_size": 30, "train_set_size": 50, "train_set_increment": 30,
                     **training},
        "small_model": llm,
        "large_model": llm,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, timeout=timeout)


FAULT_RATES = {"http_500": 0.10, "http_429": 0.10, "hang": 0.05, "malformed": 0.01, "truncated": 0.01}


MAX_RETRIES = 6


def record(name: str, figures: dict) -> None:
    """Write figures for bench/bench_reliability.py when it runs these tests (env LABELLOOP_FIGURES_DIR)."""
    folder = os.environ.get("LABELLOOP_FIGURES_DIR")
    if folder:
        Path(folder, f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


def short_docs(per_class: int = 8, seed: int = 3, chars: int = 400) -> list[tuple[str, str]]:
    """Real BBC articles cut to about `chars` characters: one chunk each, fast to label and train."""
    return [(text[:chars].rsplit(" ", 1)[0], label) for text, label in bbc_docs(per_class=per_class, seed=seed)]


def make_project(tmp: Path, docs, fake: FakeOpenAI, *, timeout_s: float = 10, max_retries: int = MAX_RETRIES,
                 concurrency: int = 4, predict_all: bool = True, **training) -> Path:
    """input/news.jsonl + config.yaml pointing both LLM roles at the fake; returns the config path."""
    inp = tmp / "input"
    inp.mkdir(parents=True, exist_ok=True)
    with open(inp / "news.jsonl", "w") as fh:
        for text, _ in docs:
            fh.write(json.dumps({"text": text}) + "\n")
    llm = {"mode": "api", "base_url": fake.base_url, "model": fake.model, "api_key": "test",
           "max_retries": max_retries, "timeout_s": timeout_s}
    sizes = {"max_iters": 2, "test_set_size": 8, "train_set_size": 12, "train_set_increment": 6, **training}
    cfg = {
        "classification": {"classes": CLASSES, "desc": "Classify news articles by topic.",
                           "predict_on_whole_set_at_the_end": predict_all},
        "path": {"input_dir": "input", "output_dir": "output"},
        # No first-call probe: a hang must time out at timeout_s, so every hang is counted as a timeout.
        "system": {"chunk_size": 256, "required_accuracy": 1.0, "concurrency_limit": concurrency,
                   "probe_timeout_s": None},
        "training": sizes,
        "small_model": llm,
        "large_model": dict(llm),
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def set_base_url(config: Path, base_url: str) -> None:
    cfg = yaml.safe_load(config.read_text())
    for role in ("small_model", "large_model"):
        cfg[role]["base_url"] = base_url
    config.write_text(yaml.safe_dump(cfg))


def write_config(root: Path, input_dir: Path) -> Path:
    nowhere = {"mode": "api", "base_url": "http://127.0.0.1:9/v1", "model": "m"}  # ingest calls no LLM
    cfg = {"classification": {"classes": ["a", "b"], "desc": "x"},
           "path": {"input_dir": str(input_dir), "output_dir": str(root / "output")},
           "small_model": nowhere, "large_model": nowhere}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


PEAK_RSS = """
import resource, subprocess, sys
res = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(res.stdout[-2000:] + res.stderr[-2000:])
print(res.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kb(*cmd: str) -> tuple[int, int, str]:
    """(exit code, peak RSS in kB, output) of a command run alone under a fresh parent."""
    res = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], capture_output=True, text=True, timeout=600)
    rc, kb = res.stdout.split()
    return int(rc), int(kb), res.stderr


def write_big_text(path: Path, size: int) -> int:
    """A text file of about `size` bytes: paragraphs of long random words (they tokenize fast)."""
    written = 0
    with open(path, "w") as fh:
        while written < size:
            para = " ".join(os.urandom(100).hex() for _ in range(40)) + "\n\n"
            fh.write(para)
            written += len(para)
    return written


def kill_run_when_labeled(cfg: Path, at_least: int, source: str = "llm-large", timeout_s: float = 240) -> int:
    """Start `labelloop run cfg`, SIGKILL it once the project file holds `at_least` labels of `source`;
    return how many it held when killed (the run must not have finished first)."""
    import signal
    import time

    from labelloop.store import Store

    db = Path(cfg).parent / "output" / "labelloop.db"
    proc = subprocess.Popen([LABELLOOP, "run", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                if len(Store(db).labels(source)) >= at_least:
                    break
            except Exception:  # the run is still creating the file
                pass
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; make the fake slower"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(Store(db).labels(source))


def unsaved_answers(fake: FakeOpenAI, db: Path) -> set[str]:
    """Request hashes the fake answered that a killed run had not yet written to its call log.

    SIGKILL can land between the client reading an answer and saving it: that answer died with the
    process, and a resume must ask again. Taken right after the kill, this is what a resume may repeat;
    anything outside it was saved, and asking it again is a cache bug.
    """
    from labelloop.store import Store

    saved = {request_hash(c.request["sent"]) for c in Store(db).calls()
             if c.status == "ok" and isinstance(c.request, dict) and "sent" in c.request}
    answered = {h for h, n in dict(fake.successes).items() if n > 0}
    # Were the log's requests to hash unlike the fake's, every answer would look unsaved and allowed.
    assert saved <= answered, f"{len(saved - answered)} logged requests the fake never answered"
    return answered - saved


def assert_repeats_only_unsaved(fake: FakeOpenAI, unsaved: set[str], in_flight: int, kills: int = 1) -> None:
    """A resume repeated no saved call, and at most the `in_flight` answers each kill could cut off."""
    repeats = fake.repeated_successes()
    saved_again = set(repeats) - unsaved
    assert not saved_again, f"{len(saved_again)} calls saved before the kill were asked again: {repeats}"
    assert len(repeats) <= in_flight * kills and all(n <= 1 + kills for n in repeats.values()), (
        f"more repeats than {kills} kill(s) with {in_flight} calls in flight can explain: {repeats}")
