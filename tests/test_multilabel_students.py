"""The fine-tuning students (setfit, transformer) learning label sets: fit, thresholds, saved folders.

Tiny data on real MiniLM: sport, business, both and neither (no label is a valid answer). The
thresholds are tuned by the students' own cross-validation, here with 2 folds instead of 5 (time).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from labelloop.classify import load_student, make_student
from labelloop.classify.base import BaseStudent, OverBudget, encode_label_sets, fit_deadline
from labelloop.classify.setfit_student import SetFitStudent, _has_multilabel_pairs
from labelloop.classify.thresholds import tune_thresholds
from labelloop.classify.transformer_student import (
    POS_WEIGHT_RANGE,
    TransformerStudent,
    label_pos_weights,
    multilabel_oversample_indices,
)
from labelloop.config import StudentSection

pytestmark = pytest.mark.slow

CLASSES = ["sport", "business"]
DATA = {  # 24 texts, 6 per label set
    ("sport",): ["The striker scored twice in the second half.", "The team won the championship final.",
                 "She broke the world record in the 100 metres.", "The referee showed him a red card.",
                 "They lost the cup tie on penalties.", "The goalkeeper saved a late penalty."],
    ("business",): ["Shares fell sharply after the profit warning.", "The central bank raised interest rates.",
                    "The retailer reported record quarterly revenue.", "Investors sold bonds as inflation rose.",
                    "The merger created the largest bank in Europe.", "Oil prices pushed the stock market down."],
    ("sport", "business"): ["The football club's shares rose after the cup win.",
                            "The league signed a billion-pound television deal.",
                            "Sponsors paid record fees to the Olympic team.",
                            "The club reported a loss after buying the striker.",
                            "Ticket revenue at the stadium doubled this season.",
                            "The sportswear maker's profits rose with the World Cup."],
    (): ["Simmer the tomato sauce for twenty minutes.", "Rain is expected across the north tomorrow.",
         "Roast the chicken with garlic and lemon.", "The poem describes a quiet winter morning.",
         "Water the tomatoes twice a week in summer.", "The museum opens a new painting gallery."],
}
TEXTS = [t for ts in DATA.values() for t in ts]
SETS = [list(labels) for labels, ts in DATA.items() for _ in ts]
NEW = ["The midfielder scored a late winner.", "The bank's profits doubled this year.",
       "The club sold its stadium naming rights for millions.", "Bake the apple pie for an hour."]
LEN = 32


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: on a shared 2-core machine two threads can run ten times slower (they wait
    on each other); the numbers do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fit(kind: str, texts=TEXTS, labels=SETS, multi_label=True, epochs=None, **fit_kwargs):
    if kind == "setfit":
        settings = StudentSection(type="setfit", setfit_iterations=2, epochs=epochs or 1, batch_size=16, seed=3,
                                  max_seq_length=LEN)
    else:
        settings = StudentSection(type="transformer", epochs=epochs or 3, batch_size=8, learning_rate=5e-4, seed=3,
                                  max_seq_length=LEN)
    return make_student(kind, CLASSES, settings=settings, multi_label=multi_label).fit(texts, labels, **fit_kwargs)


def _fit_tuned(kind: str, cwd):
    """Fitted without thresholds: tuned on out-of-fold probabilities (2 folds), which are kept as `oof`."""
    seen = []
    real = BaseStudent.cross_val_proba

    def two_folds(self, texts, labels, folds=5, stop_after=None):
        seen.append(real(self, texts, labels, folds=2, stop_after=stop_after))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp, contextlib.chdir(cwd):
        mp.setattr(BaseStudent, "cross_val_proba", two_folds)
        student = _fit(kind)
    assert len(seen) == 1 and seen[0].shape == (len(TEXTS), len(CLASSES))
    assert os.listdir(cwd) == [], f"{kind} wrote into the working directory"
    student.oof = seen[0]
    return student


@pytest.fixture(scope="module")
def setfit_multi(tmp_path_factory):
    student = _fit_tuned("setfit", tmp_path_factory.mktemp("setfit-cwd"))
    assert isinstance(student, SetFitStudent)
    return student


@pytest.fixture(scope="module")
def transformer_multi(tmp_path_factory):
    student = _fit_tuned("transformer", tmp_path_factory.mktemp("transformer-cwd"))
    assert isinstance(student, TransformerStudent)
    return student


@pytest.fixture(params=["setfit", "transformer"])
def student(request):
    return request.getfixturevalue(f"{request.param}_multi")


def _micro_f1(pred: list[list[str]], true: list[list[str]]) -> float:
    tp = sum(len(set(p) & set(t)) for p, t in zip(pred, true))
    return 2 * tp / max(1, sum(map(len, pred)) + sum(map(len, true)))


def test_fits_label_sets_with_tuned_thresholds(student):
    assert student.multi_label and student.classes_ == CLASSES
    probs = student.predict_proba(TEXTS + NEW)
    assert probs.shape == (len(TEXTS) + len(NEW), 2)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent per label, not a distribution
    assert student.thresholds_.shape == (2,) and ((student.thresholds_ >= 0) & (student.thresholds_ <= 1)).all()
    np.testing.assert_array_equal(student.thresholds_,
                                  tune_thresholds(student.oof, encode_label_sets(TEXTS, SETS, CLASSES)))
    pred = student.predict(TEXTS + NEW)
    assert all(isinstance(p, list) and set(p) <= set(CLASSES) for p in pred)
    assert [] in pred[:len(TEXTS)]  # "none of them" is an answer
    assert _micro_f1(pred[:len(TEXTS)], SETS) >= 0.9, pred
    new = pred[len(TEXTS):]
    assert "sport" in new[0] and "business" in new[1] and new[3] == [], new
    # The same decisions as the thresholds applied by hand.
    assert pred == [[c for c, p, t in zip(CLASSES, row, student.thresholds_) if p >= t] for row in probs]


def test_given_thresholds_and_soft_targets(tmp_path):
    soft = np.array([[0.9 if c in s else 0.1 for c in CLASSES] for s in SETS])
    student = _fit("transformer", epochs=1, soft=soft, thresholds=[0.3, 0.7])
    np.testing.assert_array_equal(student.thresholds_, [0.3, 0.7])
    probs = student.predict_proba(NEW)
    assert student.predict(NEW) == [[c for c, p, t in zip(CLASSES, row, [0.3, 0.7]) if p >= t] for row in probs]


def test_round_trip_keeps_probabilities_and_thresholds(student, tmp_path):
    folder = tmp_path / "classifier"
    student.save(folder)
    assert not [p for p in folder.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib", ".bin", ".pt"}]
    meta = json.loads((folder / "labelloop.json").read_text())
    assert meta["multi_label"] is True and meta["activation"] == "sigmoid"
    assert meta["thresholds"] == {c: float(t) for c, t in zip(CLASSES, student.thresholds_)}
    if student.kind == "transformer":
        config = json.loads((folder / "config.json").read_text())
        assert config["problem_type"] == "multi_label_classification"
        assert config["label_thresholds"] == meta["thresholds"]
    loaded = load_student(folder)
    assert type(loaded) is type(student) and loaded.multi_label and loaded.classes_ == CLASSES
    np.testing.assert_allclose(loaded.thresholds_, student.thresholds_)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS + NEW), student.predict_proba(TEXTS + NEW), atol=1e-5)
    assert loaded.predict(NEW) == student.predict(NEW)


def test_saved_folders_load_without_labelloop(setfit_multi, transformer_multi, tmp_path):
    """Each README's snippet, run in a fresh interpreter that never imports labelloop."""
    folders = {}
    for student in (setfit_multi, transformer_multi):
        folders[student.kind] = tmp_path / student.kind
        student.save(folders[student.kind])
    parts = ["import json, os, sys", f"texts = {TEXTS + NEW!r}", "result = {}"]
    for name, folder in folders.items():
        readme = (folder / "README.md").read_text()
        assert "multi-label" in readme.splitlines()[0]
        snippet = readme.split("```python\n")[1].split("```")[0]
        parts += [f"os.chdir({str(folder)!r})", snippet, f"result[{name!r}] = labels"]
    parts.append("result['labelloop_imported'] = any(m.split('.')[0] == 'labelloop' for m in sys.modules)")
    parts.append("print(json.dumps(result))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", "\n".join(parts)], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["labelloop_imported"] is False
    assert out["setfit"] == setfit_multi.predict(TEXTS + NEW)
    assert out["transformer"] == transformer_multi.predict(TEXTS + NEW)


