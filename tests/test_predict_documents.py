"""Document answers beside chunk rows: `labelloop predict` (local and Ray) and `labelloop serve` cut the same
chunks and give the same chunk and document answers; predict streams its input instead of reading it all first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelloop.classify.decision import decide, pool
from labelloop.serving import predict as engine
from labelloop.serving.predict import documents_path, predict_path

from tests.helpers.scale import read_rows, train_student, write_corpus


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A trained student, a corpus (long articles as .txt, short rows in a .jsonl), the local engine's rows."""
    tmp = tmp_path_factory.mktemp("documents")
    model = train_student(tmp_path_factory)
    corpus = write_corpus(tmp / "corpus")
    out = tmp / "preds.jsonl"
    predict_path(model, corpus, out, progress=False, runtime="torch")
    return model, corpus, read_rows(out), _documents(documents_path(out))


def _documents(path: Path) -> dict:
    return {r["input"]: r for r in read_rows_any(path)}


def read_rows_any(path: Path) -> list[dict]:
    """Rows of a .jsonl file or a folder of part files, in no particular order (document rows have no position)."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def _inputs(corpus: Path) -> dict[str, str]:
    """Each input as predict names it, with its text as a serve client would send it."""
    texts = {f"articles/{p.name}": p.read_text(encoding="utf-8") for p in sorted((corpus / "articles").glob("*.txt"))}
    for lineno, line in enumerate((corpus / "short.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        try:
            texts[f"short.jsonl#L{lineno}"] = json.loads(line)["text"]
        except json.JSONDecodeError:
            continue  # the corpus's bad line: predict skips it with a warning
    return texts


def _same_answers(got_chunks, got_docs, want_chunks, want_docs, key="label", tol=1e-6):
    assert [(r["input"], r["position"], r["text"]) for r in got_chunks] == \
        [(r["input"], r["position"], r["text"]) for r in want_chunks]
    assert [r[key] for r in got_chunks] == [r[key] for r in want_chunks]
    assert max(abs(g["probs"][c] - w["probs"][c]) for g, w in zip(got_chunks, want_chunks) for c in w["probs"]) < tol
    assert sorted(got_docs) == sorted(want_docs)
    for name, want in want_docs.items():
        got = got_docs[name]
        assert (got["kind"], got["chunks"], got[key]) == ("document", want["chunks"], want[key]), name
        assert got["probs"] == pytest.approx(want["probs"], abs=tol) and got["confidence"] == pytest.approx(
            want["confidence"], abs=tol)


@pytest.mark.slow
def test_predict_ray_and_serve_give_the_same_chunk_and_document_answers(setup, tmp_path):
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'labelloop[ray]')")
    from starlette.testclient import TestClient

    from labelloop.serving.http import create_app
    from labelloop.serving.ray_predict import predict_ray

    model, corpus, chunks, docs = setup
    # the local engine: one document row per input, its answer decided on the mean of its chunks' probabilities
    assert len(docs) == len({r["input"] for r in chunks}) and any(d["chunks"] > 1 for d in docs.values())
    classes = list(next(iter(docs.values()))["probs"])
    for name, doc in docs.items():
        mine = np.array([[r["probs"][c] for c in classes] for r in chunks if r["input"] == name])
        assert doc["chunks"] == len(mine) and doc["label"] == decide(pool(mine), classes)[0]
        assert [doc["probs"][c] for c in classes] == pytest.approx(mine.mean(axis=0), abs=1e-9)
    assert all(r["kind"] == "chunk" for r in chunks)

    n = predict_ray(model, corpus, tmp_path / "ray", workers=1, batch_size=8, runtime="torch")
    assert n == len(chunks)
    _same_answers(read_rows(tmp_path / "ray"), _documents(tmp_path / "ray.documents"), chunks, docs, tol=1e-5)

    texts = _inputs(corpus)
    names = list(texts)
    with TestClient(create_app(model, token=None, runtime="torch"), base_url="http://127.0.0.1") as client:
        reply = client.post("/predict", json={"texts": list(texts.values())}).json()
    served_chunks = sorted(({**r, "input": names[r["input"]]} for r in reply["chunks"]),
                           key=lambda r: (r["input"], r["position"]))
    served_docs = {names[d["input"]]: d for d in reply["predictions"]}
    assert [d["input"] for d in reply["predictions"]] == list(range(len(names)))  # one per text, in order
    _same_answers(served_chunks, served_docs, chunks, docs)


def test_predict_answers_the_first_batch_before_it_reads_the_last_file(setup, tmp_path, monkeypatch):
    """Streaming: a batch is predicted (and written) while later files are still unread, so memory does not
    grow with the input."""
    import labelloop.ingest.readers as readers

    model, _corpus, _chunks, _docs = setup
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        rows = [json.dumps({"text": f"Shares in company {i} rose {j}% after results."}) for j in range(5)]
        (folder / f"part_{i}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    events: list[str] = []
    real_read, real_load = readers.read_file, engine.load_predictor

    def read_file(path, *args, **kwargs):
        events.append(f"read {Path(path).name}")
        yield from real_read(path, *args, **kwargs)

    class Watched:
        def __init__(self, student):
            self.student, self.classes_ = student, student.classes_

        def predict_proba(self, texts):
            events.append(f"predict {len(texts)}")
            return self.student.predict_proba(texts)

    monkeypatch.setattr(readers, "read_file", read_file)
    monkeypatch.setattr(engine, "load_predictor", lambda *a, **k: Watched(real_load(*a, **k)))
    out = tmp_path / "preds.jsonl"
    assert predict_path(model, folder, out, batch_size=5, progress=False, runtime="torch") == 30
    assert events.index("predict 5") < events.index("read part_5.jsonl"), events
    assert len(read_rows_any(documents_path(out))) == 30  # every .jsonl row is an input of its own
