"""The student-input contract in a saved folder: which tokenizer chunks, which cuts, and a window a full chunk fits."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from labelloop.classify import folder as fmt
from labelloop.classify.student_input import INPUT_FILE, StudentInput
from labelloop.config import parse_config
from labelloop.ingest.chunking import Chunker, chunker_for, load_tokenizer
from labelloop.ingest.truncation import SEPARATOR
from labelloop.models import default_encoder_path

pytestmark = pytest.mark.unit

CLASSES = ["business", "sport"]
PROSE = " ".join(
    f"Sentence {i} says the harbour of Brindlecombe unloaded {i * 7} crates of unusually fragrant tea today."
    for i in range(120)
)


def make_config(tmp_path: Path, **sections):
    raw = {"classification": {"classes": CLASSES, "desc": "News topics."},
           "path": {"input_dir": "input", "output_dir": "out"}, **sections}
    (tmp_path / "input").mkdir(exist_ok=True)
    return parse_config(raw, base_dir=tmp_path)


def word_tokenizer_folder(tmp_path: Path) -> Path:
    """A model folder whose tokenizer counts words: it chunks unlike MiniLM's WordPiece."""
    folder = tmp_path / "words"
    folder.mkdir()
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    return folder


def saved_folder(tmp_path: Path, contract: StudentInput, name: str = "classifier_1") -> Path:
    """A student folder as the loop leaves it: the student's labelloop.json, then the contract saved beside it."""
    folder = tmp_path / name
    folder.mkdir()
    fmt.write_meta(folder, "embedding-head", CLASSES, body=fmt.BODY_DIR, head=fmt.HEAD_FILE, normalize=True,
                   max_seq_length=contract.max_length, truncation="head")
    contract.save(folder)
    return folder


# ------------------------------------------------------------ a chunk the chunker made fits the window


def test_a_chunk_of_exactly_chunk_size_tokens_is_seen_whole(tmp_path):
    contract = StudentInput.from_config(make_config(tmp_path))  # chunk_size 256, the packaged MiniLM (256)
    run_on = " ".join(["the", "harbour", "unloaded", "crates", "of", "tea"] * 150)  # one sentence, hard-split
    chunks = contract.chunker().chunk(run_on)
    full = [text for text, n in chunks if n == contract.chunk_size]
    assert len(full) >= 2, [n for _, n in chunks]  # the chunker fills chunks to exactly chunk_size
    for text in full:
        cut = contract.cut(text)
        assert not cut.truncated and cut.text == text and SEPARATOR not in cut.text
    assert contract.budget >= contract.chunk_size and contract.max_length == contract.chunk_size + 2


def test_a_chunk_size_beyond_the_model_is_a_choice_to_cut_and_an_explicit_length_is_kept(tmp_path):
    long_chunks = StudentInput.from_config(make_config(tmp_path, system={"chunk_size": 400}))
    assert long_chunks.max_length == 256  # the model's own length: longer chunks are cut (truncation_type)
    assert long_chunks.cut(long_chunks.chunker().chunk(PROSE)[0][0]).truncated
    explicit = StudentInput.from_config(make_config(tmp_path, student={"max_seq_length": 256}))
    assert explicit.max_length == 256


# ------------------------------------------------------------ chunking is part of the saved contract


def test_a_saved_folder_chunks_as_ingest_did_even_without_the_chunking_model(tmp_path):
    words = word_tokenizer_folder(tmp_path)
    config = make_config(tmp_path, system={"chunk_size": 40}, student={"encoder": str(words)})
    ingest_chunks = chunker_for(config).chunk(PROSE)
    # student.type auto trained the packaged MiniLM on chunks that the configured model's tokenizer cut
    contract = StudentInput.from_config(config).with_encoder(None, config)
    assert contract.chunker().chunk(PROSE) == ingest_chunks
    minilm_chunks = Chunker(load_tokenizer(None), 40).chunk(PROSE)
    assert minilm_chunks != ingest_chunks  # the student's own tokenizer would chunk otherwise

    folder = saved_folder(tmp_path, contract)
    shutil.rmtree(words)  # predict, Ray and serve run where the chunking model is not
    loaded = StudentInput.load(folder)
    assert loaded == contract
    assert loaded.chunker().chunk(PROSE) == ingest_chunks
    assert Path(loaded.tokenizer_dir) == folder / "cut" and Path(loaded.chunker_dir) == folder / "chunker"
    assert loaded.prepare([PROSE]) == contract.prepare([PROSE])


