"""Multi-label requests through the OpenAI-compatible backend, against the fake server over real HTTP.

One call per chunk; the label-set schema where the server takes it, the text formats where it
does not; per-label probabilities from logprobs or sample agreement, never from the model's words.
The real llama.cpp server (tests/test_llama_server.py) is not needed here: the fake refuses what
llama-cpp-python's server refuses, the way it refuses it.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from labelloop.config import LLMSection
from labelloop.errors import LabelloopError
from labelloop.labels import decode_set
from labelloop.llm import label_sets
from labelloop.llm.base import Example, LabelTask
from labelloop.llm.calls import CallLog
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.llm.prompts import (
    PromptSet,
    answer_text,
    build_label_messages,
    build_rules_messages,
    correction_message,
    find_classes,
    find_fenced,
)
from labelloop.llm.rules import missing_classes
from labelloop.llm.shapes import label_schema, label_set_schema
from labelloop.store import Store
from tests.helpers.llm import CLASSES, backend

pytestmark = pytest.mark.unit

SETS = {
    "Shares in chip makers rose after record profits from new laptops.": ["business", "tech"],
    "MPs voted on the sports budget after a long debate in parliament.": ["politics", "sport"],
    "A quiet afternoon; the cat slept in the sun by the window.": [],
    "The striker scored twice as United beat City in the derby.": ["sport"],
}
AUGMENTOOLKIT_PROMPTS = Path(__file__).parent / "fixtures" / "augmentoolkit" / "prompts_classifier"
RULES = "1. business: money and firms.\n2. tech: gadgets and software."


def multi_task(text: str, examples: tuple[Example, ...] = ()) -> LabelTask:
    return LabelTask(text, CLASSES, RULES, "News topics; an article may have several.", examples, multi_label=True)


def single_task(text: str) -> LabelTask:
    return LabelTask(text, CLASSES, RULES, "News topics; an article may have several.")


def classify_many(b, tasks):
    async def run():
        return await asyncio.gather(*(b.classify(t) for t in tasks))

    return asyncio.run(run())


def labels_of(result) -> list[str]:
    return decode_set(result.label)


# ------------------------------------------------------------------ prompts


def test_multi_label_prompts_list_classes_say_several_or_none_and_answer_few_shot_in_kind():
    shots = (Example("Chip firm profits.", '["business", "tech"]'), Example("A cat slept.", "[]"))
    for fmt, answers in (("json", ['{"labels": ["business", "tech"]}', '{"labels": []}']),
                         ("text", ["Labels: business, tech", "Labels: none"])):
        messages = build_label_messages(multi_task("Shares rose.", shots), fmt)
        system = messages[0]["content"]
        assert find_classes(system) == list(CLASSES)
        assert "several classes" in system and "none of them" in system and RULES in system
        assert ('{"labels": ' in system) if fmt == "json" else ("`Labels: none`" in system)
        assert [m["content"] for m in messages if m["role"] == "assistant"] == answers
        assert find_fenced(messages[-1]["content"]) == ["Shares rose."]
        assert "Final label" not in "\n".join(m["content"] for m in messages)


def test_single_label_prompts_are_untouched_by_the_multi_label_templates():
    task = single_task("Shares rose.")
    system = build_label_messages(task, "json")[0]["content"]
    assert 'Answer with a JSON object {"label": "<class>"}' in system and "labels" not in system
    assert answer_text("sport", "text") == "Final label: sport"
    assert correction_message("e", CLASSES, "json")["content"].startswith("Your answer could not be read: e\n"
                                                                           'Reply with only {"label": "<class>"}')
    # The prompt fingerprint (part of every cache key) of a single-label task is what it was before.
    assert PromptSet().fingerprint == "b5c8f46b11190ec7"
    assert PromptSet().multi_fingerprint != PromptSet().fingerprint


def test_multi_label_rules_prompt_asks_for_rules_per_label_and_no_default():
    single = "\n".join(m["content"] for m in build_rules_messages("News.", CLASSES, ["a"]))
    multi = "\n".join(m["content"] for m in build_rules_messages("News.", CLASSES, ["a"], multi_label=True))
    assert "default" in single and "default" not in multi
    assert "its own rules" in multi and "several labels, or none" in multi and "gets none of them" in multi
    assert find_classes(multi) == list(CLASSES) and find_fenced(multi, "sample") == ["a"]


def test_multi_label_templates_can_be_overridden_by_files(tmp_path):
    (tmp_path / "label_user_multi.txt").write_text("SET? {{ document }} of {{ classes | join('/') }}")
    prompts = PromptSet([tmp_path])
    assert prompts.notes == []
    assert build_label_messages(multi_task("Goal!"), "text", prompts)[-1]["content"].startswith("SET? <document")
    assert build_label_messages(single_task("Goal!"), "text", prompts)[-1]["content"].startswith("<document")
    assert prompts.fingerprint == PromptSet().fingerprint  # a multi-label file leaves single-label keys alone
    assert prompts.multi_fingerprint != PromptSet().multi_fingerprint


def test_augmentoolkit_label_file_with_a_multi_label_task_says_what_to_do():
    prompts = PromptSet([AUGMENTOOLKIT_PROMPTS])
    assert prompts.label_messages is not None
    with pytest.raises(LabelloopError) as err:
        build_label_messages(multi_task("The Aurora left Miami."), "index", prompts)
    message = str(err.value)
    assert "create_labels_for_chunk.yaml" in message and "Final label: <index>" in message
    assert "remove or rename" in message and "multi_label: false" in message


def test_rules_from_the_fake_name_every_label(fake_server):
    fake = fake_server(classes=CLASSES, multi_label=True)
    b = backend(fake)
    gen = asyncio.run(b.generate(build_rules_messages("News.", CLASSES, ["a"], multi_label=True),
                                 max_tokens=500, temperature=0.0))
    assert missing_classes(gen.text, CLASSES) == [] and "none of them" in gen.text
    assert "Default" not in gen.text


# ------------------------------------------------------------------ requests and answers


def test_schema_request_carries_the_label_set_schema_and_reads_the_sets(fake_server):
    fake = fake_server(gold=SETS)
    results = classify_many(backend(fake), [multi_task(t) for t in SETS])
    assert [labels_of(r) for r in results] == list(SETS.values())
    assert all(r.multi_label and r.reason is None and r.attempts == 1 for r in results)
    assert results[2].label == "[]"  # none of them: a valid answer, not a failure
    for body in fake.requests:
        rf = body["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == label_set_schema(CLASSES)
        assert rf["json_schema"]["strict"] is True
    assert label_set_schema(CLASSES)["properties"]["labels"]["uniqueItems"] is True


def test_json_mode_without_a_schema_is_told_the_format_by_the_prompt(fake_server):
    fake = fake_server(gold=SETS)
    results = classify_many(backend(fake, structured_output="json_object"), [multi_task(t) for t in SETS])
    assert [labels_of(r) for r in results] == list(SETS.values())
    assert all(body["response_format"] == {"type": "json_object"} for body in fake.requests)
    assert all(r.raw.startswith('{"labels": [') for r in results)


@pytest.mark.parametrize("refusal", ["openai", "llama-cpp-python"])
def test_refused_json_schema_falls_back_to_the_next_shape(fake_server, refusal):
    fake = fake_server(gold=SETS, supports_json_schema=False, refusal=refusal)
    b = backend(fake)
    results = classify_many(b, [multi_task(t) for t in SETS])
    assert [labels_of(r) for r in results] == list(SETS.values())
    assert b.negotiation.shape == "json_object+schema"
    assert fake.requests[-1]["response_format"] == {"type": "json_object", "schema": label_set_schema(CLASSES)}
    assert sum(v for k, v in fake.by_status.items() if k != "200") == 1  # one refusal, never retried


@pytest.mark.parametrize("answer_format", ["bare", "reasoning", "json"])
def test_text_replies_are_parsed_when_no_schema_is_sent(fake_server, answer_format):
    fake = fake_server(gold=SETS, answer_format=answer_format)
    results = classify_many(backend(fake, structured_output="none"), [multi_task(t) for t in SETS])
    assert [labels_of(r) for r in results] == list(SETS.values())
    assert all("response_format" not in body for body in fake.requests)
    none_reply = results[2].raw
    assert none_reply.endswith("Labels: none") if answer_format != "json" else '"labels": []' in none_reply
    assert all(r.probs is not None for r in results)


def test_completion_mode_cues_labels_and_reads_logprobs(fake_server):
    fake = fake_server(gold=SETS)
    b = OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model), 2, completion_mode=True)
    results = classify_many(b, [multi_task(t) for t in SETS])
    assert [labels_of(r) for r in results] == list(SETS.values())
    assert all(body["prompt"].endswith("### Assistant:\nLabels:") for body in fake.requests)
    assert all(r.probs and all(0.0 <= p <= 1.0 for p in r.probs.values()) for r in results)


def test_unreadable_reply_is_asked_again_once_with_the_error_then_unlabeled(fake_server):
    fake = fake_server(gold=SETS)
    fake.queue_faults("unparseable", "unparseable")
    text = next(iter(SETS))
    result = classify_many(backend(fake, structured_output="none"), [multi_task(text)])[0]
    assert result.label is None and result.probs is None
    assert result.raw == "Hmm, that is a hard one. I would rather not say."
    problem = result.reason.removeprefix("no label set in 2 replies; last problem: ")
    assert problem != result.reason and "not among the classes" in problem
    assert len(fake.requests) == 2
    second = fake.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": result.raw}
    correction = second[-1]["content"]
    assert correction.startswith(f"Your answer could not be read: {problem}\n")  # the error, shown to the model
    assert "`Labels: <class>, <class>`" in correction and "`Labels: none`" in correction

    fake.reset_counts()
    fake.queue_faults("unparseable")
    again = classify_many(backend(fake, structured_output="none"), [multi_task(text)])[0]
    assert labels_of(again) == SETS[text] and len(fake.requests) == 2


def test_per_label_probabilities_come_from_logprobs(fake_server):
    fake = fake_server(gold=SETS)
    for structured in ("auto", "none"):
        results = classify_many(backend(fake, structured_output=structured), [multi_task(t) for t in SETS])
        for r in results:
            assert set(r.probs) == set(CLASSES)
            assert all(0.0 <= p <= 1.0 for p in r.probs.values())
            chosen = labels_of(r)
            # The teacher is right on every label here: sure of what it wrote, and of what it left out.
            assert all(0.7 <= r.probs[c] <= 0.99 for c in chosen)
            assert all(r.probs[c] <= 0.3 for c in CLASSES if c not in chosen)
            assert 0.7 <= r.confidence <= 0.99
        assert all(body.get("logprobs") is True and body["top_logprobs"] >= len(CLASSES)
                   for body in fake.requests)
        fake.reset_counts()


def test_without_logprobs_probabilities_come_from_sample_agreement(fake_server):
    fake = fake_server(gold=SETS, accuracy=0.7, supports_logprobs=False, refusal="llama-cpp-python", seed=3)
    b = backend(fake, samples=3)
    results = classify_many(b, [multi_task(t) for t in SETS])
    assert not b.negotiation.logprobs  # the server refused them; asked without
    for r in results:
        assert set(r.probs) == set(CLASSES)
        assert all(round(p * 3) / 3 == pytest.approx(p) for p in r.probs.values())  # shares of 3 answers
        assert labels_of(r) == [c for c in CLASSES if r.probs[c] > 0.5]
    sampled = [body for body in fake.requests if body["temperature"] >= 0.7]
    assert len(sampled) == 2 * len(SETS) and all("logprobs" not in body for body in sampled)


def test_without_logprobs_or_samples_there_is_no_probability(fake_server):
    fake = fake_server(gold=SETS, supports_logprobs=False)
    results = classify_many(backend(fake), [multi_task(t) for t in SETS])
    assert all(r.probs is None and r.confidence is None and r.label is not None for r in results)
    assert len(fake.requests) == len(SETS)


def test_teacher_at_90_percent_is_right_on_about_90_percent_of_label_decisions(fake_server):
    rng = random.Random(5)
    gold = {f"Article {i}: {' '.join(rng.choice(['market', 'vote', 'goal', 'chip']) for _ in range(8))}.":
            sorted(rng.sample(CLASSES, rng.choice([0, 1, 1, 2, 2, 3]))) for i in range(200)}
    fake = fake_server(gold=gold, accuracy=0.9, seed=11)
    results = classify_many(backend(fake, concurrency=8), [multi_task(t) for t in gold])
    right = sum((c in labels_of(r)) == (c in truth)
                for r, truth in zip(results, gold.values(), strict=True) for c in CLASSES)
    assert 0.86 <= right / (len(gold) * len(CLASSES)) <= 0.94
    exact = sum(labels_of(r) == truth for r, truth in zip(results, gold.values(), strict=True)) / len(gold)
    assert 0.55 <= exact <= 0.78  # about 0.9 ** 4 = 0.66: per-label errors add up per document
    again = classify_many(backend(fake, concurrency=8), [multi_task(t) for t in gold])
    assert [r.label for r in again] == [r.label for r in results]  # deterministic per text, seed and class


def test_single_label_request_for_the_same_task_is_unchanged(fake_server):
    gold = {t: (labels[0] if labels else "business") for t, labels in SETS.items()}
    fake = fake_server(gold=gold)
    text = next(iter(SETS))
    single = classify_many(backend(fake), [single_task(text)])[0]
    body = fake.requests[-1]
    assert single.label == "business" and not single.multi_label
    assert body["response_format"]["json_schema"] == {"name": "label", "strict": True,
                                                      "schema": label_schema(CLASSES)}
    assert body["messages"] == build_label_messages(single_task(text), "json")
    assert "labels" not in json.dumps(body)


def test_list_gold_answers_a_single_label_request_with_its_first_offered_class(fake_server):
    fake = fake_server(gold=SETS)
    text = next(iter(SETS))
    assert classify_many(backend(fake), [single_task(text)])[0].label == "business"


def test_multi_label_requests_have_their_own_cache_keys_and_answers_come_back_from_the_log(fake_server, tmp_path):
    fake = fake_server(gold=SETS)
    b = backend(fake)
    text = list(SETS)[2]
    single_key, _ = CallLog.classify_key(b, single_task(text))
    multi_key, inputs = CallLog.classify_key(b, multi_task(text))
    assert single_key != multi_key and inputs["task"]["multi_label"] is True
    assert b.cache_params_for(single_task(text)) == b.cache_params
    assert b.cache_params_for(multi_task(text))["prompts"] == b.prompts.multi_fingerprint
    log = CallLog(Store(tmp_path / "p.db"))
    first = asyncio.run(log.classify(b, multi_task(text)))
    again = asyncio.run(log.classify(b, multi_task(text)))
    assert first.label == again.label == "[]" and again.cached and again.multi_label
    assert again.probs == first.probs and len(fake.requests) == 1


# ------------------------------------------------------------------ reading probabilities (no server)


def chat_tokens(*entries):
    """(token, probability, {alternative: probability}) -> the backend's token list."""
    import math

    return [(t, math.log(p), [(a, math.log(q)) for a, q in alts.items()]) for t, p, alts in entries]


