"""Shared by the scale tests: a real trained student folder, a mixed input corpus, prediction files read back."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.bbc import bbc_docs

BAD_JSONL_LINE = "{this line is not json"
_TRAINED: dict[str, Path] = {}  # one trained student per test session, shared by the scale test modules


def train_student(tmp_path_factory) -> Path:
    """An embedding-head student (packaged MiniLM + head) fitted on 3 BBC articles per topic; trained once per session."""
    from labelloop.classify.embedding_head import EmbeddingHeadStudent

    key = str(tmp_path_factory.getbasetemp())
    if key not in _TRAINED:
        docs = bbc_docs(per_class=3, seed=3)
        texts = [t[:800] for t, _ in docs]
        folder = tmp_path_factory.mktemp("student") / "model"
        EmbeddingHeadStudent(sorted({c for _, c in docs})).fit(texts, [c for _, c in docs]).save(folder)
        _TRAINED[key] = folder
    return _TRAINED[key]


def write_corpus(folder: Path) -> Path:
    """Unseen BBC articles as .txt files (several chunks each), short rows in a .jsonl with one bad line."""
    docs = bbc_docs(per_class=3, seed=3, skip=4)
    (folder / "articles").mkdir(parents=True)
    for i, (text, _topic) in enumerate(docs[:6]):
        (folder / "articles" / f"article_{i:02d}.txt").write_text(text, encoding="utf-8")
    lines = [json.dumps({"text": t.split("\n")[0]}) for t, _ in docs[6:]]
    lines.insert(3, BAD_JSONL_LINE)
    (folder / "short.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def read_rows(path: Path) -> list[dict]:
    """Prediction rows of a .jsonl file or a folder of part files (.json lines or .parquet), by (input, position)."""
    path = Path(path)
    rows: list[dict] = []
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(f).to_pylist())
        else:
            rows.extend(json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
    return sorted(rows, key=lambda r: (r["input"], r["position"]))


def assert_same_predictions(got: list[dict], want: list[dict], tol: float = 1e-5) -> None:
    """Same chunks in the same places, same labels, probabilities within tol."""
    assert [(r["input"], r["position"], r["text"]) for r in got] == [(r["input"], r["position"], r["text"]) for r in want]
    assert [r["label"] for r in got] == [r["label"] for r in want]
    worst = max(abs(g["probs"][c] - w["probs"][c]) for g, w in zip(got, want) for c in w["probs"])
    assert worst < tol, worst
    assert all(set(g["probs"]) == set(w["probs"]) and g["source"] == "student" for g, w in zip(got, want))
