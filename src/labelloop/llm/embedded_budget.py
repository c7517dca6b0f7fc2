"""The one budget that fits an embedded model's prompt into its window (n_ctx), for every prompt it builds.

A prompt has parts that are never cut: the instructions, the question, the template's turns and cues
(`fixed`), and the room kept for the answer (`reserve`). What may give way, and how much:

- the rules take at most half of what the instructions leave;
- the few-shot examples (or a rules request's samples) at most half of what is left after the rules,
  in equal shares, none longer than the document limit (an example stands for a chunk);
- the document takes the rest, at most the document limit (doc_tokens).

Each part is cut at its end. When the instructions and the answer alone do not fit, nothing is cut:
an LLMError names the sizes and the fix. Single-label (completion and chat), multi-label and the rules
writer all ask `fit`; the labeling prompts go through `fit_prompt`, which measures, cuts and renders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from labelloop.errors import LLMError
from labelloop.llm.base import LabelTask

LABEL_FIX = ("raise n_ctx of the embedded model (small_model.n_ctx / large_model.n_ctx), or shorten "
             "classification.desc: the instructions are never cut")
MIN_DOCUMENT_ROOM = 16  # a prompt that leaves the document fewer tokens than this cannot label anything

P = TypeVar("P")
Tokenize = Callable[[str], list[int]]
Detokenize = Callable[[list[int]], str]


@dataclass(frozen=True)
class Budget:
    """Tokens each cuttable part keeps (None: all of it)."""

    rules: int | None
    example: int | None
    document: int
    fix: str = ""

    def less_document(self, over: int, *, what: str) -> Budget:
        """The document gives up `over` more tokens (the rendered prompt came out that much too long)."""
        if over > self.document:
            raise LLMError(f"the {what} prompt is {over - self.document} tokens too long even with no document; "
                           f"{self.fix}")
        return dataclasses.replace(self, document=self.document - over)


def fit(*, n_ctx: int, reserve: int, fixed: int, rules: int = 0, rules_cost: int | None = None,
        examples: Sequence[int] = (), document: int = 0, doc_limit: int | None = None, what: str,
        fix: str) -> Budget:
    """How many tokens of the rules, of each example and of the document a prompt keeps to fit n_ctx.

    rules_cost: what the rules add to the prompt, when that is more than their own tokens (some chat
    prompts repeat the task and rules in every example's turn); a cut keeps that proportion.
    """
    cost = rules if rules_cost is None else max(rules_cost, 0)
    room = n_ctx - reserve - fixed
    if room < 0 or (document > 0 and room < MIN_DOCUMENT_ROOM):
        raise LLMError(
            f"the {what} prompt's instructions take {fixed} tokens and its answer {reserve}, which leaves "
            f"{max(room, 0)} of the model's {n_ctx}-token window for the text (at least {MIN_DOCUMENT_ROOM} "
            f"needed); {fix}")
    keep_rules = rules if cost <= room // 2 else rules * (room // 2) // cost
    left = room - (cost if keep_rules == rules else room // 2)
    per: int | None = None
    used = 0
    if examples:
        per = (left // 2) // len(examples)
        if doc_limit is not None:
            per = min(per, doc_limit)
        used = sum(min(n, per) for n in examples)
        if all(n <= per for n in examples):
            per = None
    doc_room = left - used if doc_limit is None else min(left - used, doc_limit)
    return Budget(rules=keep_rules if keep_rules < rules else None, example=per,
                  document=min(document, doc_room), fix=fix)


@dataclass
class Fitted(Generic[P]):
    """A rendered prompt that fits, and what was cut to make it fit."""

    prompt: P
    truncated: dict


def fit_prompt(task: LabelTask, document: list[int], render: Callable[[LabelTask, list[int]], P],
               size: Callable[[P], int], tokenize: Tokenize, detokenize: Detokenize, *, n_ctx: int, reserve: int,
               doc_limit: int | None, what: str, fix: str) -> Fitted[P]:
    """Render task + document (its tokens) within n_ctx - reserve: `fit` decides the cuts, then render.

    render(task, document tokens) builds the prompt; size(prompt) is the most tokens it holds in the
    window at once. The instructions are measured by rendering with empty rules, examples and document.
    """
    bare = dataclasses.replace(task, rules="", examples=tuple(dataclasses.replace(e, text="") for e in task.examples))
    rule_tokens = tokenize(task.rules.strip()) if task.rules.strip() else []
    example_tokens = [tokenize(e.text) for e in task.examples]
    fixed = size(render(bare, []))
    rules_cost = size(render(dataclasses.replace(bare, rules=task.rules), [])) - fixed if rule_tokens else 0
    budget = fit(n_ctx=n_ctx, reserve=reserve, fixed=fixed, rules=len(rule_tokens), rules_cost=rules_cost,
                 examples=[len(t) for t in example_tokens], document=len(document), doc_limit=doc_limit,
                 what=what, fix=fix)
    truncated: dict = {}
    if budget.rules is not None:
        task = dataclasses.replace(task, rules=detokenize(rule_tokens[:budget.rules]))
        truncated["rules"] = budget.rules
    if budget.example is not None:
        per = budget.example
        truncated["examples"] = [i for i, t in enumerate(example_tokens) if len(t) > per]
        task = dataclasses.replace(task, examples=tuple(
            dataclasses.replace(e, text=detokenize(t[:per])) if len(t) > per else e
            for e, t in zip(task.examples, example_tokens)))
    prompt = render(task, document[:budget.document])
    over = size(prompt) - (n_ctx - reserve)  # pieces tokenized apart can join into a few more tokens
    if over > 0:
        budget = budget.less_document(over, what=what)
        prompt = render(task, document[:budget.document])
    if budget.document < len(document):
        truncated["document"] = {"kept": budget.document, "of": len(document)}
    return Fitted(prompt, truncated)
