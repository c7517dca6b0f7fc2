"""Labeling with an embedded model: class log-probabilities, calibrated, read from the KV cache.

Base models (a completion prompt): the label is the class whose continuation " <class>" after
"Label:" has the highest summed token log-probability. Instruction-tuned models (the GGUF's chat
template): the class name's log-probability at the start of the assistant's turn. Either way with
contextual calibration (Zhao et al. 2021): the same prompt is scored with content-free texts
("N/A", "", "[MASK]") and p(y|x) is divided by their mean class probabilities. The shared prompt
prefix stays in the KV cache, so each chunk costs only its own tokens.

Multi-label (embedded_multi.py): one yes/no question per class after the text; the text is
evaluated once per chunk, then each class's question alone (rolled back after), and p(yes) per
class is calibrated on the same content-free inputs.

Every prompt is fitted to the window by labelloop.llm.embedded_budget.fit_prompt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import numpy as np

from labelloop.config import LLMSection
from labelloop.llm import embedded_multi as multi
from labelloop.llm.base import Classification, LabelTask
from labelloop.llm.embedded_budget import LABEL_FIX, fit_prompt
from labelloop.llm.embedded_chat import ChatPrompt, answer_variants, render
from labelloop.llm.embedded_prompt import CONTENT_FREE, LABEL_CUE, PromptTokens, build_prompt, fence_text
from labelloop.llm.embedded_runtime import Slot


def _normalize(values: np.ndarray) -> np.ndarray:
    return values / values.sum()


def _softmax(scores: np.ndarray) -> np.ndarray:
    return _normalize(np.exp(scores - scores.max()))


class Scorer:
    """Scores one task's classes on a slot's model (runs in the slot's thread)."""

    def __init__(self, slot: Slot, settings: LLMSection, *, order: str, doc_tokens: Callable[[], int | None],
                 identity: str):
        self.slot = slot
        self.settings = settings
        self.order = order
        self.doc_tokens = doc_tokens
        self.identity = identity

    def classify(self, task: LabelTask) -> Classification:
        self.slot.model()
        if task.multi_label:
            return self._classify_multi(task)
        if self.slot.chat is not None:
            return self._classify_chat(task)
        return self._classify_completion(task)

    def _fit(self, task: LabelTask, document: list[int], render_fn, size, reserve: int):
        """The one budget (embedded_budget.fit_prompt) with this model's tokenizer and window."""
        return fit_prompt(task, document, render_fn, size, self.slot.tok, self.slot.detok, n_ctx=self.settings.n_ctx,
                          reserve=reserve, doc_limit=self.doc_tokens(), what="labeling", fix=LABEL_FIX)

    # ------------------------------------------------------------ scores

    def _score(self, prompt, class_tokens: list[list[int]]) -> np.ndarray:
        """Summed log-probs of each class continuation; the prefix's KV state is reused."""
        base = self.slot.eval_chunk(prompt)
        return self.slot.continuations(base, class_tokens)

    def _class_tokens(self, classes: tuple[str, ...], cue_text: str = LABEL_CUE) -> list[list[int]]:
        """Tokens of " <class>" as they follow "Label:" (checked against joint tokenization)."""
        tok = self.slot.tok
        cue = tok(cue_text)
        out = []
        for name in classes:
            joint = tok(f"{cue_text} {name}")
            out.append(joint[len(cue):] if joint[: len(cue)] == cue else tok(f" {name}"))
        return out

    # ------------------------------------------------------------ base models: "Label:" cues

    def _prompt(self, task: LabelTask, text: str, reserve: int) -> PromptTokens:
        return build_prompt(task, text, self.slot.tok, self.slot.detok, n_ctx=self.settings.n_ctx,
                            bos=self.slot.bos(), reserve=reserve, max_doc_tokens=self.doc_tokens())

    def _classify_completion(self, task: LabelTask) -> Classification:
        start = time.perf_counter()
        class_tokens = self._class_tokens(task.classes)
        reserve = max(len(t) for t in class_tokens) + 1
        prompt = self._prompt(task, task.text, reserve)
        logprobs = self._score(prompt, class_tokens)
        raw_probs = _softmax(logprobs)
        p_cf = None
        probs = raw_probs
        if self.settings.calibrate:
            p_cf = self._content_free(task, prompt.prefix, class_tokens, reserve)
            probs = _normalize(raw_probs / np.maximum(p_cf, 1e-12))
        return self._classification(task, prompt, logprobs, raw_probs, probs, p_cf, start,
                                    method="class log-probs after few-shot prompt")

    def _content_free(self, task: LabelTask, prefix: list[int], class_tokens: list[list[int]],
                      reserve: int) -> np.ndarray:
        """Mean class probabilities for content-free inputs, cached per prompt prefix."""
        key = hashlib.sha256(repr((prefix, class_tokens)).encode()).hexdigest()
        cache = self.slot.calibration
        if key not in cache:
            probs = [_softmax(self._score(self._prompt(task, cf, reserve), class_tokens)) for cf in CONTENT_FREE]
            cache[key] = _normalize(np.mean(probs, axis=0))
        return cache[key]

    # ------------------------------------------------------------ instruction-tuned models: the chat template

    def _chat_prompt(self, task: LabelTask, text: str, reserve: int) -> ChatPrompt:
        slot = self.slot

        def build(t: LabelTask, doc: list[int]) -> ChatPrompt:
            return render(slot.chat, t, doc, slot.tok_special, order=self.order, detokenize=slot.detok_special)

        fitted = self._fit(task, slot.tok(text) if text else [], build, lambda p: len(p.tokens), reserve)
        fitted.prompt.truncated = fitted.truncated
        return fitted.prompt

    def _answer_tokens(self, classes: tuple[str, ...]) -> list[list[list[int]]]:
        """Per class, the token sequences of the ways the model may write it (name, Name)."""
        return [[self.slot.tok(v) for v in answer_variants(name)] for name in classes]

    def _chat_scores(self, prompt: ChatPrompt, variants: list[list[list[int]]]) -> np.ndarray:
        flat = [toks for per_class in variants for toks in per_class]
        scores = self._score(prompt, flat)
        out, i = [], 0
        for per_class in variants:
            out.append(float(np.logaddexp.reduce(scores[i:i + len(per_class)])))
            i += len(per_class)
        return np.array(out)

    def _classify_chat(self, task: LabelTask) -> Classification:
        start = time.perf_counter()
        variants = self._answer_tokens(task.classes)
        reserve = max(len(t) for per in variants for t in per) + 1
        prompt = self._chat_prompt(task, task.text, reserve)
        logprobs = self._chat_scores(prompt, variants)
        raw_probs = _softmax(logprobs)
        p_cf = None
        probs = raw_probs
        if self.settings.calibrate:
            # the rules and the description follow the text in some orders: the key names them too
            key = hashlib.sha256(repr((prompt.prefix, task.description, task.rules, self.order, variants,
                                       "chat")).encode()).hexdigest()
            cache = self.slot.calibration
            if key not in cache:
                cf = [_softmax(self._chat_scores(self._chat_prompt(task, t, reserve), variants)) for t in CONTENT_FREE]
                cache[key] = _normalize(np.mean(cf, axis=0))
            p_cf = cache[key]
            probs = _normalize(raw_probs / np.maximum(p_cf, 1e-12))
        return self._classification(task, prompt, logprobs, raw_probs, probs, p_cf, start,
                                    method="class log-probs at the assistant's answer (chat template)")

    def _classification(self, task: LabelTask, prompt, logprobs, raw_probs, probs, p_cf, start: float, *,
                        method: str) -> Classification:
        classes = list(task.classes)
        best = int(np.argmax(probs))
        response = {
            "label": classes[best],
            "probs": dict(zip(classes, map(float, probs))),
            "logprobs": dict(zip(classes, map(float, logprobs))),
            "uncalibrated": dict(zip(classes, map(float, raw_probs))),
            "content_free": dict(zip(classes, map(float, p_cf))) if p_cf is not None else None,
            "calibrated": p_cf is not None,
            "seconds": round(time.perf_counter() - start, 4),
        }
        request = {
            "backend": "embedded",
            "model": self.identity,
            "method": method + (", contextual calibration" if p_cf is not None else ""),
            "classes": classes,
            "prompt_prefix": prompt.prefix_text,
            "document": self.slot.detok_special(prompt.doc),
            "prompt_tokens": len(prompt.tokens),
            "truncated": prompt.truncated,
            "n_ctx": self.settings.n_ctx,
        }
        return classification_from_logged(request, response)

    # ------------------------------------------------------------ multi-label: one yes/no question per class

    def _classify_multi(self, task: LabelTask) -> Classification:
        """One yes/no question per class; the text is evaluated once, then each class's question alone."""
        start = time.perf_counter()
        chat = self.slot.chat is not None
        yes, no = self._yes_no_tokens(chat)
        reserve = max(len(t) for t in yes + no) + 1
        prompt = self._multi_prompt(task, task.text, reserve)
        yes_lp, no_lp = self._score_questions(prompt, yes, no)
        raw = multi.p_yes(yes_lp, no_lp)
        p_cf = self._multi_content_free(task, prompt, yes, no, reserve) if self.settings.calibrate else None
        probs = multi.calibrate(raw, p_cf) if p_cf is not None else raw
        response = multi.response_for(task.classes, yes_lp, no_lp, raw, probs, p_cf, time.perf_counter() - start,
                                      thresholds=task.thresholds)
        method = ("yes/no log-probs per class at the assistant's answer (chat template)" if chat
                  else "yes/no log-probs per class after 'Answer:' (completion prompt)")
        request = {
            "backend": "embedded",
            "model": self.identity,
            "method": method + (", contextual calibration per class" if p_cf is not None else ""),
            "classes": list(task.classes),
            "multi_label": True,
            "prompt_prefix": prompt.prefix_text,
            "document": self.slot.detok_special(prompt.doc),
            "questions": [self.slot.detok_special(t) for t in prompt.tails],
            "prompt_tokens": len(prompt.prefix) + prompt.evaluated,  # every token evaluated for this chunk
            "context_tokens": prompt.longest,  # the most in the context at once (at most n_ctx)
            "truncated": prompt.truncated,
            "n_ctx": self.settings.n_ctx,
        }
        return classification_from_logged(request, response)

    def _yes_no_tokens(self, chat: bool) -> tuple[list[list[int]], list[list[int]]]:
        """Token sequences of the yes and no answers: at the start of the assistant's turn, or after "Answer:"."""
        if chat:
            return [self.slot.tok(v) for v in multi.YES], [self.slot.tok(v) for v in multi.NO]
        return (self._class_tokens(multi.YES, multi.ANSWER_CUE), self._class_tokens(multi.NO, multi.ANSWER_CUE))

    def _render_multi(self, task: LabelTask, text_tokens: list[int]) -> multi.MultiPrompt:
        slot = self.slot
        if slot.chat is not None:
            return multi.render_chat(slot.chat, task, text_tokens, slot.tok_special, slot.detok_special,
                                     order=self.order)
        return multi.render_completion(task, text_tokens, slot.tok, slot.detok, bos=slot.bos())

    def _multi_prompt(self, task: LabelTask, text: str, reserve: int) -> multi.MultiPrompt:
        """The prompt fitted to n_ctx: the prefix, the text and the longest question at once."""
        chat = self.slot.chat is not None
        body = self.slot.tok(text if chat else fence_text(text)) if text else []
        fitted = self._fit(task, body, self._render_multi, lambda p: p.longest, reserve)
        fitted.prompt.truncated = fitted.truncated
        return fitted.prompt

    def _score_questions(self, prompt: multi.MultiPrompt, yes: list[list[int]],
                         no: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per class: log p(yes) and log p(no) (summed over their spellings) after its question.

        The text is evaluated once; each question is evaluated after it as one batch and
        rolled back, so a class's numbers do not depend on the classes asked before it.
        """
        llm = self.slot.model()
        base = self.slot.eval_chunk(prompt)
        yes_lp, no_lp = [], []
        for tail in prompt.tails:
            llm.eval(tail)
            scores = self.slot.continuations(llm.n_tokens, yes + no)
            yes_lp.append(float(np.logaddexp.reduce(scores[:len(yes)])))
            no_lp.append(float(np.logaddexp.reduce(scores[len(yes):])))
            llm.n_tokens = base
        return np.array(yes_lp), np.array(no_lp)

    def _multi_content_free(self, task: LabelTask, prompt: multi.MultiPrompt, yes: list[list[int]],
                            no: list[list[int]], reserve: int) -> np.ndarray:
        """Per class, the mean p(yes) over the content-free inputs, cached per prompt (its p(no) is 1 - that)."""
        key = hashlib.sha256(repr((prompt.prefix, prompt.tails, task.description, task.rules, self.order,
                                   yes, no, "multi")).encode()).hexdigest()
        cache = self.slot.calibration
        if key not in cache:
            runs = [multi.p_yes(*self._score_questions(self._multi_prompt(task, t, reserve), yes, no))
                    for t in CONTENT_FREE]
            cache[key] = np.mean(runs, axis=0)
        return cache[key]


def classification_from_logged(request: dict, response: dict) -> Classification:
    """Rebuild a Classification from its logged request/response (the call cache); multi-label too."""
    probs = response["probs"]
    shown = " ".join(f"{k}={v:.3f}" for k, v in probs.items())
    mode = "calibrated" if response.get("calibrated") else "raw"
    multi_label = bool(response.get("multi_label"))
    return Classification(
        label=response["label"],
        probs=dict(probs),
        raw=f"{response['label']} ({mode} p(yes): {shown})" if multi_label else f"{mode} p: {shown}",
        request=request,
        response=response,
        prompt_tokens=request.get("prompt_tokens"),
        completion_tokens=0,
        multi_label=multi_label,
    )
