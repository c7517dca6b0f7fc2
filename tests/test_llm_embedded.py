"""The embedded llama.cpp backend with real packaged GGUFs: a base model (Gemma 3 270M, a completion
prompt) and an instruction-tuned one (Qwen2.5-Coder-0.5B, its own chat template). The default,
Qwen2.5-Coder-1.5B, runs end to end in tests/test_run_embedded.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from labelloop.config import LLMSection
from labelloop.errors import ModelNotAvailableError
from labelloop.llm.base import Example, LabelTask

pytestmark = pytest.mark.embedded

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
embedded = pytest.importorskip("labelloop.llm.embedded")

CLASSES = ("positive", "negative")
EXAMPLES = (
    Example("I love this blender, it works perfectly and was worth every penny.", "positive"),
    Example("Terrible phone. It broke after two days and support never answered.", "negative"),
)
REVIEWS = [
    ("Absolutely wonderful hotel, friendly staff and a beautiful view. We will be back!", "positive"),
    ("The best pizza I have ever had. Delicious, fresh and fast delivery.", "positive"),
    ("Fantastic book, I could not put it down. Highly recommended.", "positive"),
    ("Great headphones: excellent sound, comfortable, and the battery lasts forever.", "positive"),
    ("This movie was a joy from start to finish. Brilliant acting and a lovely story.", "positive"),
    ("Awful service. The waiter was rude and the food was cold and disgusting.", "negative"),
    ("Worst purchase ever. The shoes fell apart in a week and they refused a refund.", "negative"),
    ("Horrible experience, the room was dirty and smelled bad. Never again.", "negative"),
    ("The laptop is painfully slow, crashes constantly and the screen flickers. A waste of money.", "negative"),
    ("Boring, badly written and far too long. I regret buying this book.", "negative"),
]


def task(text: str, **kw) -> LabelTask:
    fields = dict(classes=CLASSES, rules="1. positive: the reviewer is happy.\n2. negative: the reviewer is unhappy.",
                  description="Product and service reviews by sentiment.", examples=EXAMPLES)
    fields.update(kw)
    return LabelTask(text=text, **fields)


MODELS = ["gemma-3-270m", "qwen2.5-coder-0.5b"]  # base (completion prompt), instruction-tuned (chat template)


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return request.param


@pytest.fixture(scope="module")
def backend(model):
    return embedded.EmbeddedBackend(LLMSection(model=model, calibrate=True))


@pytest.fixture(scope="module")
def raw_backend(model):
    return embedded.EmbeddedBackend(LLMSection(model=model, calibrate=False))


def classify(backend, t: LabelTask):
    return asyncio.run(backend.classify(t))


def test_labels_obvious_reviews_well_above_chance(backend):
    results = [classify(backend, task(text)) for text, _ in REVIEWS]
    correct = sum(r.label == gold for r, (_, gold) in zip(results, REVIEWS))
    assert correct >= 8, [(r.label, gold) for r, (_, gold) in zip(results, REVIEWS)]


def test_probs_cover_every_class_and_sum_to_one(backend):
    classes = ("sports", "business", "entertainment", "politics")
    result = classify(backend, task("The striker scored twice in the cup final.", classes=classes, examples=()))
    assert set(result.probs) == set(classes)
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in result.probs.values())
    assert result.label == max(result.probs, key=result.probs.get)
    assert result.confidence == result.probs[result.label]
    prefix = result.request["prompt_prefix"]
    turns = prefix.count("<|im_start|>user")  # chat models: one user turn; base models: one "Text:"
    assert (turns if turns else prefix.count("Text:")) <= 1  # no invented examples: one text, ours


def test_calibration_divides_by_content_free_probs(backend, raw_backend):
    t = task(REVIEWS[3][0])
    cal, raw = classify(backend, t), classify(raw_backend, t)
    assert raw.probs == pytest.approx(cal.response["uncalibrated"])
    assert cal.probs != pytest.approx(raw.probs, abs=1e-4)
    p_cf = cal.response["content_free"]
    expected = {c: raw.probs[c] / p_cf[c] for c in CLASSES}
    total = sum(expected.values())
    assert cal.probs == pytest.approx({c: v / total for c, v in expected.items()})
    assert raw.response["content_free"] is None


def test_scores_do_not_depend_on_what_was_scored_before(backend):
    first = classify(backend, task(REVIEWS[0][0]))
    classify(backend, task(REVIEWS[5][0], classes=("good", "bad", "neither"), examples=()))
    again = classify(backend, task(REVIEWS[0][0]))
    assert again.response["logprobs"] == first.response["logprobs"]


def test_concurrent_calls_match_sequential(backend):
    texts = [text for text, _ in REVIEWS[:3]]
    sequential = [classify(backend, task(t)).probs for t in texts]

    async def together():
        return await asyncio.gather(*(backend.classify(task(t)) for t in texts))

    assert [r.probs for r in asyncio.run(together())] == sequential


def test_long_document_rules_and_examples_are_cut_to_fit_the_context_and_the_instructions_stay(model):
    small = embedded.EmbeddedBackend(LLMSection(model=model, n_ctx=512, doc_tokens=None))
    long_text = "The service was slow but the food was great. " * 300
    long_rules = "\n".join(f"{i}. Consider the reviewer's tone carefully in case {i}." for i in range(1, 200))
    long_examples = tuple(Example(e.text * 30, e.label) for e in EXAMPLES)
    result = classify(small, task(long_text, rules=long_rules, examples=long_examples))
    assert result.request["prompt_tokens"] <= 512
    assert result.request["truncated"]["document"]["kept"] < result.request["truncated"]["document"]["of"]
    assert "rules" in result.request["truncated"] and result.request["truncated"]["examples"] == [0, 1]
    prompt = result.request["prompt_prefix"] + result.request["document"]
    chat = model.startswith("qwen")
    instruction = "Reply with one word." if chat else "Answer with the class name only."
    assert prompt.count(instruction) == (3 if chat else 1)  # chat: each example's turn and the chunk's
    assert result.label in CLASSES


@pytest.mark.parametrize("rules_model", ["gemma-3-270m", "smollm2-135m"])  # a base model; a chat template
def test_rules_request_too_long_for_the_window_cuts_its_samples_not_its_instructions(rules_model):
    from labelloop.llm.prompts import build_rules_messages

    small = embedded.EmbeddedBackend(LLMSection(model=rules_model, n_ctx=512))
    samples = [text * 12 for text, _ in REVIEWS[:4]]
    messages = build_rules_messages("Product and service reviews by sentiment.", CLASSES, samples)
    gen = asyncio.run(small.generate(messages, max_tokens=48, temperature=0.0))
    prompt = gen.request["prompt"]
    assert prompt.startswith(messages[0]["content"][:40]) or messages[0]["content"][:40] in prompt[:400]
    assert "Output only the numbered rules." in prompt  # the instruction after the samples stays too
    llm = small._writer.model()
    assert len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)) < 512 - 48
    assert gen.text.strip()


def test_result_is_json_serializable_and_rebuilds_from_the_log(backend):
    result = classify(backend, task(REVIEWS[1][0]))
    request = json.loads(json.dumps(result.request))
    response = json.loads(json.dumps(result.response))
    rebuilt = embedded.classification_from_logged(request, response)
    assert (rebuilt.label, rebuilt.probs, rebuilt.raw) == (result.label, result.probs, result.raw)
    assert result.label in result.raw


def test_identity_is_stable_and_names_the_file(backend, model):
    other = embedded.EmbeddedBackend(LLMSection(model=model, calibrate=False))
    assert other.identity == backend.identity
    path = Path(backend.path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert backend.identity == f"embedded {path.name} sha={sha}"


def test_missing_gguf_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotAvailableError) as info:
        embedded.EmbeddedBackend(LLMSection(model=str(missing)))
    message = str(info.value)
    assert str(missing) in message and "small_model.model" in message and "GGUF" in message


def test_file_that_is_not_a_gguf_is_reported_when_loaded(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF model")
    backend = embedded.EmbeddedBackend(LLMSection(model=str(bad)))
    assert backend.identity.startswith("embedded broken.gguf sha=")
    with pytest.raises(ModelNotAvailableError, match="broken.gguf"):
        classify(backend, task("fine"))


def test_the_chat_template_is_used_when_the_gguf_has_one(backend, model):
    result = classify(backend, task(REVIEWS[0][0], examples=()))
    chat = model.startswith("qwen")
    assert ("chat template" in result.request["method"]) == chat
    if chat:  # Qwen's own turn markers, the text before the question
        prompt = result.request["prompt_prefix"] + result.request["document"]
        assert "<|im_start|>user" in prompt and prompt.index(REVIEWS[0][0][:30]) < prompt.index("Which class")


def test_generate_writes_rules_that_name_every_class(backend):
    classes = ["sports", "business", "politics"]
    messages = [
        {"role": "system", "content": "You write labeling rules for a text classification task."},
        {"role": "user", "content": "Task: news headlines by topic.\nClasses: sports, business, politics\n"
                                    "Write short numbered rules that say when to use each class."},
    ]
    gen = asyncio.run(backend.generate(messages, max_tokens=48, temperature=0.0))
    # What the model wrote, before clean_rules adds the class list and a default line of its own.
    written = gen.response["generated"].splitlines()
    assert len(written) == len(classes)
    for name, line in zip(classes, written):  # each line begun for the model with its class, finished by it
        body = line.split(name, 1)[1].lstrip(":").replace("when it", "", 1)
        assert len(body.strip()) >= 8 and "fits the task's description" not in body, line
    json.dumps(gen.request), json.dumps(gen.response)
