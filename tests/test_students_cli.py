"""The new students from config to prediction, through the CLI: all-mpnet-base-v2, static, auto.

Each runs `labelloop run` against the fake teacher, then `labelloop predict` (local and Ray) and
`labelloop serve`'s app on the saved folder.
"""

from __future__ import annotations

import json

import pytest
import yaml

from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import CLASSES, run_cli, write_project

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def docs():
    return [(t[:900], lab) for t, lab in bbc_docs(per_class=10, seed=4)]


def trained(tmp_path, docs, student: dict):
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=0) as fake:
        cfg = write_project(tmp_path, docs, fake, max_iters=1, test_set_size=10, train_set_size=30)
        raw = yaml.safe_load(cfg.read_text())
        raw["student"] = student
        raw["classification"]["predict_on_whole_set_at_the_end"] = False
        cfg.write_text(yaml.safe_dump(raw))
        res = run_cli("run", str(cfg))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp_path / "output" / "classifiers" / "classifier_1", res.stdout


def predict_everywhere(model, docs, tmp_path, ray: bool = False):
    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in docs[:6]))
    res = run_cli("predict", str(model), str(corpus), "-o", str(tmp_path / "preds.jsonl"))
    assert res.returncode == 0, res.stderr[-2000:]
    local = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert len(local) == 6 and all(p["label"] in CLASSES for p in local)
    if ray:
        res = run_cli("predict", str(model), str(corpus), "-o", str(tmp_path / "ray-out"), "--engine", "ray",
                      "--workers", "1")
        assert res.returncode == 0, res.stderr[-2000:]
        rows = [json.loads(line) for f in sorted((tmp_path / "ray-out").glob("*.json*")) for line in f.read_text().splitlines()]
        assert [r["label"] for r in rows] == [p["label"] for p in local]
    from starlette.testclient import TestClient

    from labelloop.serving.http import create_app

    client = TestClient(create_app(model), base_url="http://127.0.0.1")
    served = client.post("/predict", json={"texts": [t for t, _ in docs[:6]]}).json()["predictions"]
    assert [p["label"] for p in served] == [p["label"] for p in local]
    assert not list(model.rglob("*.pkl")) and not list(model.rglob("*.joblib"))


def test_mpnet_encoder_from_config(tmp_path, docs):
    model, out = trained(tmp_path, docs, {"encoder": "all-mpnet-base-v2"})
    contract = json.loads((model / "student_input.json").read_text())
    assert contract["encoder"] == "all-mpnet-base-v2" and contract["max_length"] == 384
    assert "on all-mpnet-base-v2 (student.encoder)" in " ".join(out.split())
    predict_everywhere(model, docs, tmp_path)


def test_static_student_from_config(tmp_path, docs):
    model, _out = trained(tmp_path, docs, {"type": "static"})
    meta = json.loads((model / "labelloop.json").read_text())
    assert meta["student_type"] == "static"
    from labelloop.store import Store

    # The head's C and balancing were chosen by the round's cross-validation (balancing auto, the default),
    # recorded with the iteration, and saved with the model that predicts with them.
    head = Store(tmp_path / "output" / "labelloop.db").iterations()[-1].metrics["student"]["head"]
    assert head["tried"] == 8 and 0 < head["cv_accuracy"] <= 1
    assert (meta["C"], meta["balancing"]) == (head["C"], head["balancing"]) and meta["balancing"] != "auto"
    predict_everywhere(model, docs, tmp_path, ray=True)


def test_auto_student_from_config(tmp_path, docs):
    model, out = trained(tmp_path, docs, {"type": "auto", "budget_s": 60})
    assert "Student (auto):" in out and "cross-validated agreement" in out
    from labelloop.store import Store

    it = Store(tmp_path / "output" / "labelloop.db").iterations()[-1]
    trials = it.metrics["auto"]["trials"]
    assert [t["candidate"].split(" ")[0] for t in trials][:2] == ["static", "embedding-head"]
    assert all(t["seconds"] >= 0 for t in trials) and any(t["cv_accuracy"] for t in trials)
    report = (tmp_path / "output" / "report.html").read_text()
    assert "Students tried" in report and "chosen by auto" in report
    predict_everywhere(model, docs, tmp_path)
