"""`labelloop plan` numbers, the factory, and the meta dataset written from the call log."""

from __future__ import annotations

import asyncio
import json

import pytest

from labelloop.config import parse_config, resolve_llm
from labelloop.errors import LabelloopError
from labelloop.llm.factory import make_backend
from labelloop.llm.labeler import label_chunks_sync
from labelloop.llm.meta_datagen import write_meta_dataset
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.loop.plan import estimate
from labelloop.llm.rules import create_rules
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit

CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


def config(tmp_path, **sections):
    (tmp_path / "input").mkdir(exist_ok=True)
    raw = {
        "classification": {"classes": CLASSES, "desc": "BBC news topics"},
        "path": {"input_dir": "input", "output_dir": "out"},
        "training": {"test_set_size": 100, "train_set_size": 200, "train_set_increment": 100, "max_iters": 5},
    }
    raw.update(sections)
    return parse_config(raw, base_dir=tmp_path)


def test_plan_counts_calls_per_role_capped_by_chunks(tmp_path) -> None:
    cfg = config(tmp_path)
    big = estimate(cfg, 10_000, avg_chars=1200)
    rows = {r.role: r for r in big.rows}
    assert rows["test labels"].calls == 100 and (rows["rules"].calls, rows["rules"].max_calls) == (1, 2)
    assert rows["train labels"].calls == rows["train labels"].max_calls == 200 + 4 * 100  # embedded: no retries
    assert big.calls == 701 and big.max_calls == 702 and big.cost is None
    per_call = rows["test labels"].prompt_tokens / 100
    assert 1200 / 4 < per_call < 1200 / 4 + 1500  # the document plus the real prompt around it
    small = {r.role: r for r in estimate(cfg, 250, avg_chars=1200).rows}
    assert small["test labels"].calls == 100 and small["train labels"].calls == 150
    # As the run does: the test set takes at most half of the chunks (labelloop.loop.sizes).
    tiny = {r.role: r for r in estimate(cfg, 60).rows}
    assert tiny["test labels"].calls == 30 and tiny["train labels"].calls == 30
    text = big.render()
    assert "10,000 chunks" in text and "702" in text and "train_set_increment" in text


def test_plan_cost_uses_prices_and_samples(tmp_path) -> None:
    llm = {"mode": "api", "base_url": "http://127.0.0.1:1/v1", "model": "m",
           "price_per_1k_input": 0.5, "price_per_1k_output": 1.5, "samples": 3}
    cfg = config(tmp_path, small_model=llm, large_model={**llm, "samples": 1})
    plan = estimate(cfg, 1000, avg_chars=800)
    rows = {r.role: r for r in plan.rows}
    assert rows["train labels"].calls == 600 and rows["train labels"].max_calls == 600 * 3 * 3  # retries x samples
    for r in plan.rows:
        assert r.cost == pytest.approx(r.prompt_tokens / 1000 * 0.5 + r.completion_tokens / 1000 * 1.5)
    assert plan.cost == pytest.approx(sum(r.cost for r in plan.rows)) and "$" in plan.render()


def test_factory_builds_the_configured_backend(tmp_path) -> None:
    cfg = config(tmp_path, api={"small_base_url": "http://127.0.0.1:9/v1", "small_model": "m"},
                 system={"concurrency_limit": 3, "completion_mode": True})
    backend = make_backend(resolve_llm(cfg, "small"), cfg.system)
    assert isinstance(backend, OpenAIBackend)
    assert backend.identity == "api http://127.0.0.1:9/v1 model=m completion" and backend.concurrency_limit == 3


def test_meta_dataset_has_one_chat_record_per_call(tmp_path, fake_server, bbc_news) -> None:
    gold = bbc_news(2)
    template = tmp_path / "summary.j2"
    template.write_text("{{ key }}:{{ label.label if label else 'rules' }}:{{ messages | length }}")
    cfg = config(tmp_path, meta_datagen={
        "do_meta_datagen": True, "meta_datagen_keys": ["label_details", "rules_creation_details"],
        "meta_datagen_extras": [str(template), "model={{ call.model }} classes={{ config.classification.classes | length }}"]})
    store = Store(cfg.db_path)
    store.add_document("bbc", "0" * 64, None, [NewChunk(t, "bbc", i) for i, t in enumerate(gold)])
    fake = fake_server(gold=gold)
    backend = OpenAIBackend(resolve_llm(config(tmp_path, large_model={
        "mode": "api", "base_url": fake.base_url, "model": fake.model}), "large"), 4)
    rules = asyncio.run(create_rules(store, backend, description="d", classes=CLASSES, samples=list(gold)[:2]))
    label_chunks_sync(store, backend, store.chunks(), source="llm-large", classes=CLASSES, rules=rules,
                      description="d", progress=False)
    path = cfg.output_dir / "meta_datagen" / "meta_dataset.jsonl"
    assert write_meta_dataset(store, cfg, path) == 11
    records = [json.loads(line) for line in path.read_text().splitlines()]
    rules_rec, label_recs = records[0], records[1:]
    assert rules_rec["key"] == "rules_creation_details" and rules_rec["messages"][-1]["content"] == rules.text
    assert rules_rec["extras"] == {"summary": "rules_creation_details:rules:3", "extra_1": "model=fake-model classes=5"}
    for rec in label_recs:
        assert rec["messages"][0]["role"] == "system" and rec["messages"][-1]["role"] == "assistant"
        assert rec["label"]["label"] == gold[rec["label"]["chunk"]] == rec["messages"][-1]["content"].split('"')[3]
        assert rec["label"]["source"] == "llm-large" and rec["label"]["confidence"] > 0.5
        assert rec["extras"]["summary"] == f"label_details:{rec['label']['label']}:3"
    only_rules = config(tmp_path, meta_datagen={"do_meta_datagen": True, "meta_datagen_keys": ["rules_creation_details"]})
    assert write_meta_dataset(store, only_rules, tmp_path / "r.jsonl") == 1
    assert write_meta_dataset(store, config(tmp_path), tmp_path / "off.jsonl") == 0
    assert not (tmp_path / "off.jsonl").exists()
    bad = config(tmp_path, meta_datagen={"do_meta_datagen": True, "meta_datagen_keys": ["nope"]})
    with pytest.raises(LabelloopError, match="label_details"):
        write_meta_dataset(store, bad, tmp_path / "bad.jsonl")
