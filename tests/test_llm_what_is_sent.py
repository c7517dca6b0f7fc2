"""What the API labeler sends and what it reports: the char cut from the settings, on the text and on
every few-shot example; a multi-label decision made once, so the call log, the stored label and
the meta dataset hold the same set. Through the fake server over real HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.config import LLMSection, parse_config
from labelloop.labels import decode_set
from labelloop.llm.base import Example
from labelloop.llm.fewshot import FewShotPicker
from labelloop.llm.labeler import label_chunks_sync
from labelloop.llm.meta_datagen import write_meta_dataset
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.llm.prompts import TRUNCATION_MARK, find_fenced
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit

CLASSES = ["business", "politics", "sport", "tech"]
SETS = {
    "Shares in chip makers rose after record profits from new laptops.": ["business", "tech"],
    "MPs voted on the sports budget after a long debate in parliament.": ["politics", "sport"],
    "A quiet afternoon; the cat slept in the sun by the window.": [],
    "The striker scored twice as United beat City in the derby.": ["sport"],
}


def api(fake, **settings) -> OpenAIBackend:
    return OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model, max_retries=2,
                                    **settings), 4, backoff_s=0.01)


def embed(batch: list[str]) -> np.ndarray:
    return np.array([[t.lower().count(w) for w in ("minister", "match", "bank", "phone")] for t in batch],
                    dtype=float) + 0.01


def test_doc_chars_cuts_the_text_and_every_few_shot_example(tmp_path, fake_server) -> None:
    store = Store(tmp_path / "p.db")
    long_text = "The minister answered questions about the budget. " * 60
    store.add_document("long", "1" * 64, None, [NewChunk(long_text, "long", 0)])
    examples = [Example("The minister spoke in parliament about the vote. " * 40, "politics"),
                Example("The striker scored in the final match of the season. " * 40, "sport")]
    fake = fake_server(gold={long_text: "politics"})
    summary = label_chunks_sync(store, api(fake, doc_chars=300), store.chunks(), source="llm-small", classes=CLASSES,
                                rules=None, description="News topics.", progress=False,
                                few_shot=FewShotPicker(examples, embed, per_class=1))
    assert summary.labeled == 1
    messages = fake.requests[-1]["messages"]
    fenced = [find_fenced(m["content"])[0] for m in messages if m["role"] == "user"]
    assert len(fenced) == 3  # two examples, then the chunk
    for text in fenced:
        assert text.endswith(TRUNCATION_MARK) and len(text) <= 300 + len(TRUNCATION_MARK)


def test_the_default_cut_comes_from_the_settings() -> None:
    assert LLMSection().doc_chars == 6000
    with pytest.raises(ValueError):
        LLMSection(doc_chars=0)


def test_thresholds_decide_once_and_the_log_the_store_and_the_meta_dataset_agree(tmp_path, fake_server) -> None:
    (tmp_path / "input").mkdir()
    cfg = parse_config({"classification": {"classes": CLASSES, "desc": "News topics", "multi_label": True},
                        "path": {"input_dir": "input", "output_dir": "out"},
                        "meta_datagen": {"do_meta_datagen": True, "meta_datagen_keys": ["label_details"]}},
                       base_dir=tmp_path)
    store = Store(cfg.db_path)
    store.add_document("news", "2" * 64, None, [NewChunk(t, "news", i) for i, t in enumerate(SETS)])
    fake = fake_server(gold=SETS)
    # Thresholds above every probability the teacher gives (at most 0.99): each set the model wrote is emptied.
    thresholds = {c: 0.995 for c in CLASSES}
    label_chunks_sync(store, api(fake), store.chunks(), source="llm-small", classes=CLASSES, rules=None,
                      description="News topics", progress=False, multi_label=True, thresholds=thresholds)
    calls = {c.id: c for c in store.calls()}
    labels = store.labels_by_chunk("llm-small")
    changed = 0
    for chunk in store.chunks():
        lab = labels[chunk.id]
        logged = calls[lab.call_id].response
        expected = [c for c in CLASSES if lab.probs[c] >= 0.995]
        assert decode_set(lab.label) == expected and logged["label"] == lab.label
        changed += expected != SETS[chunk.text]
    assert changed  # the thresholds did change some sets, so the agreement above is not the model's own
    path = tmp_path / "meta.jsonl"
    assert write_meta_dataset(store, cfg, path) == len(SETS)
    for record in map(json.loads, path.read_text().splitlines()):
        lab = labels[record["label"]["chunk_id"]]
        assert record["label"]["label"] == lab.label and record["label"]["confidence"] == lab.confidence


def test_thresholds_are_part_of_the_cache_key(fake_server, tmp_path) -> None:
    from labelloop.llm.calls import CallLog
    from labelloop.llm.labeler import build_task

    b = api(fake_server(gold=SETS))
    text = next(iter(SETS))
    plain = build_task(text, classes=CLASSES, rules=None, description="d", few_shot=None, max_chars=6000,
                       multi_label=True)
    cut = build_task(text, classes=CLASSES, rules=None, description="d", few_shot=None, max_chars=6000,
                     multi_label=True, thresholds={c: 0.3 for c in CLASSES})
    assert cut.thresholds == (0.3,) * 4 and plain.thresholds is None
    assert CallLog.classify_key(b, plain)[0] != CallLog.classify_key(b, cut)[0]
