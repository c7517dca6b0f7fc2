"""OpenAIBackend against the fake server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm.base import Example
from labelloop.llm.openai_backend import OpenAIBackend
from tests.helpers.llm import CLASSES, GOLD, backend, classify, classify_all, task

pytestmark = pytest.mark.unit











@pytest.mark.parametrize("answer_format", ["bare", "json", "reasoning"])
@pytest.mark.parametrize("structured", ["auto", "none"])
def test_right_answers_in_every_reply_format(fake_server, answer_format: str, structured: str) -> None:
    fake = fake_server(gold=GOLD, answer_format=answer_format)
    results = classify_all(backend(fake, structured_output=structured), GOLD)
    for result, gold in zip(results, GOLD.values(), strict=True):
        assert result.label == gold
        assert result.attempts == 1 and result.faults == {}
        assert 0.5 < result.confidence <= 1.0
    assert fake.by_status == {"200": len(GOLD)}


def test_teacher_accuracy_is_deterministic_per_text_and_seed(fake_server) -> None:
    texts = {f"document number {i} about sport and other things": "sport" for i in range(40)}
    runs = []
    for _ in range(2):
        fake = fake_server(gold=texts, accuracy=0.5, seed=7)
        runs.append([r.label for r in classify_all(backend(fake), texts)])
    assert runs[0] == runs[1]
    right = sum(label == "sport" for label in runs[0])
    assert 8 <= right <= 32  # about half, but not all and not none


def test_faults_are_retried_and_counted(fake_server) -> None:
    fake = fake_server(gold=GOLD)
    fake.queue_faults("http_500", "malformed", "truncated")
    text = next(iter(GOLD))
    result = classify(backend(fake), text)
    assert result.label == GOLD[text]
    assert result.attempts == 4
    assert result.faults == {"http_500": 1, "malformed": 1, "connection": 1}
    assert fake.by_status == {"500": 1, "malformed": 1, "truncated": 1, "200": 1}


def test_429_retry_after_is_honoured(fake_server) -> None:
    fake = fake_server(gold=GOLD, retry_after_s=1.0)
    fake.queue_faults("http_429")
    start = time.perf_counter()
    result = classify(backend(fake), next(iter(GOLD)))
    waited = time.perf_counter() - start
    assert result.faults == {"http_429": 1} and result.attempts == 2
    assert 0.95 <= waited < 3.0  # backoff alone would be ~0.01 s


def test_hang_past_timeout_is_retried(fake_server) -> None:
    fake = fake_server(gold=GOLD, hang_s=1.5)
    fake.queue_faults("hang")
    start = time.perf_counter()
    result = classify(backend(fake, timeout_s=0.4), next(iter(GOLD)))
    assert result.label == GOLD[next(iter(GOLD))]
    assert result.faults == {"timeout": 1}
    assert time.perf_counter() - start < 1.4  # gave up on the hung request at the timeout


def test_retry_limit_exhausted_names_server_and_model(fake_server) -> None:
    fake = fake_server(gold=GOLD)
    fake.queue_faults("http_500", "http_500", "http_500", "http_500")
    with pytest.raises(LLMError) as info:
        classify(backend(fake, max_retries=2), next(iter(GOLD)))
    message = str(info.value)
    assert fake.base_url in message and "fake-model" in message
    assert "http_500 x3" in message
    assert fake.by_status["500"] == 3
    assert info.value.faults == {"http_500": 3} and info.value.attempts == 3


def test_unreachable_port_gives_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = LLMSection(mode="api", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1)
    with pytest.raises(LLMError) as info:
        asyncio.run(OpenAIBackend(settings, 2, backoff_s=0.01).classify(task("x")))
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/v1" in message and "model m" in message
    assert "running" in message and "base_url" in message


def test_unknown_model_lists_served_models(fake_server) -> None:
    fake = fake_server(gold=GOLD, models=["llama-3-8b", "qwen-2"])
    settings = LLMSection(mode="api", base_url=fake.base_url, model="gpt-nonexistent")
    with pytest.raises(LLMError) as info:
        asyncio.run(OpenAIBackend(settings, 2).classify(task("x")))
    message = str(info.value)
    assert "'gpt-nonexistent'" in message and "llama-3-8b, qwen-2" in message
    assert fake.by_status == {"404": 1}


def test_concurrency_cap_is_respected(fake_server) -> None:
    fake = fake_server(gold=GOLD, latency_s=0.05)
    texts = [f"{t} ({i})" for i in range(5) for t in GOLD]
    results = classify_all(backend(fake, concurrency=3), texts)
    assert len(results) == 20 and all(r.label for r in results)
    assert fake.max_in_flight == 3  # used the limit, never more


def test_structured_output_request_carries_class_enum(fake_server) -> None:
    fake = fake_server(gold=GOLD)
    classify(backend(fake, structured_output="json_schema"), next(iter(GOLD)))
    schema = fake.requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == list(CLASSES)
    assert schema["required"] == ["label"]


def test_auto_structured_output_falls_back_once(fake_server) -> None:
    fake = fake_server(gold=GOLD, supports_json_schema=False, answer_format="reasoning")
    b = backend(fake)
    labels = [classify(b, t).label for t in GOLD]
    assert labels == list(GOLD.values())
    assert fake.by_status == {"400": 1, "200": len(GOLD)}  # rejected once, then never asked again
    assert fake.requests[-1]["response_format"]["type"] == "json_object"  # the next shape: json_object + schema
    assert fake.requests[-1]["response_format"]["schema"]["properties"]["label"]["enum"] == list(CLASSES)


def test_logprobs_become_class_probabilities(fake_server) -> None:
    fake = fake_server(gold=GOLD, accuracy=0.5, seed=3)
    b = backend(fake)
    for text in GOLD:
        result = classify(b, text)
        assert fake.requests[-1]["logprobs"] is True and fake.requests[-1]["top_logprobs"] >= len(CLASSES)
        assert set(result.probs) == set(CLASSES)
        assert sum(result.probs.values()) == pytest.approx(1.0)
        expected = fake.teacher.probs(result.label, result.label == GOLD[text], list(CLASSES),
                                      " ".join(text.lower().split()))
        assert result.confidence == pytest.approx(expected[result.label], rel=1e-6)
        assert max(result.probs, key=result.probs.get) == result.label


def test_no_logprobs_means_no_confidence_unless_sampled(fake_server) -> None:
    fake = fake_server(gold=GOLD, supports_logprobs=False, accuracy=0.6)
    text = next(iter(GOLD))
    assert classify(backend(fake), text).confidence is None
    fake.reset_counts()
    result = classify(backend(fake, samples=5), text)
    assert fake.total == 5
    assert result.confidence in {0.2, 0.4, 0.6, 0.8, 1.0}
    assert sum(result.probs.values()) == pytest.approx(1.0)
    assert all(r["temperature"] >= 0.7 for r in fake.requests[1:])


def test_unparseable_reply_is_corrected_then_given_up(fake_server) -> None:
    fake = fake_server(gold=GOLD)
    text = next(iter(GOLD))
    fake.queue_faults("unparseable")
    fixed = classify(backend(fake, structured_output="none"), text)
    assert fixed.label == GOLD[text] and fixed.attempts == 2
    correction = fake.requests[-1]["messages"][-2:]
    assert correction[0]["role"] == "assistant" and "rather not say" in correction[0]["content"]
    assert "could not be read" in correction[1]["content"] and "politics" in correction[1]["content"]

    fake.queue_faults("unparseable", "unparseable", "unparseable")
    failed = classify(backend(fake, structured_output="none"), text)
    assert failed.label is None and failed.confidence is None
    assert "rather not say" in failed.raw and "no class in 3 replies" in failed.reason


def test_api_key_from_environment(fake_server, monkeypatch) -> None:
    fake = fake_server(gold=GOLD, api_key="sekrit")
    with pytest.raises(LLMError, match="LABELLOOP_TEST_KEY"):
        backend(fake, api_key_env="LABELLOOP_TEST_KEY")
    monkeypatch.setenv("LABELLOOP_TEST_KEY", "sekrit")
    assert classify(backend(fake, api_key_env="LABELLOOP_TEST_KEY"), next(iter(GOLD))).label
    with pytest.raises(LLMError, match="refused the API key"):
        classify(backend(fake, api_key="wrong"), next(iter(GOLD)))


def test_completion_mode_and_generate(fake_server) -> None:
    fake = fake_server(gold=GOLD)
    settings = LLMSection(mode="api", base_url=fake.base_url, model=fake.model)
    b = OpenAIBackend(settings, 2, completion_mode=True)
    assert b.identity == f"api {fake.base_url} model=fake-model completion"
    text = next(iter(GOLD))
    result = asyncio.run(b.classify(task(text, (Example("Goal!", "sport"),))))
    assert result.label == GOLD[text] and result.confidence > 0.5
    assert fake.requests[-1]["prompt"].endswith("Final label:") and fake.requests[-1]["stop"] == ["\n"]
    gen = asyncio.run(b.generate([{"role": "user", "content": "Write rules for the classes."}],
                                 max_tokens=50, temperature=0.0))
    assert all(f"`{c}`" in gen.text for c in CLASSES)  # the fake's classes: those its gold labels name


def test_a_bug_in_labelloop_is_raised_as_itself_not_counted_as_a_malformed_reply(fake_server, monkeypatch) -> None:
    """Only the server's faults are retried: an error of labelloop's own code on a good answer surfaces at once."""
    from labelloop.llm.timeouts import AdaptiveTimeout

    fake = fake_server(gold=GOLD)

    def broken(self, kind, seconds):
        raise ValueError("a labelloop bug")

    monkeypatch.setattr(AdaptiveTimeout, "answered", broken)
    with pytest.raises(ValueError, match="a labelloop bug"):
        classify(backend(fake), next(iter(GOLD)))
    assert fake.by_status == {"200": 1}  # asked once, not retried as a fault of the server


def test_a_type_error_while_reading_an_answer_is_a_bug_not_a_server_fault(fake_server, monkeypatch) -> None:
    from labelloop.llm import openai_backend

    fake = fake_server(gold=GOLD)

    def broken(*args, **kwargs):
        raise TypeError("a labelloop bug in reading logprobs")

    monkeypatch.setattr(openai_backend, "logprob_probs", broken)
    with pytest.raises(TypeError, match="a labelloop bug"):
        classify(backend(fake), next(iter(GOLD)))
    assert fake.by_status == {"200": 1}

