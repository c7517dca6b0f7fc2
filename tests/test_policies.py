"""One place per policy: which label counts, what the student sees, what keys the call log, what a plan counts.

Each test here failed before the policy had one home (the bugs of the "one source of truth" issue).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labelloop import labels as policy
from labelloop.classify.student_input import StudentInput, default_max_length
from labelloop.config import LLMSection, parse_config
from labelloop.llm.base import LabelTask
from labelloop.llm.calls import CallLog
from labelloop.models import default_encoder_path
from labelloop.review.actions import apply
from labelloop.review.records import load
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit
CLASSES = ["business", "sports"]


# ------------------------------------------------------------------ the label policy


def test_review_accept_keeps_the_large_models_relabel(tmp_path):
    """A train chunk the large model re-labeled: the reviewer sees that label, and Accept keeps it."""
    store = Store(tmp_path / "p.db")
    store.add_document("d", "0" * 64, None, [NewChunk("Shares rose after record profits.", "d", 0)])
    (chunk,) = store.chunks()
    store.assign_split([chunk.id], "train", iteration=1)
    store.set_label(chunk.id, policy.SMALL, "sports", confidence=0.55, rules_version=1)
    store.set_label(chunk.id, policy.LARGE, "business", confidence=0.97, rules_version=1)  # relabel_suspects
    record = load(store).by_id[chunk.id]
    assert record.suggestion[:2] == ("business", policy.LARGE)
    assert store.final_labels()[chunk.id].label == "business"
    apply(store, chunk.id, "accept", reviewer="r")
    final = store.final_labels()[chunk.id]
    assert (final.source, final.label) == (policy.HUMAN, "business")


def test_precedence_and_discards():
    class L:
        def __init__(self, source, label, status="ok"):
            self.source, self.label, self.status = source, label, status

    assert policy.final({"llm-small": L("llm-small", "a"), "llm-large": L("llm-large", "b")}).label == "b"
    # a large-model reply that could not be read leaves the small model's label in place
    assert policy.final({"llm-small": L("llm-small", "a"), "llm-large": L("llm-large", None, "unlabeled")}).label == "a"
    assert policy.final({"human": L("human", None, "discarded"), "llm-large": L("llm-large", "b")}) is None
    assert policy.final({"human": L("human", "c"), "llm-large": L("llm-large", "b")}).label == "c"
    assert policy.final({"student": L("student", "a")}) is None  # the student never counts as a label


# ------------------------------------------------------------------ what the student sees


def short_encoder(tmp_path: Path, length: int) -> Path:
    """The packaged MiniLM with a shorter window, as a model with its own max_seq_length."""
    folder = tmp_path / f"minilm-{length}"
    shutil.copytree(default_encoder_path(), folder)
    cfg = folder / "sentence_bert_config.json"
    text = cfg.read_text()
    cfg.unlink()  # the copy may share the packaged file's inode
    cfg.write_text(text.replace('"max_seq_length": 256', f'"max_seq_length": {length}'))
    return folder


def test_training_and_prediction_cut_text_the_same_way(tmp_path):
    """The encoder's own window (here 96) decides; the saved folder says head-tail and 96, and cuts the same."""
    from labelloop.classify import load_student
    from labelloop.loop.training import new_student

    (tmp_path / "in").mkdir()
    encoder = short_encoder(tmp_path, 96)
    config = parse_config({
        "classification": {"classes": CLASSES, "desc": "d"}, "path": {"input_dir": "in", "output_dir": "out"},
        "training": {"truncation_type": "head-tail", "model_path": str(encoder)},
    }, base_dir=tmp_path)
    contract = StudentInput.from_config(config)
    assert (contract.max_length, contract.budget, contract.truncation) == (96, 94, "head-tail")
    long_text = " ".join(f"word{i}" for i in range(600))
    cut = contract.prepare([long_text])[0]
    student = new_student(config, contract)
    student.fit(contract.prepare(["Shares rose.", "The striker scored."]), CLASSES)
    folder = tmp_path / "model"
    student.save(folder)
    contract.save(folder)
    saved = StudentInput.load(folder)
    assert saved == contract and saved.prepare([long_text])[0] == cut  # the same cut, from the folder alone
    assert load_student(folder).encoder_.max_seq_length == 96  # the body takes what the contract cuts to
    assert " [...] " in cut  # head-tail, not head


def test_a_384_token_encoder_is_not_cut_to_254(tmp_path):
    mpnet = pytest.importorskip("labelloop.models").resolve_model("all-mpnet-base-v2")
    assert default_max_length(mpnet) == 384


# ------------------------------------------------------------------ the call log's key


def test_embedded_cache_key_covers_every_setting_that_changes_the_answer():
    from labelloop.llm.embedded import EmbeddedBackend

    task = LabelTask("text", tuple(CLASSES), "rules", "desc")
    base = EmbeddedBackend(LLMSection(model="smollm2-135m"))
    keys = {CallLog.classify_key(b, task)[0] for b in (
        base,
        EmbeddedBackend(LLMSection(model="smollm2-135m", n_ctx=1024)),
        EmbeddedBackend(LLMSection(model="smollm2-135m", calibrate=False)),
        EmbeddedBackend(LLMSection(model="smollm2-135m"), max_doc_tokens=64),
    )}
    assert len(keys) == 4
    assert CallLog.classify_key(EmbeddedBackend(LLMSection(model="smollm2-135m")), task)[0] == \
        CallLog.classify_key(base, task)[0]


def test_rules_are_keyed_by_the_model_that_writes_them():
    from labelloop.llm.embedded import EmbeddedBackend

    messages = [{"role": "user", "content": "Write rules. Classes: a, b"}]
    one = EmbeddedBackend(LLMSection(model="smollm2-135m"))
    other_writer = EmbeddedBackend(LLMSection(model="smollm2-135m", rules_model="qwen2.5-coder-0.5b"))
    assert other_writer.generate_identity.startswith("embedded qwen2.5-coder-0.5b")
    assert CallLog.generate_key(one, messages, 64, 0.0)[0] != CallLog.generate_key(other_writer, messages, 64, 0.0)[0]


def test_api_keys_are_unchanged_by_embedded_only_parameters(fake_server):
    """An API backend's generate key has no params: old call logs still answer a resumed run."""
    from labelloop.llm.calls import call_key
    from labelloop.llm.openai_backend import OpenAIBackend

    fake = fake_server()
    backend = OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model), 1)
    messages = [{"role": "user", "content": "hi"}]
    key, inputs = CallLog.generate_key(backend, messages, 10, 0.0)
    assert "params" not in inputs
    assert key == call_key(backend.identity, {"kind": "generate", "messages": messages, "max_tokens": 10,
                                              "temperature": 0.0})


# ------------------------------------------------------------------ small ones


def test_usable_cpus_follow_the_affinity_mask():
    if not shutil.which("taskset"):
        pytest.skip("taskset is not installed")
    code = "from labelloop.files import usable_cpus; print(usable_cpus())"
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


def test_rules_yaml_is_written_atomically(tmp_path, monkeypatch):
    import yaml

    from labelloop.llm.rules import write_rules_yaml

    store = Store(tmp_path / "p.db")
    store.add_rules("1. business: markets.", author="human")
    path = write_rules_yaml(store, tmp_path / "rules.yaml")
    before = path.read_text()
    store.add_rules("1. business: markets and firms.", author="human")

    def broken(*args, **kwargs):
        args[1].write("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(yaml, "dump", broken)
    with pytest.raises(OSError):
        write_rules_yaml(store, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rules.yaml.")] == []
