"""Backend for any OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, OpenAI, ...).

The parts, one job each:

- labelloop.llm.openai_transport: one request with our retries, every fault counted, the in-flight
  limit (labelloop.llm.limiter) and timeouts (labelloop.llm.timeouts) that fit the server;
- labelloop.llm.openai_requests: request bodies, and the request shape negotiated once per server
  and model (labelloop.llm.shapes);
- labelloop.llm.openai_answers: reading the reply, the label in it, probabilities from logprobs.

This module asks for a label: a reply that cannot be read is shown to the model and asked again,
and probabilities come from the logprobs or from agreement across samples, never a number the
model typed. A multi-label task (LabelTask.multi_label) is one call per chunk too: the same shapes
with the label-set schema, its reply read by parse_label_set, and each class's probability from the
logprobs or from agreement across samples (labelloop.llm.label_sets).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from labelloop import labels as policy
from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm import label_sets
from labelloop.llm.base import Classification, Generation, LabelTask, RequestRejectedError
from labelloop.llm.limiter import AdaptiveLimit
from labelloop.llm.openai_answers import dump, logprob_probs, parse_answer, reply_text, token_alternatives
from labelloop.llm.openai_requests import Requests
from labelloop.llm.openai_transport import BadRequest, Stats, Transport, is_local_url, resolve_api_key, with_stats
from labelloop.llm.parse import ParseError, parse_label_set
from labelloop.llm.prompts import AnswerFormat, PromptSet, build_label_messages, correction_message
from labelloop.llm.shapes import Negotiation
from labelloop.llm.timeouts import AdaptiveTimeout

__all__ = ["OpenAIBackend", "PARSE_RETRIES", "is_local_url", "resolve_api_key"]

PARSE_RETRIES = 2
SET_PARSE_RETRIES = 1  # a multi-label reply that cannot be read is asked again once, then stored unlabeled
CONTEXT_STOP = 5  # this many too-long refusals before any success: the model cannot serve the task


class OpenAIBackend:
    """Labels and generates through an OpenAI-compatible server, at most concurrency_limit at a time."""

    def __init__(
        self,
        settings: LLMSection,
        concurrency_limit: int,
        completion_mode: bool = False,
        use_stop: bool = True,
        *,
        prompts: PromptSet | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        adaptive: bool = True,
        timeout_s: float = 60.0,
        probe_timeout_s: float | None = None,
    ):
        if not settings.base_url:
            raise LLMError("mode 'api' needs base_url; set it to your server, e.g. http://127.0.0.1:8000/v1")
        if not settings.model:
            raise LLMError(
                f"no model name for the server at {settings.base_url}; set `model` in small_model/large_model "
                "(or api.small_model / api.large_model) to a model the server serves"
            )
        self.settings = settings
        self.model = settings.model
        self.base_url = settings.base_url.rstrip("/")
        self.concurrency_limit = concurrency_limit
        self.completion_mode = completion_mode
        self.prompts = prompts or PromptSet()
        self.limiter = AdaptiveLimit(max(1, concurrency_limit), adaptive=adaptive)
        # The long first-call probe is for servers on this machine or this network (a local model on a few
        # cores can take minutes for its first answer); a remote API keeps its plain timeout.
        probe = probe_timeout_s if probe_timeout_s is not None and is_local_url(self.base_url) else 0.0
        self.timeouts = AdaptiveTimeout(float(settings.timeout_s or timeout_s), probe_s=probe)
        self.transport = Transport(settings, completion_mode=completion_mode, limiter=self.limiter,
                                   timeouts=self.timeouts, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self.requests = Requests(settings, self.prompts, completion_mode=completion_mode, use_stop=use_stop)
        self._negotiating: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._context_refusals = 0
        self._answered = 0
        self.on_negotiated = None  # called with shape_state() once a shape works (the loop saves it at once)
        self.identity = f"api {self.base_url} model={self.model}" + (" completion" if completion_mode else "")

    @property
    def negotiation(self) -> Negotiation:
        return self.requests.negotiation

    @property
    def cache_params(self) -> dict:
        """What besides the task changes the answer (part of the cache key): the prompt, and the shape asked for."""
        return self.requests.cache_params

    def cache_params_for(self, task: LabelTask) -> dict:
        return self.requests.cache_params_for(task)

    # ------------------------------------------------------------ what the server takes, remembered

    @property
    def shape_key(self) -> str:
        """Where the project file keeps this server's negotiated shape."""
        return f"request_shape {self.identity}"

    def restore_shape(self, state: dict | None) -> None:
        """Use a shape negotiated by an earlier run (from the project file): no new negotiation."""
        self.requests.restore(state)

    def shape_state(self) -> dict:
        return self.negotiation.to_dict()

    def take_notes(self) -> list[str]:
        """Lines worth one print each (the shape in use and why, widened timeouts), then forgotten."""
        notes = self.negotiation.notes + self.timeouts.notes
        self.negotiation.notes, self.timeouts.notes = [], []
        return [f"{self.identity}: {n}" for n in notes]

    # ------------------------------------------------------------ plumbing

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _text(self, resp: Any) -> str:
        return reply_text(resp, self.completion_mode)

    def _body(self, *args, **kwargs) -> dict:
        return self.requests.body(*args, **kwargs)

    def _refused(self, exc: BadRequest) -> RequestRejectedError:
        return RequestRejectedError(f"the server at {self.base_url} refused the request for model {self.model} "
                                    f"(HTTP {exc.status}: {exc.message})")

    # ------------------------------------------------------------ free text

    async def generate(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Generation:
        """Free text (rules); max_tokens and temperature as given."""
        stats = Stats()
        body = self._body(messages, (), "text", temperature=temperature, logprobs=False)
        body["max_tokens"] = max_tokens
        with with_stats(stats):
            try:
                resp = await self.transport.send(body, stats, kind="text")
            except BadRequest as exc:
                raise self._refused(exc) from None
            return Generation(text=self._text(resp), request=body, response=dump(resp),
                              prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                              attempts=stats.attempts, faults=dict(stats.faults))

    # ------------------------------------------------------------ labels

    async def classify(self, task: LabelTask) -> Classification:
        """Label one chunk: structured output where it works, logprob confidence, parse-error retries."""
        stats = Stats()
        with with_stats(stats):
            return await self._classify_shapes(task, stats)

    async def _classify_shapes(self, task: LabelTask, stats: Stats) -> Classification:
        """Until the server has answered once, one request at a time finds the shape it takes."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop or self._negotiating is None:
            self._lock_loop, self._negotiating = loop, asyncio.Lock()
        if not self.negotiation.settled:
            async with self._negotiating:
                if not self.negotiation.settled:  # the first request finds the shape; the rest wait for it
                    return await self._classify_negotiating(task, stats)
        return await self._classify_negotiating(task, stats)

    async def _classify_negotiating(self, task: LabelTask, stats: Stats) -> Classification:
        def attempt(fmt: AnswerFormat):
            return self._classify_set(task, fmt, stats) if task.multi_label else self._classify(task, fmt, stats)

        result = await self.requests.negotiated(attempt, self._too_long,
                                                f"the server at {self.base_url} (model {self.model})")
        self._answered += 1
        if self.negotiation.settle():
            self.negotiation.notes.append(f"labels are asked for as {self.negotiation.describe()}")
            if self.on_negotiated is not None:
                self.on_negotiated(self.shape_state())
        return result

    def _too_long(self, exc: BadRequest) -> LLMError:
        """One chunk too long is that chunk's problem; many before any answer is the model's."""
        self._context_refusals += 1
        hint = ("lower system.chunk_size (or use fewer review.few_shot_per_class examples, or a smaller doc_chars), "
                "or serve the model with a larger context window (llama.cpp: --n_ctx / -c; vLLM: --max-model-len)")
        if self._answered == 0 and self._context_refusals >= CONTEXT_STOP:
            return LLMError(
                f"the model {self.model} at {self.base_url} refused the first {self._context_refusals} labeling "
                f"prompts as too long for its context window (HTTP {exc.status}: {exc.message}); {hint}")
        return RequestRejectedError(
            f"the server at {self.base_url} refused the request for model {self.model} "
            f"(HTTP {exc.status}: {exc.message}); the document is too long for the model: {hint}")

    async def _until_readable(self, messages: list[dict], classes: list[str], fmt: AnswerFormat, stats: Stats,
                              read: Callable[[str], Any], rounds: int,
                              multi: bool = False) -> tuple[Any, str, str, Any, dict]:
        """Ask; while a reply cannot be read, show the model why and ask again, `rounds` replies at most.

        Returns (what read() found or None, the last reply, the last parse error, response, body).
        """
        raw, error, resp, body = "", "", None, {}
        for _round in range(rounds):
            body = self._body(messages, classes, fmt, multi=multi)
            resp = await self.transport.send(body, stats, kind="label")
            raw = self._text(resp)
            try:
                return read(raw), raw, "", resp, body
            except ParseError as exc:
                error = str(exc)
                messages = [*messages, {"role": "assistant", "content": raw},
                            correction_message(error, classes, fmt, self.prompts, multi_label=multi)]
        return None, raw, error, resp, body

    async def _classify(self, task: LabelTask, fmt: AnswerFormat, stats: Stats) -> Classification:
        classes = list(task.classes)
        first = build_label_messages(task, fmt, self.prompts)
        found, raw, error, resp, body = await self._until_readable(
            first, classes, fmt, stats, lambda raw: parse_answer(raw, classes, fmt), 1 + PARSE_RETRIES)
        common = dict(request=body, response=dump(resp), prompt_tokens=stats.prompt_tokens,
                      completion_tokens=stats.completion_tokens)
        if found is None:
            return Classification(label=None, probs=None, raw=raw,
                                  reason=f"no class in {1 + PARSE_RETRIES} replies; last problem: {error}",
                                  attempts=stats.attempts, faults=dict(stats.faults), **common)
        label, offset, names = found
        tokens = token_alternatives(resp.choices[0], self.completion_mode)
        probs = logprob_probs(tokens, label, offset, classes, names)
        if probs is None and self.settings.samples > 1:
            label, probs = await self._agreement(first, classes, fmt, label, stats)
            common.update(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens)
        return Classification(label=label, probs=probs, raw=raw, attempts=stats.attempts,
                              faults=dict(stats.faults), **common)

    async def _sample(self, messages: list[dict], classes: list[str], fmt: AnswerFormat, stats: Stats,
                      read: Callable[[str], Any], multi: bool = False) -> Any:
        """One extra sample at a higher temperature, read by read(); None when it cannot be read."""
        body = self._body(messages, classes, fmt, temperature=max(self.settings.temperature, 0.7), logprobs=False,
                          multi=multi)
        try:
            return read(self._text(await self.transport.send(body, stats)))
        except ParseError:
            return None

    async def _agreement(self, messages: list[dict], classes: list[str], fmt: AnswerFormat,
                         label: str, stats: Stats) -> tuple[str, dict[str, float]]:
        """k samples (the first is the answer already given): label by majority, probs by share."""
        votes: Counter[str] = Counter({label: 1})
        answers = await asyncio.gather(*(
            self._sample(messages, classes, fmt, stats, lambda raw: parse_answer(raw, classes, fmt)[0])
            for _ in range(self.settings.samples - 1)))
        for answer in answers:
            if answer is not None:
                votes[answer] += 1
        total = sum(votes.values())
        best = max(votes.values())
        winner = label if votes[label] == best else sorted(c for c in votes if votes[c] == best)[0]
        return winner, {c: votes.get(c, 0) / total for c in classes}

    async def _classify_set(self, task: LabelTask, fmt: AnswerFormat, stats: Stats) -> Classification:
        """Label one chunk with a set of classes (possibly none): one call, read by parse_label_set.

        An unreadable reply is asked again once with the error shown, then stored unlabeled with
        its raw text. Per-class probabilities: logprobs, else agreement across samples, else None.
        With task.thresholds the set is the classes whose probability reaches their threshold.
        """
        classes = list(task.classes)
        first = build_label_messages(task, fmt, self.prompts)
        chosen, raw, error, resp, body = await self._until_readable(
            first, classes, fmt, stats, lambda raw: parse_label_set(raw, classes), 1 + SET_PARSE_RETRIES,
            multi=True)
        common = {"request": body, "response": dump(resp), "multi_label": True}
        if chosen is None:
            return Classification(label=None, probs=None, raw=raw,
                                  reason=f"no label set in {1 + SET_PARSE_RETRIES} replies; last problem: {error}",
                                  prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                                  attempts=stats.attempts, faults=dict(stats.faults), **common)
        tokens = token_alternatives(resp.choices[0], self.completion_mode) if resp is not None else []
        probs = label_sets.probs_from_logprobs(tokens, raw, chosen, classes)
        if probs is None and self.settings.samples > 1:
            others = await asyncio.gather(*(
                self._sample(first, classes, fmt, stats, lambda raw: parse_label_set(raw, classes), multi=True)
                for _ in range(self.settings.samples - 1)))
            chosen, probs = label_sets.agreement(chosen, others, classes)
        if probs is not None and task.thresholds is not None:
            chosen = label_sets.thresholded(probs, classes, task.thresholds)
        return Classification(label=policy.encode_set(chosen, classes), probs=probs, raw=raw,
                              prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                              attempts=stats.attempts, faults=dict(stats.faults), **common)