def test_one_tokenizer_file_when_the_student_chunks_with_its_own(tmp_path):
    contract = StudentInput.from_config(make_config(tmp_path))
    folder = saved_folder(tmp_path, contract)
    data = json.loads((folder / INPUT_FILE).read_text())
    assert data["tokenizer"] == data["chunk_tokenizer"] == "cut/tokenizer.json"
    assert not (folder / "chunker").exists()
    assert StudentInput.load(folder).chunker().chunk(PROSE) == contract.chunker().chunk(PROSE)


def test_an_older_folder_without_recorded_tokenizers_chunks_with_its_own(tmp_path):
    contract = StudentInput.from_config(make_config(tmp_path))
    folder = tmp_path / "old"
    (folder / "body").mkdir(parents=True)
    shutil.copy(Path(default_encoder_path()) / "tokenizer.json", folder / "body" / "tokenizer.json")
    old = {k: v for k, v in contract.to_dict().items() if k != "chunk_encoder"}
    (folder / INPUT_FILE).write_text(json.dumps(old))
    loaded = StudentInput.load(folder)
    assert Path(loaded.tokenizer_dir) == Path(loaded.chunker_dir) == folder / "body"
    assert loaded.chunker().chunk(PROSE) == contract.chunker().chunk(PROSE)


# ------------------------------------------------------------ labelloop.json says the real cut


@pytest.mark.parametrize("kind", ["head-tail", "head"])
def test_labelloop_json_and_readme_record_the_real_cut(tmp_path, kind):
    config = make_config(tmp_path, training={"truncation_type": kind})
    contract = StudentInput.from_config(config)
    folder = saved_folder(tmp_path, contract)
    meta = fmt.read_meta(folder)
    assert meta["truncation"] == kind
    assert meta["input"] == {"truncation": kind, "max_length": contract.max_length, "max_tokens": contract.budget,
                             "marker": SEPARATOR, "head_fraction": 0.25, "tokenizer": "cut/tokenizer.json",
                             "chunk_size": contract.chunk_size}
    readme = (folder / "README.md").read_text()
    code = readme.split("```python\n")[1].split("```")[0]
    assert f"cut {kind}," in readme and "def cut_text(" in code and "texts = [cut_text(" in code
    assert "import labelloop" not in code and "from labelloop" not in code


def test_a_student_saved_without_a_contract_says_its_own_head_cut(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    meta = fmt.write_meta(folder, "static", CLASSES, static="static", max_seq_length=128, truncation="head")
    fmt.write_readme(folder, meta)
    readme = (folder / "README.md").read_text()
    assert "cut (head)" in readme and "cut_text" not in readme


def test_the_contract_survives_the_project_file_round_trip(tmp_path):
    contract = StudentInput.from_config(make_config(tmp_path, student={"encoder": str(word_tokenizer_folder(tmp_path))}))
    again = StudentInput.from_dict(json.loads(json.dumps(contract.to_dict())))
    assert again == contract and again.chunk_encoder == contract.chunk_encoder
    assert replace(again, chunk_encoder="other") != contract


@pytest.mark.parametrize("kind", ["embedding-head", "setfit", "static", "transformer"])
@pytest.mark.parametrize("multi", [False, True])
def test_every_readme_with_a_cut_is_python_that_cuts_first(tmp_path, kind, multi):
    contract = StudentInput.from_config(make_config(tmp_path))
    folder = tmp_path / "c"
    folder.mkdir()
    extra = {"multi_label": True, "thresholds": {c: 0.5 for c in CLASSES}} if multi else {}
    fmt.write_meta(folder, kind, CLASSES, max_seq_length=contract.max_length, truncation="head", **extra)
    contract.save(folder)
    readme = (folder / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```python\n")[1:]]
    compile("\n".join(blocks), "README.md", "exec")
    code = blocks[0]
    assert code.index("texts = [cut_text(") < code.index("labels = ")
    assert ("multi-label" in readme.lower()) is multi
