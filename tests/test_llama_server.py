"""`labelloop run` against a real OpenAI-compatible server: llama-cpp-python's own (`python -m llama_cpp.server`).

The fake server proves fault handling; this one proves the protocol. It serves the packaged
SmolLM2-135M-Instruct GGUF on 127.0.0.1 with its chat template. It refuses `json_schema`
response formats with HTTP 500, so labelloop must negotiate (json_object with a schema)
without retrying that as a fault. Requests are counted in the server's own access log.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from labelloop.store import Store

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import LABELLOOP

pytestmark = pytest.mark.server
CLASSES = ["business", "sports"]
MODEL_ALIAS = "smollm2-135m"
REQUEST = re.compile(r'"POST /v1/(chat/)?completions HTTP/1\.1" (\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama_cpp.server on a free loopback port, ready when /v1/models answers; stopped after the module."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("llama-cpp-python[server] is not installed; `make setup` installs it")
    from labelloop.models import packaged

    gguf = packaged.path("smollm2-135m")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as res:
                if MODEL_ALIAS in res.read().decode():
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail(f"llama_cpp.server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield base_url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def served_requests(log_path: Path) -> list[int]:
    """HTTP status of every completion request in the server's access log, in order."""
    return [int(m.group(2)) for m in REQUEST.finditer(log_path.read_text(errors="replace"))]


def test_a_run_against_llama_cpp_python_server(llama_server, tmp_path):
    base_url, log_path = llama_server
    docs = [(text[:500].rsplit(" ", 1)[0], label) for text, label in bbc_docs(per_class=8, seed=5)
            if label in CLASSES]
    inp = tmp_path / "input"
    inp.mkdir()
    for i, (text, _) in enumerate(docs):
        (inp / f"doc_{i:02d}.txt").write_text(text)
    llm = {"mode": "api", "base_url": base_url, "model": MODEL_ALIAS, "max_tokens": 32, "rules_max_tokens": 160,
           "max_retries": 2}
    cfg = {
        "classification": {"classes": CLASSES, "desc": "Is the news article about business (companies, markets, the "
                                                       "economy) or sports (games, players, teams)?",
                           "predict_on_whole_set_at_the_end": True},
        "path": {"input_dir": "input", "output_dir": "output"},
        "system": {"chunk_size": 256, "concurrency_limit": 2, "required_accuracy": 0.99, "timeout_s": 30},
        "training": {"max_iters": 1, "test_set_size": 4, "train_set_size": 8, "train_set_increment": 2},
        "review": {"few_shot_per_class": 0},
        "small_model": llm, "large_model": llm,
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))

    before = len(served_requests(log_path))
    res = subprocess.run([LABELLOOP, "run", str(config)], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    statuses = served_requests(log_path)[before:]
    # json_schema was refused once (HTTP 500 naming response_format) and never retried as a fault.
    assert statuses.count(500) == 1, statuses
    assert "labels are asked for as JSON object with a schema" in " ".join(res.stdout.split()), res.stdout[-3000:]

    out = tmp_path / "output"
    store = Store(out / "labelloop.db", create=False)
    labels = store.labels("llm-small") + store.labels("llm-large")
    assert len(labels) == 12
    assert all(lab.label in CLASSES for lab in labels if lab.status == "ok")
    assert sum(lab.status == "ok" for lab in labels) >= 10  # the schema makes the answer a class name
    assert (out / "classifiers" / "classifier_1" / "labelloop.json").is_file()
    preds = [json.loads(line) for line in (out / "final_classifier_output" / "predictions.jsonl").read_text().splitlines()]
    assert all(p["label"] in CLASSES for p in preds)

    # A rerun answers every call from the project file: the server sees nothing.
    middle = len(served_requests(log_path))
    again = subprocess.run([LABELLOOP, "run", str(config)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(served_requests(log_path)) == middle
