"""Labeling real BBC articles through the fake server: storage, the call-log cache, resume, failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm.base import Example
from labelloop.llm.calls import CallLog
from labelloop.llm.fewshot import FewShotPicker
from labelloop.llm.labeler import label_chunks, label_chunks_sync
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.llm.prompts import TRUNCATION_MARK, find_fenced
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit

CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


@pytest.fixture
def project(tmp_path, bbc_news):
    """A store holding 4 real articles per topic, rules v1, and the gold labels."""
    gold = bbc_news(4)
    store = Store(tmp_path / "labelloop.db")
    store.add_document("bbc", "0" * 64, None, [NewChunk(t, "bbc", i) for i, t in enumerate(gold)])
    rules = store.add_rules("1. Label by the article's main topic.\n2. Default: business.", author="test")
    return store, rules, gold


def make_backend(fake, concurrency: int = 4, **settings) -> OpenAIBackend:
    settings.setdefault("max_retries", 2)
    return OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model, **settings),
                         concurrency, backoff_s=0.01)


def run(store, backend, chunks, rules, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("concurrency_limit", 4)
    return label_chunks_sync(store, backend, chunks, source="llm-small", classes=CLASSES, rules=rules,
                             description="BBC news topics", **kwargs)


def test_labels_are_stored_with_confidence_and_provenance(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    chunks = store.chunks()
    summary = run(store, make_backend(fake), chunks, rules, iteration=1)
    assert summary.labeled == len(chunks) == 20 and summary.unlabeled == 0 and summary.requested == 20
    assert summary.by_class == {c: 4 for c in CLASSES}
    labels = store.labels_by_chunk("llm-small")
    calls = {c.id: c for c in store.calls()}
    for chunk in chunks:
        lab = labels[chunk.id]
        assert lab.label == gold[chunk.text] and lab.status == "ok"
        assert 0.5 < lab.confidence <= 1 and lab.probs[lab.label] == lab.confidence
        assert lab.rules_version == rules.version and lab.iteration == 1
        call = calls[lab.call_id]
        assert call.purpose == "label:llm-small" and call.status == "ok" and call.model == "fake-model"
        assert call.latency_s > 0 and call.prompt_tokens > 0
        assert find_fenced(call.request["sent"]["messages"][-1]["content"]) == [chunk.text]


def test_second_identical_run_makes_zero_requests(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    backend = make_backend(fake)
    first = run(store, backend, store.chunks(), rules)
    assert fake.total == 20
    second = run(store, backend, store.chunks(), rules)
    assert fake.total == 20  # nothing sent the second time
    assert second.cached == 20 and second.requested == 0 and second.by_class == first.by_class
    assert store.call_stats()["cache_hits"] == 20 and store.call_stats()["calls"] == 20
    assert fake.repeated_successes() == {}


def test_killed_run_resumes_without_paying_twice(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold, latency_s=0.05)
    backend = make_backend(fake, concurrency=2)

    async def killed():
        await asyncio.wait_for(label_chunks(store, backend, store.chunks(), source="llm-small", classes=CLASSES,
                                            rules=rules, description="BBC news topics", concurrency_limit=2,
                                            progress=False),
                               timeout=0.3)

    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        asyncio.run(killed())
    done = [c for c in store.calls() if c.status == "ok"]
    assert 0 < len(done) < 20
    # Labels are written as answers arrive; a call logged just as the kill came may lack its label
    # (the log answers it on resume).
    assert len(done) - 2 <= len(store.labels("llm-small")) <= len(done)
    summary = run(store, backend, store.chunks(), rules)
    assert summary.cached == len(done) and summary.requested == 20 - len(done)
    # Only the calls in flight at the kill (at most the concurrency limit) were paid twice.
    assert sum(n - 1 for n in fake.repeated_successes().values()) <= 2
    assert {lab.label for lab in store.labels("llm-small")} == set(CLASSES)


def test_unparseable_chunk_is_kept_as_unlabeled(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    fake.queue_faults("unparseable", "unparseable", "unparseable")
    backend = make_backend(fake, concurrency=1, structured_output="none")
    chunks = store.chunks()
    summary = label_chunks_sync(store, backend, chunks, source="llm-large", classes=CLASSES, rules=rules,
                                description="d", concurrency_limit=1, progress=False)
    assert summary.unlabeled == 1 and summary.labeled == 19
    lab = store.labels("llm-large", chunk_ids=[chunks[0].id])[0]
    assert lab.status == "unlabeled" and lab.label is None
    assert "rather not say" in lab.raw and "no class in 3 replies" in lab.reason
    assert chunks[0].id not in store.final_labels()
    assert store.counts()["unlabeled"] == 1


def test_exhausted_retries_stop_the_run_and_are_logged(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    fake.queue_faults(*["http_500"] * 3)
    with pytest.raises(LLMError, match="http_500 x3"):
        run(store, make_backend(fake, concurrency=1, max_retries=2), store.chunks(), rules, concurrency_limit=1)
    errors = [c for c in store.calls() if c.status == "error"]
    assert len(errors) == 1 and errors[0].faults == {"http_500": 3} and errors[0].attempts == 3
    assert fake.base_url in errors[0].error


def test_call_log_records_cost_and_faults(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    fake.queue_faults("http_500", "malformed")
    backend = make_backend(fake, concurrency=1, price_per_1k_input=1.0, price_per_1k_output=2.0)
    run(store, backend, store.chunks()[:3], rules, concurrency_limit=1)
    stats = store.call_stats()
    assert stats["faults"] == {"http_500": 1, "malformed": 1} and stats["attempts"] == 5
    expected = sum(c.prompt_tokens / 1000 + 2 * c.completion_tokens / 1000 for c in store.calls())
    assert stats["cost"] == pytest.approx(expected) and stats["cost"] > 0


def test_long_chunks_are_truncated_for_the_llm(tmp_path, fake_server) -> None:
    store = Store(tmp_path / "p.db")
    long_text = "The minister answered questions about the budget. " * 400
    store.add_document("long", "1" * 64, None, [NewChunk(long_text, "long", 0)])
    fake = fake_server(gold={long_text: "politics"})
    summary = run(store, make_backend(fake), store.chunks(), None, max_chars=1000)
    assert summary.by_class == {"politics": 1}  # the fake finds it by prefix
    sent = find_fenced(fake.requests[-1]["messages"][-1]["content"])[0]
    assert sent.endswith(TRUNCATION_MARK) and len(sent) <= 1000 + len(TRUNCATION_MARK)


def test_few_shot_examples_become_prior_turns(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    texts = list(gold)
    examples = [Example(texts[0], gold[texts[0]]), Example(texts[4], gold[texts[4]])]

    def embed(batch: list[str]) -> np.ndarray:
        return np.array([[t.lower().count(w) for w in ("film", "match", "bank", "vote", "phone")] for t in batch],
                        dtype=float) + 0.01

    picker = FewShotPicker(examples, embed, per_class=1)
    log = CallLog(store)
    run(store, make_backend(fake), store.chunks()[:6], rules, few_shot=picker, call_log=log, progress=True)
    by_text = {find_fenced(r["messages"][-1]["content"])[0]: r["messages"] for r in fake.requests}
    assert [m["role"] for m in by_text[texts[5]]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert len(by_text[texts[0]]) == 4  # an example is never shown with itself
    assert log.misses == 6 and log.hits == 0


def test_chunk_the_server_refuses_is_unlabeled_with_reason(project, fake_server) -> None:
    store, rules, gold = project
    fake = fake_server(gold=gold)
    fake.queue_faults("too_long")
    summary = run(store, make_backend(fake, concurrency=1), store.chunks(), rules, concurrency_limit=1)
    assert summary.unlabeled == 1 and summary.labeled == 19
    lab = store.labels("llm-small", chunk_ids=[store.chunks()[0].id])[0]
    assert lab.status == "unlabeled" and "maximum context length" in lab.reason and "chunk_size" in lab.reason
    assert [c.status for c in store.calls()].count("error") == 1
    assert fake.by_status == {"400": 1, "200": 19}  # refused once and not retried
    assert "response_format" in fake.requests[-1]  # not mistaken for json_schema trouble
