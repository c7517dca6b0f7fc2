"""A multi-label student served every way: ONNX export, predict (torch, onnxruntime, Ray) and serve all
give the same label sets, with each label's probability and threshold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labelloop.classify import load_student, make_student
from labelloop.classify.decision import decide, pool
from labelloop.serving.predict import documents_path, predict_path, student_input_for

from tests.helpers.bbc import bbc_docs
from tests.helpers.scale import read_rows, write_corpus

pytestmark = pytest.mark.slow

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A multi-label embedding-head student on BBC articles alone and joined in pairs, saved."""
    docs = bbc_docs(per_class=6, seed=3)
    texts = [t[:500] for t, _ in docs]
    labels = [[c] for _, c in docs]
    for (a, ta), (b, tb) in zip(docs[::2], docs[1::2]):
        if ta != tb:
            texts.append(f"{a[:300]}\n\n{b[:300]}")
            labels.append(sorted({ta, tb}))
    classes = sorted({c for _, c in docs})
    folder = tmp_path_factory.mktemp("multi") / "model"
    make_student("embedding-head", classes, multi_label=True).fit(texts, labels).save(folder)
    return folder


def test_onnx_runtime_and_ray_give_the_torch_students_label_sets(model, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx_dir = tmp_path / "onnx"
    shutil.copytree(model, onnx_dir)
    res = subprocess.run([LABELLOOP, "export", str(onnx_dir), "--onnx"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((onnx_dir / "onnx.json").read_text())["activation"] == "sigmoid"
    corpus = write_corpus(tmp_path / "corpus")
    torch_rows = tmp_path / "torch.jsonl"
    predict_path(model, corpus, torch_rows, progress=False, runtime="torch")
    onnx_rows = tmp_path / "onnx.jsonl"
    predict_path(onnx_dir, corpus, onnx_rows, progress=False, runtime="onnx")
    expected = read_rows(torch_rows)
    assert expected and all(isinstance(r["labels"], list) and set(r["thresholds"]) == set(r["probs"]) for r in expected)
    got = read_rows(onnx_rows)
    agree = sum(a["labels"] == b["labels"] for a, b in zip(expected, got))
    assert agree >= len(expected) - 1  # float32 ONNX vs float64 torch: at most a threshold tie apart
    res = subprocess.run([LABELLOOP, "predict", str(model), str(corpus), "-o", str(tmp_path / "ray"), "--engine", "ray",
                          "--workers", "1", "--runtime", "torch"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    ray_rows = read_rows(tmp_path / "ray")
    by_key = {(r["input"], r["position"]): r for r in ray_rows}
    for row in expected:
        other = by_key[(row["input"], row["position"])]
        assert other["labels"] == row["labels"] and other["thresholds"] == pytest.approx(row["thresholds"])
    local_docs, ray_docs = _document_sets(documents_path(torch_rows)), _document_sets(tmp_path / "ray.documents")
    assert local_docs == ray_docs and len(local_docs) == len({r["input"] for r in expected})


def _document_sets(path: Path) -> dict:
    """input -> the label set of its document row, from a .jsonl file or a folder of part files."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(r["kind"] == "document" for r in rows)
    return {r["input"]: r["labels"] for r in rows}


def test_serve_answers_with_label_sets_and_thresholds(model):
    from starlette.testclient import TestClient

    from labelloop.serving.http import create_app

    texts = [t for t, _ in bbc_docs(per_class=1, seed=9)]
    with TestClient(create_app(model, token=None, runtime="torch"), base_url="http://127.0.0.1") as client:
        info = client.get("/").json()
        assert info["multi_label"] is True and set(info["thresholds"]) == set(info["classes"])
        reply = client.post("/predict", json={"texts": texts}).json()
    student, prepare = load_student(model), student_input_for(model)
    chunks = reply["chunks"]
    assert len(chunks) > len(texts)  # whole articles are cut into chunks, as predict cuts its inputs
    assert [c["labels"] for c in chunks] == student.predict(prepare([c["text"] for c in chunks]))
    probs = student.predict_proba(prepare([c["text"] for c in chunks]))
    for i, doc in enumerate(reply["predictions"]):  # each text's label set: its chunks' mean, by the thresholds
        mine = probs[[c["input"] == i for c in chunks]]
        assert doc["chunks"] == len(mine) and set(doc["thresholds"]) == set(info["classes"])
        assert doc["labels"] == decide(pool(mine, multi_label=True), student.classes_, student.thresholds_)[0]