def test_the_choice_to_write_one_more_item_weighs_on_that_item():
    raw = '{"labels": ["business", "tech"]}'
    tokens = chat_tokens(('{"labels": [', 1.0, {}), ('"business', 0.9, {'"business': 0.9, '"sport': 0.1}),
                         ('", "', 0.5, {'", "': 0.5, '"]': 0.5}), ("tech", 0.96, {"tech": 0.96, "sport": 0.04}),
                         ('"]}', 1.0, {}))
    probs = label_sets.probs_from_logprobs(tokens, raw, ["business", "tech"], CLASSES)
    assert probs["business"] == pytest.approx(0.9)
    assert probs["tech"] == pytest.approx(0.48)  # a coin flip to go on, then sure which label
    assert probs["sport"] == pytest.approx(1 - (1 - 0.1) * (1 - 0.5 * 0.04))
    assert probs["politics"] == 0.0


def test_items_written_other_than_by_name_give_no_probability():
    raw = "Labels: 1, 4"
    tokens = chat_tokens(("Labels", 1.0, {}), (":", 1.0, {}), (" 1", 0.8, {" 1": 0.8}), (",", 1.0, {}),
                         (" 4", 0.7, {" 4": 0.7}))
    assert label_sets.probs_from_logprobs(tokens, raw, ["business", "tech"], CLASSES) is None
    assert label_sets.probs_from_logprobs([], "Labels: tech", ["tech"], CLASSES) is None


def test_agreement_is_the_share_of_answers_per_label_and_a_tie_keeps_the_first():
    chosen, probs = label_sets.agreement(["tech"], [["tech", "sport"], None, ["sport"], []], CLASSES)
    assert probs == {"business": 0.0, "politics": 0.0, "sport": 0.5, "tech": 0.5}
    assert chosen == ["tech"]
