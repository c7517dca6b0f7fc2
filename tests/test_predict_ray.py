"""`labelloop predict --engine ray` on a local Ray instance: the same rows as the single-process engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labelloop.errors import LabelloopError
from labelloop.serving.predict import predict_path

from tests.helpers.scale import assert_same_predictions, read_rows, train_student, write_corpus

pytestmark = pytest.mark.slow

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'labelloop[ray]')")

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A trained student, a corpus, and the single engine's predictions on it (torch)."""
    tmp = tmp_path_factory.mktemp("ray")
    model = train_student(tmp_path_factory)
    corpus = write_corpus(tmp / "corpus")
    single = tmp / "single.jsonl"
    predict_path(model, corpus, single, progress=False, runtime="torch")
    return model, corpus, read_rows(single)


def test_ray_engine_writes_the_single_engine_rows(setup, tmp_path):
    model, corpus, single = setup
    out = tmp_path / "preds"
    res = run_cli("predict", str(model), str(corpus), "-o", str(out), "--engine", "ray", "--workers", "2",
                  "--batch-size", "8", "--runtime", "torch")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no Ray logs, warnings or progress bars in the CLI's output
    assert f"Wrote {len(single)} predictions" in res.stdout
    assert "short.jsonl:4" in res.stdout and "not valid JSON" in res.stdout  # the bad line is reported, not lost
    assert len({r["input"] for r in single}) > 8 and max(r["position"] for r in single) >= 1
    assert_same_predictions(read_rows(out), single)


def test_an_existing_output_is_refused_before_any_work(setup, tmp_path):
    from labelloop.serving.ray_predict import predict_ray

    model, corpus, _ = setup
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.json").write_text("{}\n")
    with pytest.raises(LabelloopError, match="not an empty folder"):
        predict_ray(model, corpus, tmp_path / "out")
    res = run_cli("predict", str(model), str(corpus), "-o", str(tmp_path / "x.jsonl"), "--address", "auto")
    assert res.returncode != 0 and "--engine ray" in res.stdout + res.stderr


def test_without_ray_the_error_says_how_to_install(setup, tmp_path, monkeypatch):
    from labelloop.serving.ray_predict import predict_ray

    model, corpus, _ = setup
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LabelloopError, match=r"pip install 'labelloop\[ray\]'"):
        predict_ray(model, corpus, tmp_path / "out")
