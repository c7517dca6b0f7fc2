"""Multi-label end to end, through the CLI, against the fake teacher answering label sets over HTTP.

A user sets `classification.multi_label: true`, runs, kills and resumes, reviews, predicts and
exports; every output speaks label sets. The documents are real BBC articles, alone or two of
different topics joined (labels: both topics), as the bench builds them (bench/bench_data.py).
"""

from __future__ import annotations

import csv
import json
import os
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
)

pytestmark = pytest.mark.e2e


def multi_docs(per_class: int = 30, seed: int = 5, chars: int = 300) -> list[tuple[str, list[str]]]:
    """Short single articles and joined pairs of two topics: [(text, label set in class order), ...]."""
    singles = [(t[:chars].rsplit(" ", 1)[0], topic) for t, topic in bbc_docs(per_class=per_class, seed=seed)]
    out = [(text, [topic]) for text, topic in singles[: len(singles) // 2]]
    rest = singles[len(singles) // 2:]
    while len(rest) >= 2:
        (a, ta), b_index = rest.pop(), next((i for i, (_t, tb) in enumerate(rest) if tb != rest[-1][1]), None)
        if b_index is None:
            break
        b, tb = rest.pop(b_index)
        out.append((f"{a}\n\n{b}", [c for c in CLASSES if c in (ta, tb)]))
    return out


def write_multi_project(tmp, docs, fake: FakeOpenAI, **training) -> os.PathLike:
    inp = tmp / "input"
    inp.mkdir(parents=True, exist_ok=True)
    with open(inp / "news.jsonl", "w") as fh:
        for text, _labels in docs:
            fh.write(json.dumps({"text": text}) + "\n")
    llm = {"mode": "api", "base_url": fake.base_url, "model": fake.model, "api_key": "test", "max_retries": 3,
           "timeout_s": 10}
    cfg = {
        "classification": {"classes": CLASSES, "desc": "Tag news articles with every topic they cover.",
                           "multi_label": True, "predict_on_whole_set_at_the_end": True},
        "path": {"input_dir": "input", "output_dir": "output"},
        "system": {"chunk_size": 256, "required_accuracy": 0.99, "concurrency_limit": 4},
        "training": {"max_iters": 2, "test_set_size": 20, "train_set_size": 40, "train_set_increment": 20,
                     **training},
        "stopping": {"kappa": 0.95},  # runs the stop-set predictions (whole sets as categories)
        "small_model": llm,
        "large_model": llm,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def docs():
    return multi_docs()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, docs):
    tmp = tmp_path_factory.mktemp("multi")
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=0) as fake:
        cfg = write_multi_project(tmp, docs, fake)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        first = fake.total
        again = run_cli("run", str(cfg))
        assert again.returncode == 0, again.stderr[-3000:]
        yield tmp / "output", res.stdout, first, fake.total, cfg


def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_run_says_which_metric_it_stops_on_and_reruns_without_calls(finished):
    out, stdout, first, total, _cfg = finished
    assert "micro_f1" in stdout and "micro-f1 [95% CI]" in stdout
    assert total == first  # the second run answered everything from the call log


def test_every_output_speaks_label_sets(finished, docs):
    out, *_ = finished
    rows = _jsonl(out / "classifiers" / "datasets" / "dataset_2.jsonl")
    assert rows and all(isinstance(r["labels"], list) and set(r["labels"]) <= set(CLASSES) for r in rows)
    assert "label" not in rows[0]
    assert any(len(r["labels"]) == 2 for r in rows)  # the joined articles kept both topics
    truth = yaml.safe_load((out / "classifiers" / "truth_labels_classification" / "llm_classifications.yaml").read_text())
    assert all(isinstance(t["labels"], list) for t in truth if t["status"] == "ok")
    preds = _jsonl(out / "final_classifier_output" / "predictions.jsonl")
    assert preds
    for p in preds:
        assert isinstance(p["labels"], list) and set(p["labels"]) <= set(CLASSES)
        assert set(p["probs"]) == set(CLASSES) and set(p["thresholds"]) == set(CLASSES)
        assert p["labels"] == [c for c in CLASSES if p["probs"][c] >= p["thresholds"][c]]
    meta = json.loads((out / "classifiers" / "classifier_2" / "labelloop.json").read_text())
    assert meta["multi_label"] is True and set(meta["thresholds"]) == set(CLASSES)
    store = Store(out / "labelloop.db")
    it = next(i for i in store.iterations() if i.n == 2)  # the review test may add a round after it
    test = it.metrics["test"]
    assert {"micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "cooccurrence"} <= set(test)
    assert it.accuracy == pytest.approx(test["micro_f1"])
    assert it.metrics["multi_label"]["metric"] == "micro_f1"
    stop_set = it.metrics["stop_set"]
    assert stop_set["ids"] and all(0 <= p < 2 ** len(CLASSES) for p in stop_set["pred"])  # a bit per label
    report = (out / "report.html").read_text()
    assert "Label co-occurrence" in report and "micro-f1" in report


def test_student_learns_the_sets_not_just_one_label(finished, docs):
    out, *_ = finished
    store = Store(out / "labelloop.db")
    it = next(i for i in store.iterations() if i.n == 2)  # the review test may add a round after it
    assert it.metrics["test"]["micro_f1"] > 0.5, it.metrics["test"]


def test_predict_and_export_labels_speak_lists(finished, tmp_path, docs):
    out, *_ = finished
    model = out / "classifiers" / "classifier_2"
    inp = tmp_path / "new.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in docs[:6]))
    res = run_cli("predict", str(model), str(inp), "--output", str(tmp_path / "pred.jsonl"))
    assert res.returncode == 0, res.stderr
    rows = _jsonl(tmp_path / "pred.jsonl")
    assert len(rows) == 6 and all(isinstance(r["labels"], list) and "thresholds" in r for r in rows)
    res = run_cli("export-labels", str(out), "--output", str(tmp_path / "labels.jsonl"))
    assert res.returncode == 0, res.stderr
    exported = _jsonl(tmp_path / "labels.jsonl")
    labeled = [r for r in exported if r["status"] == "ok"]
    assert labeled and all(isinstance(r["labels"], list) for r in labeled)
    assert "label" not in exported[0] and "llm_large_labels" in exported[0]
    res = run_cli("export-labels", str(out), "--format", "csv", "--output", str(tmp_path / "labels.csv"))
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "labels.csv", newline="") as fh:
        first = next(r for r in csv.DictReader(fh) if r["status"] == "ok")
    assert isinstance(json.loads(first["labels"]), list)


def test_saved_student_loads_without_labelloop_in_the_readme_lines(finished, docs):
    out, *_ = finished
    model = out / "classifiers" / "classifier_2"
    texts = [t for t, _ in docs[:4]]
    code = f"""
import json, os, sys, numpy as np
os.chdir({str(model)!r})
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
texts = {texts!r}
meta, head = json.load(open("labelloop.json")), load_file("head.safetensors")
emb = SentenceTransformer("body", device="cpu").encode(texts, normalize_embeddings=True)
probs = 1 / (1 + np.exp(-(emb @ head["coef"].T + head["intercept"])))
labels = [[meta["classes"][j] for j in np.flatnonzero(p >= head["thresholds"])] for p in probs]
assert not any(m.startswith("labelloop") for m in sys.modules)
print(json.dumps(labels))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    plain = json.loads(res.stdout.strip().splitlines()[-1])
    from labelloop.classify import load_student

    assert plain == load_student(model).predict(texts)
    readme = (model / "README.md").read_text()
    assert 'head["thresholds"]' in readme


def test_kill_during_labeling_then_resume_repeats_no_call(tmp_path, docs):
    # slow enough that a loaded machine still kills it between 6 and 20 test labels (4 in flight, 10 a second)
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=0, latency_s=0.4) as fake:
        cfg = write_multi_project(tmp_path, docs, fake, max_iters=1)
        db = tmp_path / "output" / "labelloop.db"
        assert 6 <= kill_run_when_labeled(cfg, 6) < 20
        unsaved = unsaved_answers(fake, db)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        assert_repeats_only_unsaved(fake, unsaved, in_flight=4)
        store = Store(db)
        large = store.labels("llm-large")
        assert len(large) == 20 and all(json.loads(lab.label) is not None for lab in large if lab.status == "ok")


def test_switching_a_project_between_modes_is_refused(finished):
    out, _stdout, _first, _total, cfg = finished
    raw = yaml.safe_load(open(cfg))
    raw["classification"]["multi_label"] = False
    single = out.parent / "single.yaml"
    single.write_text(yaml.safe_dump(raw))
    res = run_cli("run", str(single))
    assert res.returncode != 0
    assert "multi_label" in (res.stdout + res.stderr) and "new path.output_dir" in (res.stdout + res.stderr)


def test_review_corrections_become_gold_sets_and_the_next_run_trains_on_them(finished, docs):
    """A person corrects two training sets and says "none of them" for a third in the review app; the
    next run retrains on them (human > LLM) and they are the dataset's labels, source human."""
    from starlette.testclient import TestClient

    from labelloop.review.app import create_app

    out, _stdout, _first, _total, cfg = finished
    store = Store(out / "labelloop.db")
    train = [c.id for c in store.chunks("train")][:3]
    app = create_app(store)
    with TestClient(app, base_url="http://127.0.0.1:8420") as client:
        client.headers["X-CSRF-Token"] = app.state.csrf_token
        wanted = {train[0]: ["business", "tech"], train[1]: ["sports"], train[2]: []}
        for cid, labels in wanted.items():
            r = client.post("/api/label", json={"chunk_id": cid, "action": "correct", "labels": labels,
                                                "reviewer": "ana"})
            assert r.status_code == 200, r.text
    res = run_cli("run", str(cfg))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "new review action(s)" in res.stdout
    last = max(i.n for i in Store(out / "labelloop.db").iterations() if i.status == "done")
    rows = {r["chunk_id"]: r for r in _jsonl(out / "classifiers" / "datasets" / f"dataset_{last}.jsonl")}
    for cid, labels in wanted.items():
        assert rows[cid]["labels"] == labels and rows[cid]["source"] == "human"
    exported = {r["chunk_id"]: r for r in _jsonl(_export(out))}
    assert exported[train[2]]["human_labels"] == [] and exported[train[2]]["label_source"] == "human"


def _export(out):
    path = out.parent / "reviewed.jsonl"
    res = run_cli("export-labels", str(out), "--output", str(path))
    assert res.returncode == 0, res.stderr
    return path
