"""`labelloop run` end to end, through the CLI, against the fake OpenAI-compatible teacher."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import (
    CLASSES,
    assert_repeats_only_unsaved,
    kill_run_when_labeled,
    run_cli,
    unsaved_answers,
    write_project,
)

pytestmark = pytest.mark.e2e







@pytest.fixture(scope="module")
def docs():
    return bbc_docs(per_class=16, seed=1)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, docs):
    """One full run, shared by the layout checks below."""
    tmp = tmp_path_factory.mktemp("run")
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=0) as fake:
        cfg = write_project(tmp, docs, fake)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        calls_first = fake.total
        again = run_cli("run", str(cfg))
        assert again.returncode == 0, again.stderr[-3000:]
        yield tmp / "output", res.stdout, calls_first, fake.total, fake


def test_layout_matches_augmentoolkit(finished_run):
    out, stdout, *_ = finished_run
    assert (out / "labelloop.db").is_file()
    assert (out / "rules_creation_generation.yaml").is_file()
    assert (out / "classifiers" / "classifier_1" / "labelloop.json").is_file()
    assert (out / "classifiers" / "classifier_2" / "labelloop.json").is_file()
    assert (out / "classifiers" / "datasets" / "dataset_1.jsonl").is_file()
    truth = yaml.safe_load((out / "classifiers" / "truth_labels_classification" / "llm_classifications.yaml").read_text())
    assert len(truth) == 30 and all(t["label"] in CLASSES for t in truth)
    assert (out / "final_classifier_output" / "predictions.jsonl").is_file()
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "Confusion matrix" in report
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.joblib"))
    assert "accuracy [95% CI]" in stdout


def test_training_set_grows_and_test_chunks_never_train(finished_run):
    out, *_ = finished_run
    store = Store(out / "labelloop.db", create=False)
    its = [it for it in store.iterations() if it.status == "done"]
    assert [it.n for it in its] == [1, 2]
    assert its[1].train_size > its[0].train_size
    test_ids = {c.id for c in store.chunks("test")}
    test_texts = {c.text for c in store.chunks("test")}
    for n in (1, 2):
        rows = [json.loads(line) for line in (out / "classifiers" / "datasets" / f"dataset_{n}.jsonl").open()]
        assert len(rows) == its[n - 1].train_size
        assert not {r["chunk_id"] for r in rows} & test_ids
        assert not {r["text"] for r in rows} & test_texts
        assert {r["source"] for r in rows} <= {"llm-small", "human"}
    assert its[-1].stop_reason and "max_iters" in its[-1].stop_reason


def test_every_class_survives_and_metrics_cover_all(finished_run):
    out, *_ = finished_run
    store = Store(out / "labelloop.db", create=False)
    last = store.iterations()[-1]
    test = last.metrics["test"]
    assert test["classes"] == CLASSES and len(test["confusion"]) == 5
    assert set(test["per_class"]) == set(CLASSES)
    # the student learned something real from a 90%-right teacher
    assert last.accuracy > 0.6
    cfg = json.loads((out / "classifiers" / "classifier_2" / "labelloop.json").read_text())
    assert list(cfg["classes"]) == CLASSES


def test_left_out_labels_are_mostly_the_teachers_mistakes(finished_run, docs):
    """Confident learning leaves out LLM labels it calls wrong; checked against the articles' topics."""
    out, *_ = finished_run
    truth = FakeOpenAI(gold=dict(docs)).teacher  # not started: only its chunk -> article lookup
    store = Store(out / "labelloop.db", create=False)
    last = store.iterations()[-1]
    rows = [json.loads(line) for line in (out / "classifiers" / "datasets" / f"dataset_{last.n}.jsonl").open()]
    pruned = [r for r in rows if r["pruned"]]
    assert last.metrics["pruned_label_errors"] == len(pruned) > 0
    wrong = [r for r in pruned if r["label"] != truth.true_label(r["text"])]
    base_rate = sum(r["label"] != truth.true_label(r["text"]) for r in rows) / len(rows)
    assert len(wrong) / len(pruned) > max(0.5, 2 * base_rate), (len(wrong), len(pruned), base_rate)


def test_rerun_repeats_no_llm_call_and_retrains_nothing(finished_run):
    out, _, calls_first, calls_after, fake = finished_run
    assert calls_after == calls_first  # the second run was served entirely from the store
    assert fake.repeated_successes() == {}
    store = Store(out / "labelloop.db", create=False)
    assert len(store.iterations()) == 2
    assert [r["status"] for r in store.runs()] == ["done", "done"]


def test_predictions_cover_every_chunk_the_llm_did_not_label(finished_run):
    """Every chunk without a label: no LLM label that holds a class (an unreadable reply is none), no person's."""
    out, *_ = finished_run
    store = Store(out / "labelloop.db", create=False)
    labeled = {lab.chunk_id for lab in store.labels()
               if lab.source == "human" or (lab.source in ("llm-small", "llm-large") and lab.status == "ok")}
    rest = {c.id for c in store.chunks()} - labeled
    rows = [json.loads(line) for line in (out / "final_classifier_output" / "predictions.jsonl").open()]
    assert {r["chunk_id"] for r in rows} == rest
    assert all(r["label"] in CLASSES and 0 < r["confidence"] <= 1 and r["source"] == "student" for r in rows)


