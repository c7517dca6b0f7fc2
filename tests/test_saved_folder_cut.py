"""A saved folder's README loads the classifier as `labelloop predict` runs it, long texts included.

The README's own code block is taken from the saved README and run in a fresh interpreter in
the folder, on the chunks `labelloop predict` wrote; the labels must be the ones predict gave.
The texts are longer than the student's window and change topic half-way, so a head cut and
the head-tail cut disagree on them (checked first: otherwise the test could not fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from labelloop.classify import load_student, make_student
from labelloop.classify.encoder import Encoder
from labelloop.classify.student_input import StudentInput
from labelloop.config import StudentSection

pytestmark = pytest.mark.slow

CLASSES = ["weather", "sports", "food"]
SENTENCES = {
    "weather": ["Heavy rain and strong winds are expected tonight.", "Sunny skies with a high of 25 degrees.",
                "Snow will fall across the north tomorrow.", "A storm warning was issued for the coast.",
                "Fog will clear by midday in most places.", "Temperatures drop sharply after the cold front."],
    "sports": ["The striker scored twice in the second half.", "The team won the championship final.",
               "She broke the world record in the 100 metres.", "The coach was sacked after five defeats.",
               "The goalkeeper saved a late penalty.", "The match went to extra time and penalties."],
    "food": ["Simmer the tomato sauce for twenty minutes.", "This bakery makes the best sourdough bread.",
             "Add a pinch of salt to the boiling pasta water.", "The chef's curry was rich and spicy.",
             "Whisk the eggs with sugar until fluffy.", "Roast the vegetables with garlic and olive oil."],
}
WINDOW = 40  # tokens with the special ones: every long text below is cut
KINDS = {"embedding-head": {}, "static": {}, "transformer": {"epochs": 4}}


def long_texts() -> list[str]:
    """Texts of 100+ tokens whose first part is one topic and the rest another."""
    out = []
    for first in CLASSES:
        for then in CLASSES:
            if first != then:
                out.append(" ".join(SENTENCES[first][:3] + SENTENCES[then]))
    return out


@pytest.fixture(scope="module")
def contract():
    return StudentInput(encoder=None, max_length=WINDOW, truncation="head-tail", chunk_size=512, classes=tuple(CLASSES))


def saved(kind: str, contract: StudentInput, folder: Path) -> Path:
    """A student trained on cut texts and saved as the loop saves it (student, then its contract)."""
    texts = [t for c in CLASSES for t in SENTENCES[c]]
    labels = [c for c in CLASSES for _ in SENTENCES[c]]
    settings = StudentSection(**KINDS[kind]) if KINDS[kind] else None
    student = make_student(kind, CLASSES, settings=settings, max_seq_length=contract.max_length)
    student.fit(contract.prepare(texts), labels)
    student.save(folder)
    contract.save(folder)
    return folder


def predict_cli(folder: Path, texts: list[str], tmp: Path) -> list[dict]:
    """`labelloop predict` (the command, in this process) on a .jsonl of the texts: its chunk rows."""
    from typer.testing import CliRunner

    from labelloop.cli import app

    inp, out = tmp / "in.jsonl", tmp / "out.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    result = CliRunner().invoke(app, ["predict", str(folder), str(inp), "-o", str(out), "--runtime", "torch"])
    assert result.exit_code == 0, result.output[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind", "chunk") == "chunk"]


def readme_labels(folder: Path, texts: list[str]) -> dict:
    """The README's code block, run in a fresh interpreter in the folder, on these texts."""
    readme = (folder / "README.md").read_text()
    code = readme.split("```python\n")[1].split("```")[0]
    script = (f"import json as _json, sys as _sys\ntexts = {texts!r}\n{code}\n"
              "print(_json.dumps({'labels': labels, 'texts': texts, "
              "'labelloop_imported': any(m.split('.')[0] == 'labelloop' for m in _sys.modules)}))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", list(KINDS))
def test_readme_code_gives_the_labels_of_labelloop_predict_on_long_texts(kind, contract, tmp_path):
    folder = saved(kind, contract, tmp_path / kind)
    texts = long_texts()
    rows = predict_cli(folder, texts, tmp_path)
    chunks = [r["text"] for r in rows]
    assert chunks == texts  # one chunk per text (chunk_size 512): each longer than the window
    student = load_student(folder)
    head_only = student.predict(replace(contract, truncation="head").prepare(chunks))
    predicted = [r["label"] for r in rows]
    assert head_only != predicted  # the texts tell a head cut from the head-tail cut

    out = readme_labels(folder, chunks)
    assert out["labelloop_imported"] is False
    assert out["texts"] == contract.prepare(chunks)  # the README cut them exactly as labelloop did
    assert out["labels"] == predicted


def test_few_shot_similarity_embeds_what_the_student_sees(contract, tmp_path):
    from labelloop.loop.runner import _embedder
    from labelloop.config import parse_config

    (tmp_path / "input").mkdir()
    config = parse_config({"classification": {"classes": CLASSES, "desc": "Topics."},
                           "path": {"input_dir": "input", "output_dir": "out"}}, base_dir=tmp_path)

    class NoCache:
        def get(self, keys):
            return {}

        def put(self, vectors):
            pass

    text = long_texts()[0]
    embed = _embedder(config, NoCache(), contract)
    encoder = Encoder(None, max_seq_length=contract.max_length)
    np.testing.assert_allclose(embed([text]), encoder.encode(contract.prepare([text])), atol=1e-5)
    assert not np.allclose(embed([text]), encoder.encode([text]), atol=1e-3)  # the raw text is another input
