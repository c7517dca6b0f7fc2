"""Request shapes and timeouts that fit the server, against the fake server speaking HTTP on 127.0.0.1.

The fake refuses what llama-cpp-python's server refuses, the way it refuses it (HTTP 500 naming
the field), and can hold a single slot; the real server is in tests/test_llama_server.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.llm.shapes import shape_problem
from labelloop.store import Store

from tests.helpers.llm import CLASSES, GOLD, classify, classify_all, task

pytestmark = pytest.mark.unit


def make(fake, concurrency: int = 4, probe: float | None = None, **settings) -> OpenAIBackend:
    settings.setdefault("max_retries", 3)
    return OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model, **settings), concurrency,
                         backoff_s=0.01, probe_timeout_s=probe)


@pytest.mark.parametrize(("status", "message", "expected"), [
    (500, "1 validation error ... response_format.type Input should be 'text' or 'json_object'", "format"),
    (500, "logprobs is not supported for models created with logits_all=False", "logprobs"),
    (400, "Unrecognized request argument supplied: guided_json", "format"),
    (422, "unprocessable", "format"),
    (500, "CUDA out of memory", None),  # a fault: retried
    (503, "overloaded", None),
    (400, "This model's maximum context length is 2048 tokens", None),  # the chunk's problem, not the shape's
    (404, "The model `x` does not exist", None),
    (429, "rate limited", None),
])
def test_which_errors_are_shape_problems(status, message, expected):
    assert shape_problem(status, message) == expected


def test_llama_cpp_python_refusal_steps_down_at_once_and_is_never_retried(fake_server):
    fake = fake_server(gold=GOLD, supports_json_schema=False, refusal="llama-cpp-python")
    b = make(fake)
    results = classify_all(b, list(GOLD))
    assert [r.label for r in results] == list(GOLD.values())
    assert fake.by_status == {"500": 1, "200": len(GOLD)}  # the 500 that names response_format: no retry
    assert all(r["response_format"] == {"type": "json_object", "schema": fake.requests[-1]["response_format"]["schema"]}
               for r in fake.requests[1:])
    assert b.negotiation.shape == "json_object+schema" and b.negotiation.logprobs
    notes = b.take_notes()
    assert len(notes) == 1 and "JSON object with a schema" in notes[0] and "json_schema was refused (HTTP 500" in notes[0]
    assert b.take_notes() == []  # said once
    assert all(r.probs and r.confidence > 0.5 for r in results)  # logprobs still come back


def test_refused_logprobs_are_dropped_and_confidence_is_null(fake_server):
    fake = fake_server(gold=GOLD, supports_json_schema=False, supports_logprobs=False, refusal="llama-cpp-python")
    b = make(fake)
    results = classify_all(b, list(GOLD))
    assert [r.label for r in results] == list(GOLD.values())
    assert fake.by_status["500"] == 2 and not b.negotiation.logprobs
    assert all(r.confidence is None for r in results)  # never a number the model typed
    assert "logprobs" not in fake.requests[-1]


def test_plain_text_when_no_json_shape_is_taken(fake_server):
    fake = fake_server(gold=GOLD, answer_format="reasoning")
    b = make(fake, structured_output="none")
    assert classify(b, next(iter(GOLD))).label == next(iter(GOLD.values()))
    assert "response_format" not in fake.requests[-1] and b.negotiation.shape == "text"


def test_the_shape_is_remembered_in_the_project_file(tmp_path, fake_server):
    """A resumed run asks in the shape that worked; the label's cache key names that shape."""
    from labelloop.config import parse_config
    from labelloop.loop.labeling import Teachers

    fake = fake_server(gold=GOLD, supports_json_schema=False, refusal="llama-cpp-python", classes=CLASSES)
    (tmp_path / "in").mkdir()
    llm = {"mode": "api", "base_url": fake.base_url, "model": fake.model}
    config = parse_config({"classification": {"classes": list(CLASSES), "desc": "news"},
                           "path": {"input_dir": "in", "output_dir": "out"}, "small_model": llm, "large_model": llm},
                          base_dir=tmp_path)
    store = Store(config.db_path)
    said: list[str] = []
    first = Teachers(config, store=store, say=said.append)
    first.run("small", lambda backend: backend.classify(task(next(iter(GOLD)))))
    key = first.backend("small").shape_key
    assert store.get_meta(key)["shape"] == "json_object+schema"
    assert any("JSON object with a schema" in line for line in said)
    fake.reset_counts()
    again = Teachers(config, store=store)
    again.run("small", lambda backend: backend.classify(task(list(GOLD)[1])))
    assert fake.by_status == {"200": 1}  # no new negotiation
    assert again.backend("small").cache_params["shape"] == "json_object+schema"


def test_a_slow_single_slot_server_is_probed_not_abandoned(fake_server):
    """timeout_s is shorter than one answer; the probe finds out, and no request is abandoned or sent twice."""
    fake = fake_server(gold=GOLD, capacity=1, latency_s=0.6)
    b = make(fake, concurrency=1, probe=30.0, timeout_s=0.3)
    results = classify_all(b, list(GOLD)[:3])
    assert all(r.label for r in results) and all(not r.faults for r in results)
    assert fake.total == 3 and fake.max_in_flight == 1
    assert "waiting up to" in " ".join(b.take_notes())


def test_a_timeout_backs_off_instead_of_stacking_retries(fake_server):
    """Without the probe, a timed-out request still holds the one slot: fewer in flight, a longer wait, no pile-up."""
    fake = fake_server(gold=GOLD, capacity=1, latency_s=0.5)
    b = make(fake, concurrency=2, timeout_s=0.3, max_retries=4)
    start = time.perf_counter()
    results = classify_all(b, list(GOLD)[:2])
    assert all(r.label for r in results)
    assert b.limiter.stats.decreases >= 1 and b.limiter.limit == 1  # timeouts fed the in-flight limit
    assert fake.max_in_flight <= 3  # never the 2 x 5 attempts stacked at once
    assert time.perf_counter() - start < 20


def test_a_context_window_too_small_stops_with_the_fix(fake_server):
    fake = fake_server(gold=GOLD)
    fake.queue_faults(*["too_long"] * 6)
    b = make(fake, concurrency=1)

    async def label_all():
        out = []
        for text in list(GOLD) * 2:
            try:
                out.append(await b.classify(task(text)))
            except LLMError as exc:
                out.append(exc)
        return out

    outcomes = asyncio.run(label_all())
    stop = next(o for o in outcomes if type(o) is LLMError)
    assert "context window" in str(stop) and fake.model in str(stop) and fake.base_url in str(stop)
    assert "n_ctx" in str(stop) and "chunk_size" in str(stop)