@pytest.mark.parametrize("kind", ["setfit", "transformer"])
def test_single_label_fit_is_unaffected(kind, tmp_path):
    texts = DATA[("sport",)][:4] + DATA[("business",)][:4]
    labels = ["sport"] * 4 + ["business"] * 4
    student = _fit(kind, texts, labels, multi_label=False)
    assert not student.multi_label and not hasattr(student, "thresholds_")
    probs = student.predict_proba(NEW)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert all(isinstance(p, str) for p in student.predict(NEW))
    student.save(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "labelloop.json").read_text())
    assert "multi_label" not in meta and "thresholds" not in meta
    assert "multi-label" not in (tmp_path / "c" / "README.md").read_text()
    if kind == "transformer":
        config = json.loads((tmp_path / "c" / "config.json").read_text())
        assert "label_thresholds" not in config and config.get("problem_type") != "multi_label_classification"
    else:
        from safetensors.numpy import load_file

        assert set(load_file(str(tmp_path / "c" / "head.safetensors"))) == {"coef", "intercept"}


@pytest.mark.parametrize("kind", ["setfit", "transformer"])
def test_multi_label_fits_keep_the_deadline(kind):
    with fit_deadline(time.monotonic()), pytest.raises(OverBudget):
        _fit(kind, thresholds=[0.5, 0.5])


def test_pos_weights_and_oversampling_per_label():
    Y = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0]] + [[1, 0, 0]] * 45)
    w = label_pos_weights(Y)
    assert w[0] == POS_WEIGHT_RANGE[0] and w[1] == POS_WEIGHT_RANGE[1] and w[2] == 1.0  # clipped; no positives
    np.testing.assert_allclose(label_pos_weights(np.array([[1, 0], [0, 0], [0, 1], [0, 1]])), [3.0, 1.0])
    idx = multilabel_oversample_indices(Y, seed=0)
    assert sorted(set(idx.tolist())) == list(range(len(Y)))  # every row kept
    assert Y[idx].sum(axis=0)[1] >= Y.sum(axis=0)[0]  # the rare label caught up with the common one
    np.testing.assert_array_equal(idx, multilabel_oversample_indices(Y, seed=0))


def test_setfit_knows_when_there_are_pairs_to_tune_on():
    assert _has_multilabel_pairs(np.array([[1, 0], [0, 1]]))  # disjoint sets: negative pairs
    assert _has_multilabel_pairs(np.array([[1, 1], [0, 0]]))  # a label-less text
    assert not _has_multilabel_pairs(np.array([[1, 1], [1, 1]]))  # every pair shares a label
    assert not _has_multilabel_pairs(np.zeros((3, 2), int))  # no positive pair at all
