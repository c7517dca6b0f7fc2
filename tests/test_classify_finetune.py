"""The fine-tuning students (setfit, transformer) on real MiniLM: contract, saved folders, no pickle."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from labelloop.classify import load_student, make_student
from labelloop.classify.setfit_student import SetFitStudent
from labelloop.classify.transformer_student import TransformerStudent, hf_model_dir
from labelloop.config import StudentSection
from labelloop.errors import ModelNotAvailableError, NotFittedError

pytestmark = pytest.mark.slow

CLASSES = ["weather", "sports", "food"]  # "weather" (index 0) is left out of training on purpose
TRAIN = {
    "sports": ["The striker scored twice in the second half.", "The team won the championship final.",
               "She broke the world record in the 100 metres.", "The coach was sacked after five defeats.",
               "The referee showed him a red card.", "They lost the cup tie on penalties."],
    "food": ["Simmer the tomato sauce for twenty minutes.", "This bakery makes the best sourdough bread.",
             "Add a pinch of salt to the boiling pasta water.", "The chef's curry was rich and spicy.",
             "Roast the chicken with garlic and lemon.", "Stir the risotto until it is creamy."],
}
TEXTS = [t for ts in TRAIN.values() for t in ts]
LABELS = [c for c, ts in TRAIN.items() for _ in ts]
NEW = ["The goalkeeper saved a late penalty.", "Bake the apple pie for an hour.", "Rain is expected tomorrow."]


@pytest.fixture(scope="module")
def setfit_student(tmp_path_factory):
    """Trained inside an empty working directory, which must stay empty."""
    cwd = tmp_path_factory.mktemp("setfit-cwd")
    settings = StudentSection(type="setfit", setfit_iterations=2, epochs=1, batch_size=16, seed=7)
    with contextlib.chdir(cwd):
        student = make_student("setfit", CLASSES, settings=settings).fit(TEXTS, LABELS)
    assert isinstance(student, SetFitStudent)
    assert sorted(os.listdir(cwd)) == [], "setfit wrote into the working directory"
    return student


@pytest.fixture(scope="module")
def transformer_student(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("transformer-cwd")
    settings = StudentSection(type="transformer", epochs=4, batch_size=8, learning_rate=1e-4, max_seq_length=32)
    with contextlib.chdir(cwd):
        student = make_student("transformer", CLASSES, settings=settings).fit(TEXTS, LABELS)
    assert isinstance(student, TransformerStudent)
    assert os.listdir(cwd) == []
    return student


@pytest.fixture(params=["setfit", "transformer"])
def student(request):
    return request.getfixturevalue(f"{request.param}_student")


def test_unfitted_fine_tuners_say_call_fit_first():
    for student in (SetFitStudent(CLASSES), TransformerStudent(CLASSES)):
        assert not [k for k in vars(student) if k.endswith("_")]
        with pytest.raises(NotFittedError, match="call fit first"):
            student.predict_proba(["hello"])


def test_hub_ids_not_here_are_refused_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty hub cache, offline (conftest)
    with pytest.raises(ModelNotAvailableError, match="'distilbert-base-uncased' is not available here"):
        make_student("transformer", CLASSES, model_path="distilbert-base-uncased").fit(TEXTS, LABELS)
    with pytest.raises(ModelNotAvailableError, match="student.encoder: model 'someone/unknown-encoder'"):
        SetFitStudent(CLASSES, encoder_path="someone/unknown-encoder").fit(TEXTS, LABELS)


def test_a_sentence_transformers_layout_is_found(tmp_path):
    (tmp_path / "0_Transformer").mkdir()
    (tmp_path / "0_Transformer" / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"}]
    ))
    assert hf_model_dir(str(tmp_path)) == str(tmp_path / "0_Transformer")
    with pytest.raises(ModelNotAvailableError, match="no transformers model"):
        hf_model_dir(str(tmp_path / "missing"))


def test_fits_and_keeps_the_missing_class(student):
    assert student.classes_ == CLASSES
    probs = student.predict_proba(TEXTS + NEW)
    assert probs.shape == (len(TEXTS) + 3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    train_acc = np.mean([p == y for p, y in zip(student.predict(TEXTS), LABELS)])
    assert train_acc >= 0.9, train_acc
    assert student.predict(NEW[:2]) == ["sports", "food"]
    # Never trained on: the weather column is the least likely everywhere on the training texts.
    assert (probs[: len(TEXTS), 0] < probs[: len(TEXTS), 1:].max(axis=1)).all()
    if isinstance(student, SetFitStudent):
        assert probs[:, 0].max() < 1e-6


def test_round_trip_and_no_pickle(student, tmp_path):
    folder = tmp_path / "classifier"
    student.save(folder)
    assert not [p for p in folder.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib", ".bin", ".pt"}]
    meta = json.loads((folder / "labelloop.json").read_text())
    assert meta["student_type"] == student.kind and meta["classes"] == CLASSES
    assert meta["id2label"]["0"] == "weather"
    loaded = load_student(folder)
    assert type(loaded) is type(student) and loaded.classes_ == CLASSES
    np.testing.assert_allclose(loaded.predict_proba(TEXTS + NEW), student.predict_proba(TEXTS + NEW), atol=1e-5)


def test_setfit_is_seeded(setfit_student):
    settings = StudentSection(type="setfit", setfit_iterations=2, epochs=1, batch_size=16, seed=7)
    again = make_student("setfit", CLASSES, settings=settings).fit(TEXTS, LABELS)
    np.testing.assert_allclose(again.predict_proba(NEW), setfit_student.predict_proba(NEW), atol=1e-6)


def test_saved_folders_load_without_labelloop(setfit_student, transformer_student, tmp_path):
    folders = {}
    for name, student in (("setfit", setfit_student), ("transformer", transformer_student)):
        folders[name] = tmp_path / name
        student.save(folders[name])
    parts = ["import json, os, sys", f"texts = {NEW!r}", "result = {}"]
    for name, folder in folders.items():
        snippet = (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
        parts += [f"os.chdir({str(folder)!r})", snippet, f"result[{name!r}] = labels"]
    parts.append("result['labelloop_imported'] = any(m.split('.')[0] == 'labelloop' for m in sys.modules)")
    parts.append("print(json.dumps(result))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", "\n".join(parts)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["labelloop_imported"] is False
    assert out["setfit"] == setfit_student.predict(NEW)
    assert out["transformer"] == transformer_student.predict(NEW)