def test_predict_round_trip_and_status(finished_run, tmp_path, docs):
    out, *_ = finished_run
    model = out / "classifiers" / "classifier_2"
    inp = tmp_path / "new.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in docs[:10]))
    res = run_cli("predict", str(model), str(inp), "--output", str(tmp_path / "pred.jsonl"))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").open()]
    assert len(rows) >= 10
    assert all(set(r["probs"]) == set(CLASSES) and abs(sum(r["probs"].values()) - 1) < 1e-4 for r in rows)
    status = run_cli("status", str(out))
    assert status.returncode == 0 and "llm-large" in status.stdout and "cache hits" in status.stdout


def test_export_loads_without_labelloop(finished_run, docs):
    out, *_ = finished_run
    model = out / "classifiers" / "classifier_2"
    code = f"""
import json, sys, numpy as np
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer

d = {str(model)!r}
cfg = json.load(open(d + "/labelloop.json"))
body = SentenceTransformer(d + "/body", device="cpu")
head = load_file(d + "/head.safetensors")
X = body.encode({[t for t, _ in docs[:3]]!r}, normalize_embeddings=True)
logits = X @ head["coef"].T + head["intercept"]
print(json.dumps([cfg["classes"][i] for i in logits.argmax(1)]))
assert not any(m.startswith("labelloop") for m in sys.modules)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert all(label in CLASSES for label in json.loads(res.stdout.strip().splitlines()[-1]))


def test_kill_during_labeling_then_resume_repeats_no_call(tmp_path, docs):
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=0, latency_s=0.15) as fake:
        cfg = write_project(tmp_path, docs, fake, max_iters=1)
        db = tmp_path / "output" / "labelloop.db"
        killed_at = kill_run_when_labeled(cfg, 10)
        assert 10 <= killed_at < 30
        unsaved = unsaved_answers(fake, db)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        assert_repeats_only_unsaved(fake, unsaved, in_flight=4)
        store = Store(db)
        assert len(store.labels("llm-large")) == 30
        assert store.integrity_check() == "ok"
        assert [r["status"] for r in store.runs()] == ["running", "done"]


def test_serve_answers_predict_requests(finished_run):
    from starlette.testclient import TestClient

    from labelloop.serving.http import create_app

    out, *_ = finished_run
    client = TestClient(create_app(out / "classifiers" / "classifier_2"), base_url="http://127.0.0.1")
    res = client.post("/predict", json={"texts": ["The striker scored twice in the cup final.", "Shares fell 3%."]})
    assert res.status_code == 200
    preds = res.json()["predictions"]
    assert len(preds) == 2 and all(p["label"] in CLASSES for p in preds)
    assert client.post("/predict", json={"texts": "not a list"}).status_code == 400
    assert client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/").json()["classes"] == CLASSES and client.get("/").json()["runtime"] == "torch"


def test_serve_is_guarded_like_the_review_app(finished_run):
    from starlette.testclient import TestClient

    from labelloop.serving.http import create_app

    out, *_ = finished_run
    model = out / "classifiers" / "classifier_2"
    open_app = TestClient(create_app(model), base_url="http://127.0.0.1")
    body = {"texts": ["Shares fell 3%."]}
    # No token: loopback Host names only (DNS rebinding), JSON bodies only (no cross-site form posts).
    assert TestClient(create_app(model), base_url="http://evil.example").post("/predict", json=body).status_code == 400
    assert open_app.post("/predict", content=b"texts=x", headers={"content-type": "text/plain"}).status_code == 415
    assert open_app.post("/predict", json=body, headers={"origin": "http://evil.example"}).status_code == 403
    locked = TestClient(create_app(model, token="s3cret"), base_url="http://10.0.0.5")
    assert locked.post("/predict", json=body).status_code == 401
    ok = locked.post("/predict", json=body, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] in CLASSES
    res = run_cli("serve", str(model), "--host", "0.0.0.0")
    assert res.returncode == 2 and "without a token" in res.stderr


def test_plan_is_an_upper_bound_of_the_run_and_writes_nothing(finished_run, tmp_path):
    from labelloop.config import load_config
    from labelloop.ingest.pipeline import count_chunks
    from labelloop.loop.plan import estimate

    out, _stdout, calls_first, *_ = finished_run
    cfg = load_config(out.parent / "config.yaml")
    n, avg = count_chunks(cfg)
    from labelloop.store import Store

    assert n == len(Store(out / "labelloop.db").chunks())
    plan = estimate(cfg, n, avg_chars=avg)
    assert calls_first <= plan.max_calls, (calls_first, plan.render())
    fresh = tmp_path / "fresh"
    shutil.copytree(out.parent / "input", fresh / "input")
    shutil.copy(out.parent / "config.yaml", fresh / "config.yaml")
    res = run_cli("plan", str(fresh / "config.yaml"))
    assert res.returncode == 0 and "at most" in res.stdout, res.stderr
    assert not (fresh / "output").exists()  # a plan writes nothing
