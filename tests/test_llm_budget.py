"""The one prompt budget of the embedded backend (labelloop.llm.embedded_budget), without a model.

One token per character keeps the pieces readable; the real models' prompts are fitted in
tests/test_llm_embedded.py and tests/test_multilabel_embedded.py.
"""

from __future__ import annotations

import pytest

from labelloop.errors import LLMError
from labelloop.llm import embedded_multi as multi
from labelloop.llm.base import Example, LabelTask
from labelloop.llm.embedded_budget import LABEL_FIX, fit, fit_prompt
from labelloop.llm.embedded_chat import render
from labelloop.llm.embedded_prompt import build_prompt, header_text

pytestmark = pytest.mark.unit

CLASSES = ("positive", "negative")


def tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]


def detokenize(tokens: list[int]) -> str:
    return "".join(map(chr, tokens))


def template(messages: list[dict]) -> str:  # a minimal chat template
    return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def task(text: str = "", **kw) -> LabelTask:
    fields = dict(classes=CLASSES, rules="1. positive: happy.\n2. negative: unhappy.",
                  description="Reviews by sentiment.", examples=())
    fields.update(kw)
    return LabelTask(text=text, **fields)


LONG_RULES = "\n".join(f"{i}. Consider the reviewer's tone carefully in case {i}." for i in range(1, 60))
LONG_EXAMPLES = (Example("Lovely. " * 300, "positive"), Example("Awful. " * 300, "negative"))
LONG_TEXT = "The service was slow but the food was great. " * 100


# ------------------------------------------------------------------ the numbers


def test_rules_take_at_most_half_examples_half_the_rest_and_the_document_what_is_left():
    b = fit(n_ctx=1000, reserve=10, fixed=190, rules=700, examples=[500, 20], document=900, what="t", fix="f")
    assert b.rules == 400  # half of the 800 the instructions leave
    assert b.example == 100  # half of the 400 left, in two shares; the short example keeps its 20
    assert b.document == 400 - 100 - 20


def test_nothing_is_cut_when_everything_fits_and_the_document_keeps_its_limit():
    b = fit(n_ctx=4096, reserve=5, fixed=300, rules=100, examples=[50, 60], document=2000, doc_limit=256,
            what="t", fix="f")
    assert (b.rules, b.example, b.document) == (None, None, 256)
    b = fit(n_ctx=4096, reserve=5, fixed=300, examples=[900], document=10, doc_limit=256, what="t", fix="f")
    assert b.example == 256  # an example is no longer than the chunk it stands for


def test_instructions_that_do_not_fit_raise_with_the_sizes_and_the_fix():
    with pytest.raises(LLMError) as info:
        fit(n_ctx=512, reserve=4, fixed=600, rules=10, document=100, what="labeling", fix=LABEL_FIX)
    message = str(info.value)
    assert "600 tokens" in message and "512-token window" in message and "n_ctx" in message
    with pytest.raises(LLMError, match="at least 16"):
        fit(n_ctx=512, reserve=4, fixed=500, document=100, what="labeling", fix=LABEL_FIX)


# ------------------------------------------------------------------ each prompt keeps its instructions


def test_completion_prompt_keeps_every_instruction_and_cuts_rules_examples_and_text():
    t = task(rules=LONG_RULES, description="Reviews by sentiment. " * 12, examples=LONG_EXAMPLES)
    prompt = build_prompt(t, LONG_TEXT, tokenize, detokenize, n_ctx=1500, bos=[1], reserve=4)
    assert len(prompt.tokens) <= 1500 - 4
    instructions = header_text(t, rules="")
    for line in instructions.strip().splitlines():  # the task, the classes, the fence note, the answer format
        assert line in prompt.prefix_text, line
    assert prompt.prefix_text.index("Rules:") < prompt.prefix_text.index("Answer with the class name only.")
    assert set(prompt.truncated) == {"rules", "examples", "document"} and prompt.truncated["examples"] == [0, 1]
    assert detokenize(prompt.doc).endswith('"""\nLabel:')


def test_chat_prompt_cuts_long_examples_instead_of_overflowing():
    t = task(examples=LONG_EXAMPLES)

    def build(tk, doc):
        return render(template, tk, doc, tokenize, order="text-then-task", detokenize=detokenize)

    fitted = fit_prompt(t, tokenize(LONG_TEXT), build, lambda p: len(p.tokens), tokenize, detokenize, n_ctx=1200,
                        reserve=4, doc_limit=None, what="labeling", fix=LABEL_FIX)
    whole = detokenize(fitted.prompt.tokens)
    assert len(fitted.prompt.tokens) <= 1200 - 4
    assert fitted.truncated["examples"] == [0, 1] and "document" in fitted.truncated
    assert whole.count("Which class does this text belong to?") == 3  # two examples and the chunk: none dropped
    assert whole.endswith("Reply with one word.</user><assistant>")


@pytest.mark.parametrize("chat", [True, False])
def test_multi_label_prompt_fits_with_the_longest_question_and_keeps_every_question(chat):
    t = task(rules=LONG_RULES + "\n60. positive: praise.\n61. negative: complaints.", examples=LONG_EXAMPLES,
             multi_label=True)
    labels = {"positive": '["positive"]', "negative": '["negative"]'}
    t = LabelTask(**{**t.__dict__, "examples": tuple(Example(e.text, labels[e.label]) for e in t.examples)})

    def build(tk, doc):
        if chat:
            return multi.render_chat(template, tk, doc, tokenize, detokenize, order="text-then-task")
        return multi.render_completion(tk, doc, tokenize, detokenize, bos=[1])

    fitted = fit_prompt(t, tokenize(LONG_TEXT), build, lambda p: p.longest, tokenize, detokenize, n_ctx=1400,
                        reserve=4, doc_limit=None, what="labeling", fix=LABEL_FIX)
    assert fitted.prompt.longest <= 1400 - 4
    assert set(fitted.truncated) == {"rules", "examples", "document"}
    for name, tail in zip(CLASSES, fitted.prompt.tails):
        assert multi.question(name) in detokenize(tail)


def test_a_prompt_whose_instructions_alone_overflow_raises_instead_of_cutting_them():
    t = task(description="Reviews by sentiment, read with care. " * 40)
    with pytest.raises(LLMError, match="instructions take"):
        build_prompt(t, LONG_TEXT, tokenize, detokenize, n_ctx=1024, bos=[1], reserve=4)
