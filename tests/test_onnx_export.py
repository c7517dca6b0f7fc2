"""`labelloop export --onnx` and the onnxruntime path of predict, against the torch student on real text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelloop.classify import load_student
from labelloop.errors import LabelloopError, ModelNotAvailableError
from labelloop.serving.predict import load_predictor, predict_path, read_inputs, student_input_for

from tests.helpers.scale import assert_same_predictions, read_rows, train_student, write_corpus

pytestmark = pytest.mark.slow

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'labelloop[onnx]')")

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained student exported through the CLI, its torch twin (no model.onnx), a corpus, torch's probabilities."""
    tmp = tmp_path_factory.mktemp("onnx")
    torch_dir = train_student(tmp_path_factory)
    onnx_dir = tmp / "onnx"
    shutil.copytree(torch_dir, onnx_dir)
    res = subprocess.run([LABELLOOP, "export", str(onnx_dir), "--onnx"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "model.onnx" in res.stdout
    corpus = write_corpus(tmp / "corpus")
    texts = [r["text"] for r in read_inputs(corpus, student_input_for(torch_dir))] + ["  padded   short text  ", "x " * 700]  # past 256 tokens
    return torch_dir, onnx_dir, corpus, texts, load_student(torch_dir).predict_proba(texts)


def test_the_folder_gets_model_onnx_and_its_description(exported):
    _, onnx_dir, *_ = exported
    info = json.loads((onnx_dir / "onnx.json").read_text())
    assert (onnx_dir / "model.onnx").stat().st_size > 10_000_000
    assert info["outputs"] == ["embedding", "logits"] and info["pooling"] == "mean" and info["quantized"] is False


def test_the_onnx_file_alone_classifies_like_the_torch_student(exported):
    """model.onnx holds the head too: its `logits` output, with only tokenizers + onnxruntime, gives the labels."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    _, onnx_dir, _, texts, torch_probs = exported
    tok = Tokenizer.from_file(str(onnx_dir / "body" / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding()
    enc = tok.encode_batch(texts[:16])
    feed = {"input_ids": np.array([e.ids for e in enc]), "attention_mask": np.array([e.attention_mask for e in enc]),
            "token_type_ids": np.array([e.type_ids for e in enc])}
    (logits,) = ort.InferenceSession(str(onnx_dir / "model.onnx")).run(["logits"], feed)
    assert list(logits.argmax(1)) == list(torch_probs[:16].argmax(1))


def test_onnx_runtime_agrees_with_torch(exported):
    _, onnx_dir, _, texts, want = exported
    onnx_student = load_predictor(onnx_dir)  # auto: model.onnx is there
    assert type(onnx_student).__name__ == "OnnxStudent"
    assert type(load_predictor(onnx_dir, "torch")).__name__ == "EmbeddingHeadStudent"
    got = onnx_student.predict_proba(texts)
    assert (want.argmax(1) == got.argmax(1)).mean() >= 0.999
    assert np.abs(want - got).max() < 1e-4


def test_predict_with_onnx_never_imports_torch(exported, tmp_path):
    torch_dir, onnx_dir, corpus, *_ = exported
    code = (
        "import sys\nfrom labelloop.serving.predict import predict_path\n"
        f"n = predict_path({str(onnx_dir)!r}, {str(corpus)!r}, {str(tmp_path / 'onnx.jsonl')!r}, progress=False)\n"
        "print(n, 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    n, torch_loaded = res.stdout.split()[-2:]
    assert torch_loaded == "False"
    predict_path(torch_dir, corpus, tmp_path / "torch.jsonl", progress=False)
    want = read_rows(tmp_path / "torch.jsonl")
    assert int(n) == len(want)
    assert_same_predictions(read_rows(tmp_path / "onnx.jsonl"), want, tol=1e-4)


def test_int8_is_smaller_and_mostly_agrees(exported, tmp_path):
    from labelloop.serving.onnx_export import export_onnx

    torch_dir, onnx_dir, _, texts, torch_probs = exported
    int8_dir = tmp_path / "int8"
    shutil.copytree(torch_dir, int8_dir)
    export_onnx(int8_dir, int8=True)
    assert (int8_dir / "model.onnx").stat().st_size < 0.4 * (onnx_dir / "model.onnx").stat().st_size
    student = load_predictor(int8_dir)
    assert student.quantized == "int8-dynamic"
    agree = np.mean(student.predict_proba(texts).argmax(1) == torch_probs.argmax(1))
    # Far above chance (0.2 for 5 topics) even for this weak 15-article head; the accuracy cost on
    # real data is measured in bench/bench_scale.py.
    assert agree >= 0.7, agree


def test_errors_name_the_fix(exported, tmp_path, monkeypatch):
    from labelloop.serving.onnx_export import export_onnx

    torch_dir, onnx_dir, *_ = exported
    with pytest.raises(LabelloopError, match=r"labelloop export .* --onnx"):
        load_predictor(torch_dir, "onnx")
    stale = tmp_path / "stale"
    shutil.copytree(onnx_dir, stale)
    from labelloop.classify.folder import load_head, save_head

    coef, intercept = load_head(stale, len(json.loads((stale / "labelloop.json").read_text())["classes"]))
    (stale / "head.safetensors").unlink()
    save_head(stale, coef * 2, intercept)  # a new head: the exported graph no longer matches it
    with pytest.raises(ModelNotAvailableError, match="export it again"):
        load_predictor(stale)
    other = tmp_path / "setfit"
    other.mkdir()
    meta = json.loads((onnx_dir / "labelloop.json").read_text())
    (other / "labelloop.json").write_text(json.dumps({**meta, "student_type": "setfit"}))
    with pytest.raises(LabelloopError, match="embedding-head"):
        export_onnx(other)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(LabelloopError, match=r"pip install 'labelloop\[onnx\]'"):
        export_onnx(stale)
