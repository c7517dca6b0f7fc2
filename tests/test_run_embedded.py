"""One end-to-end run on the embedded Gemma backend (no key, no network), small sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labelloop.store import Store

from tests.helpers.bbc import bbc_docs

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


@pytest.mark.embedded
def test_embedded_run_end_to_end(tmp_path):
    docs = bbc_docs(per_class=5, seed=3)
    docs = [(text[:600], label) for text, label in docs if label in ("sports", "business")]
    inp = tmp_path / "input"
    inp.mkdir()
    for i, (text, _) in enumerate(docs):
        (inp / f"doc_{i:02d}.txt").write_text(text)
    cfg = {
        "classification": {"classes": ["business", "sports"], "desc": "Is the news article about business or sports?",
                           "predict_on_whole_set_at_the_end": False},
        "path": {"input_dir": "input", "output_dir": "output"},
        "system": {"chunk_size": 256, "required_accuracy": 0.95},
        "training": {"max_iters": 1, "test_set_size": 4, "train_set_size": 6, "train_set_increment": 2},
        "small_model": {"mode": "embedded", "max_tokens": 96},
        "large_model": {"mode": "embedded", "max_tokens": 96},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run([LABELLOOP, "run", str(tmp_path / "config.yaml")], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = tmp_path / "output"
    store = Store(out / "labelloop.db", create=False)
    rules_call = next(c for c in store.calls("rules") if c.status == "ok")
    assert rules_call.response["server"]["generated"].strip()  # the model wrote the rules (not only our frame)
    large = [lab for lab in store.labels("llm-large") if lab.status == "ok"]
    assert len(store.labels("llm-large")) == 4 and large
    for lab in large:  # the label is the most probable class of the scored log-probs, and its probability
        assert abs(sum(lab.probs.values()) - 1) < 1e-6 and lab.label == max(lab.probs, key=lab.probs.get)
        assert lab.confidence == lab.probs[lab.label]
    assert len(store.labels("llm-small")) == 6
    assert (out / "classifiers" / "classifier_1" / "labelloop.json").is_file()
    assert json.loads((out / "classifiers" / "classifier_1" / "labelloop.json").read_text())["classes"] == ["business", "sports"]
    assert (out / "report.html").is_file()
