"""Backend for any OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, OpenAI, ...).

The official client does the HTTP; retries are ours (client max_retries=0) so every
fault is counted: exponential backoff with jitter on 429/5xx/connection errors/
timeouts/malformed bodies, honouring Retry-After, within settings.max_retries.
Requests in flight are capped at concurrency_limit (the server's capacity); the cap
adapts (AIMD, labelloop.llm.limiter) when the server answers 429 or 503, or a request
times out (it still occupies the server). The request shape for a constrained answer is
negotiated once per server and model (labelloop.llm.shapes), and timeouts fit the server
(labelloop.llm.timeouts).

A multi-label task (LabelTask.multi_label) is one call per chunk too: the same shapes with the
label-set schema, its reply read by parse_label_set, and each class's probability from the
logprobs or from agreement across samples (labelloop.llm.label_sets), never a number the model
typed.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types import Completion
from openai.types.chat import ChatCompletion

from labelloop import labels as policy
from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm import label_sets
from labelloop.llm.base import Classification, Generation, LabelTask, RequestRejectedError
from labelloop.llm.parse import ParseError, parse_label_set, parse_label_span
from labelloop.llm.prompts import (
    LABELS_CUE,
    AnswerFormat,
    PromptSet,
    build_label_messages,
    correction_message,
    render_completion,
)
from labelloop.llm.limiter import AdaptiveLimit
from labelloop.llm.shapes import (
    SHAPES,
    Negotiation,
    is_context_error,
    label_schema,
    label_set_schema,
    response_format,
    shape_problem,
)
from labelloop.llm.timeouts import AdaptiveTimeout

PARSE_RETRIES = 2
SET_PARSE_RETRIES = 1  # a multi-label reply that cannot be read is asked again once, then stored unlabeled
MAX_RETRY_AFTER_S = 120.0
_RETRY_STATUS = {408, 409, 425, 429}
_OVERLOAD_STATUS = {429, 503}  # the server is full: fewer requests in flight
CONTEXT_STOP = 5  # this many too-long refusals before any success: the model cannot serve the task


class _Malformed(Exception):
    """The server answered 200 with a body we cannot use."""


class _BadRequest(Exception):
    """The server refused this request's shape, or this one request (too long)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Stats:
    attempts: int = 0
    faults: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_error: str | None = None

    def add_usage(self, resp: Any) -> None:
        usage = getattr(resp, "usage", None)
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0


@contextmanager
def _with_stats(stats: _Stats) -> Iterator[None]:
    """An LLMError leaving the block carries the attempts and faults spent on the call."""
    try:
        yield
    except LLMError as exc:
        exc.attempts, exc.faults = stats.attempts, dict(stats.faults)  # type: ignore[attr-defined]
        raise


def resolve_api_key(settings: LLMSection) -> str:
    """settings.api_key, else the variable named by api_key_env; local servers need none."""
    if settings.api_key:
        return settings.api_key
    if settings.api_key_env:
        value = os.environ.get(settings.api_key_env)
        if not value:
            raise LLMError(
                f"api_key_env is {settings.api_key_env!r} but that environment variable is not set; "
                f"export {settings.api_key_env}=<your key>, or set api_key in the model's config section"
            )
        return value
    return "not-needed"


def is_local_url(url: str) -> bool:
    """True for a server on this machine or a private network (loopback, 10/8, 172.16/12, 192.168/16, .local)."""
    import ipaddress
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    if host in ("localhost", "host.docker.internal") or host.endswith((".local", ".internal", ".lan")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare name (a compose service, a LAN host) is on this network
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _dump(resp: Any) -> Any:
    return resp.model_dump(mode="json", exclude_none=True) if hasattr(resp, "model_dump") else resp


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
        self.use_stop = use_stop
        self.prompts = prompts or PromptSet()
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._api_key = resolve_api_key(settings)
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: AsyncOpenAI | None = None
        self._negotiating: asyncio.Lock | None = None
        self.limiter = AdaptiveLimit(max(1, concurrency_limit), adaptive=adaptive)
        # The long first-call probe is for servers on this machine or this network (a local model on a few
        # cores can take minutes for its first answer); a remote API keeps its plain timeout.
        probe = probe_timeout_s if probe_timeout_s is not None and is_local_url(self.base_url) else 0.0
        self.timeouts = AdaptiveTimeout(float(settings.timeout_s or timeout_s), probe_s=probe)
        self.negotiation = Negotiation(allowed=self._allowed_shapes())
        self._context_refusals = 0
        self._answered = 0
        self.on_negotiated = None  # called with shape_state() once a shape works (the loop saves it at once)
        self.identity = f"api {self.base_url} model={self.model}" + (" completion" if completion_mode else "")

    def _allowed_shapes(self) -> tuple[str, ...]:
        """The shapes this backend may try: the setting's, and only text where the reply must be free."""
        if self.completion_mode or self.prompts.answer_style == "index":
            return ("text",)  # completions have no response_format; Augmentoolkit's prompt wants reasoning
        chosen = self.settings.structured_output
        if chosen == "auto":
            return SHAPES
        if chosen == "none":
            return ("text",)
        return (chosen,)

    @property
    def cache_params(self) -> dict:
        """What besides the task changes the answer (part of the cache key): the prompt, and the shape asked for."""
        s = self.settings
        return {"temperature": s.temperature, "samples": s.samples, "structured_output": s.structured_output,
                "prompts": self.prompts.fingerprint, "max_tokens": s.max_tokens,
                "shape": self.negotiation.shape, "logprobs": self.negotiation.logprobs}

    def cache_params_for(self, task: LabelTask) -> dict:
        """cache_params for this task: a multi-label task's prompt fingerprint covers its own templates.

        (A single-label task's is cache_params itself, so its keys stay as they were.)
        """
        params = self.cache_params
        if task.multi_label:
            params = {**params, "prompts": self.prompts.multi_fingerprint}
        return params

    # ------------------------------------------------------------ what the server takes, remembered

    @property
    def shape_key(self) -> str:
        """Where the project file keeps this server's negotiated shape."""
        return f"request_shape {self.identity}"

    def restore_shape(self, state: dict | None) -> None:
        """Use a shape negotiated by an earlier run (from the project file): no new negotiation."""
        if state:
            self.negotiation = Negotiation.restore(state, self._allowed_shapes())

    def shape_state(self) -> dict:
        return self.negotiation.to_dict()

    def take_notes(self) -> list[str]:
        """Lines worth one print each (the shape in use and why, widened timeouts), then forgotten."""
        notes = self.negotiation.notes + self.timeouts.notes
        self.negotiation.notes, self.timeouts.notes = [], []
        return [f"{self.identity}: {n}" for n in notes]

    # ------------------------------------------------------------ plumbing

    def _state(self) -> tuple[AsyncOpenAI, AdaptiveLimit]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None:
            self._loop = loop
            # Plain http needs no TLS context (building one costs ~40 ms per event loop).
            http = openai.DefaultAsyncHttpxClient(verify=False) if self.base_url.startswith("http://") else None
            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, http_client=http,
                                       timeout=self.timeouts.base, max_retries=0)
            self._negotiating = asyncio.Lock()
        return self._client, self.limiter

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            except RuntimeError:
                pass
            self._client = None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * self._rng.uniform(0.5, 1.0)

    async def _send(self, body: dict, stats: _Stats, kind: str = "label") -> Any:
        """One request with our retry loop; returns the parsed response or raises."""
        client, limiter = self._state()
        # client.post, not chat.completions.create: the body is already plain JSON, and create()'s
        # typed-dict transform of it took ~3.5 of the ~7.5 ms of client CPU per labeled chunk.
        path, cast_to = ("/completions", Completion) if self.completion_mode else ("/chat/completions", ChatCompletion)
        retries = self.settings.max_retries
        timeouts = 0
        for attempt in range(retries + 1):
            stats.attempts += 1
            wait: float | None = None
            timeout = self.timeouts.for_attempt(kind, timeouts)
            try:
                async with limiter.slot() as slot:
                    start = time.perf_counter()
                    try:
                        resp = await client.post(path, body=body, cast_to=cast_to, options={"timeout": timeout})
                    except openai.APIStatusError as exc:
                        if exc.status_code in _OVERLOAD_STATUS:
                            slot.overloaded()
                        raise
                    except openai.APITimeoutError:
                        slot.overloaded()  # the server is still working on it: fewer in flight, not one more
                        raise
                if not getattr(resp, "choices", None):
                    raise _Malformed("the response has no choices")
                self._text(resp)
                stats.add_usage(resp)
                self.timeouts.answered(kind, time.perf_counter() - start)
                return resp
            except openai.APIStatusError as exc:
                code = exc.status_code
                if shape_problem(code, exc.message) is not None or (code in (400, 413, 422)):
                    raise _BadRequest(code, exc.message) from None
                if code in _RETRY_STATUS or code >= 500:
                    stats.faults[f"http_{code}"] += 1
                    stats.last_error = f"HTTP {code}: {exc.message}"
                    after = _retry_after(exc.response)
                    wait = None if after is None else min(after, MAX_RETRY_AFTER_S)
                elif code == 404:
                    raise await self._not_found(exc) from None
                elif code in (401, 403):
                    where = f"the variable {self.settings.api_key_env}" if self.settings.api_key_env else "api_key"
                    raise LLMError(
                        f"the server at {self.base_url} refused the API key (HTTP {code}: {exc.message}); "
                        f"check {where} for model {self.model}"
                    ) from None
                else:
                    raise RequestRejectedError(
                        f"the server at {self.base_url} refused the request for model {self.model} "
                        f"(HTTP {code}: {exc.message})"
                    ) from None
            except openai.APITimeoutError:
                stats.faults["timeout"] += 1
                timeouts += 1
                stats.last_error = f"no answer within {timeout:g} s"
                # A single-slot server is still busy with the abandoned request: give it that long again.
                wait = min(timeout, self.max_backoff_s * 4)
            except openai.APIConnectionError as exc:
                stats.faults["connection"] += 1
                cause = exc.__cause__ or exc
                stats.last_error = f"connection failed ({type(cause).__name__}: {cause})"
            except (_Malformed, ValueError, openai.APIResponseValidationError) as exc:
                stats.faults["malformed"] += 1
                stats.last_error = f"malformed response body ({type(exc).__name__}: {exc})"
            if attempt < retries:
                await asyncio.sleep(wait if wait is not None else self._backoff(attempt))
        raise LLMError(self._gave_up(stats))

    def _gave_up(self, stats: _Stats) -> str:
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(stats.faults.items()))
        head = (f"the LLM server at {self.base_url} (model {self.model}) failed {stats.attempts} attempt(s) "
                f"[{faults}]; last: {stats.last_error}. ")
        if set(stats.faults) <= {"connection"}:
            return head + ("Check that the server is running and that base_url is right "
                           "(it usually ends in /v1), then run again: finished calls are cached.")
        if "timeout" in stats.faults:
            return head + ("The server is too slow for the timeout; raise timeout_s (per model, or system.timeout_s) "
                           "or lower system.concurrency_limit, then run again: finished calls are cached.")
        return head + ("The server keeps failing; try again later, raise max_retries or lower "
                       "system.concurrency_limit. Finished calls are cached.")

    async def _not_found(self, exc: openai.APIStatusError) -> LLMError:
        client, _ = self._state()
        try:
            page = await client.models.list()
            names = sorted(m.id for m in page.data)
        except Exception as list_exc:  # noqa: BLE001 - we only add a hint
            return LLMError(
                f"the server at {self.base_url} answered 404 for model {self.model!r} ({exc.message}), and its "
                f"model list could not be read either ({type(list_exc).__name__}); check base_url "
                "(OpenAI-compatible servers usually end in /v1) and the model name"
            )
        return LLMError(
            f"model {self.model!r} is not served at {self.base_url} ({exc.message}); the server offers: "
            f"{', '.join(names) or '(none)'}. Set `model` in small_model/large_model (or api.small_model / "
            "api.large_model) to one of them"
        )

    # ------------------------------------------------------------ requests

    def _body(self, messages: list[dict], classes: Sequence[str], fmt: AnswerFormat,
              temperature: float | None = None, logprobs: bool = True, multi: bool = False) -> dict:
        """The request body; multi asks for a label set (its schema, or the `Labels:` cue)."""
        s = self.settings
        body: dict[str, Any] = {"model": self.model, "max_tokens": s.max_tokens,
                                "temperature": s.temperature if temperature is None else temperature}
        want_lp = logprobs and self.negotiation.logprobs
        if self.completion_mode:
            cue = LABELS_CUE if multi else "Final label:"
            body["prompt"] = render_completion(messages, cue if classes else None)
            if classes and self.use_stop:
                body["stop"] = ["\n"]
            if want_lp and classes:
                body["logprobs"] = min(20, max(5, len(classes)))
            return body
        body["messages"] = messages
        if classes and fmt == "json":
            schema, name = (label_set_schema(classes), "label_set") if multi else (label_schema(classes), "label")
            rf = response_format(self.negotiation.shape, schema, name)
            if rf is not None:
                body["response_format"] = rf
        if want_lp and classes:
            body["logprobs"] = True
            body["top_logprobs"] = min(20, max(5, len(classes)))
        return body

    def _text(self, resp: Any) -> str:
        choice = resp.choices[0]
        if self.completion_mode:
            text = getattr(choice, "text", None)
        else:
            message = getattr(choice, "message", None)
            text = getattr(message, "content", None) if message is not None else None
        if text is None:
            raise _Malformed("the first choice has no text")
        return text

    def _fmt(self) -> AnswerFormat:
        if self.prompts.answer_style == "index":
            return "index"  # the user's Augmentoolkit prompt asks for reasoning, then `Final label: <index>`
        return "text" if self.negotiation.shape == "text" else "json"

    async def generate(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Generation:
        """Free text (rules); max_tokens and temperature as given."""
        stats = _Stats()
        body = self._body(messages, (), "text", temperature=temperature, logprobs=False)
        body["max_tokens"] = max_tokens
        with _with_stats(stats):
            return await self._generate(body, stats)

    async def _generate(self, body: dict, stats: _Stats) -> Generation:
        try:
            resp = await self._send(body, stats, kind="text")
            text = self._text(resp)
        except _BadRequest as exc:
            raise RequestRejectedError(
                f"the server at {self.base_url} refused the request for model {self.model} "
                f"(HTTP {exc.status}: {exc.message})") from None
        except _Malformed as exc:
            raise LLMError(f"the server at {self.base_url} (model {self.model}) gave an unusable answer: {exc}") from None
        return Generation(text=text, request=body, response=_dump(resp), prompt_tokens=stats.prompt_tokens,
                          completion_tokens=stats.completion_tokens, attempts=stats.attempts,
                          faults=dict(stats.faults))

    async def classify(self, task: LabelTask) -> Classification:
        """Label one chunk: structured output where it works, logprob confidence, parse-error retries."""
        stats = _Stats()
        with _with_stats(stats):
            return await self._classify_shapes(task, stats)

    async def _classify_shapes(self, task: LabelTask, stats: _Stats) -> Classification:
        """Until the server has answered once, one request at a time finds the shape it takes."""
        self._state()
        if not self.negotiation.settled:
            async with self._negotiating:
                if not self.negotiation.settled:  # the first request finds the shape; the rest wait for it
                    return await self._classify_negotiating(task, stats)
        return await self._classify_negotiating(task, stats)

    async def _classify_negotiating(self, task: LabelTask, stats: _Stats) -> Classification:
        while True:
            fmt = self._fmt()
            try:
                if task.multi_label:
                    result = await self._classify_set(task, fmt, stats)
                else:
                    result = await self._classify(task, fmt, stats)
            except _BadRequest as exc:
                if is_context_error(exc.message):
                    raise self._too_long(exc) from None
                problem = shape_problem(exc.status, exc.message) or "format"
                if self.negotiation.step_down(problem, exc.status, exc.message):
                    continue  # a shape problem, not a fault: the next shape at once, no retry
                raise RequestRejectedError(
                    f"the server at {self.base_url} refused every request shape for model {self.model}, plain text "
                    f"included (last: HTTP {exc.status}: {exc.message}); check the server's log") from None
            self._answered += 1
            if self.negotiation.settle():
                self.negotiation.notes.append(f"labels are asked for as {self.negotiation.describe()}")
                if self.on_negotiated is not None:
                    self.on_negotiated(self.shape_state())
            return result

    def _too_long(self, exc: _BadRequest) -> LLMError:
        """One chunk too long is that chunk's problem; many before any answer is the model's."""
        self._context_refusals += 1
        hint = ("lower system.chunk_size (or use fewer review.few_shot_per_class examples), or serve the model with a "
                "larger context window (llama.cpp: --n_ctx / -c; vLLM: --max-model-len)")
        if self._answered == 0 and self._context_refusals >= CONTEXT_STOP:
            return LLMError(
                f"the model {self.model} at {self.base_url} refused the first {self._context_refusals} labeling "
                f"prompts as too long for its context window (HTTP {exc.status}: {exc.message}); {hint}")
        return RequestRejectedError(
            f"the server at {self.base_url} refused the request for model {self.model} "
            f"(HTTP {exc.status}: {exc.message}); the document is too long for the model: {hint}")

    async def _until_readable(self, messages: list[dict], classes: list[str], fmt: AnswerFormat, stats: _Stats,
                              read: Callable[[str], Any], rounds: int,
                              multi: bool = False) -> tuple[Any, str, str, Any, dict]:
        """Ask; while a reply cannot be read, show the model why and ask again, `rounds` replies at most.

        Returns (what read() found or None, the last reply, the last parse error, response, body).
        """
        raw, error, resp, body = "", "", None, {}
        for _round in range(rounds):
            body = self._body(messages, classes, fmt, multi=multi)
            try:
                resp = await self._send(body, stats, kind="label")
                raw = self._text(resp)
            except _Malformed as exc:
                raise LLMError(f"the server at {self.base_url} (model {self.model}) gave an unusable answer: {exc}") from None
            try:
                return read(raw), raw, "", resp, body
            except ParseError as exc:
                error = str(exc)
                messages = [*messages, {"role": "assistant", "content": raw},
                            correction_message(error, classes, fmt, self.prompts, multi_label=multi)]
        return None, raw, error, resp, body

    async def _classify(self, task: LabelTask, fmt: AnswerFormat, stats: _Stats) -> Classification:
        classes = list(task.classes)
        first = build_label_messages(task, fmt, self.prompts)
        found, raw, error, resp, body = await self._until_readable(
            first, classes, fmt, stats, lambda raw: _parse(raw, classes, fmt), 1 + PARSE_RETRIES)
        common = dict(request=body, response=_dump(resp), prompt_tokens=stats.prompt_tokens,
                      completion_tokens=stats.completion_tokens)
        if found is None:
            return Classification(label=None, probs=None, raw=raw,
                                  reason=f"no class in {1 + PARSE_RETRIES} replies; last problem: {error}",
                                  attempts=stats.attempts, faults=dict(stats.faults), **common)
        label, offset, names = found
        probs = self._logprob_probs(resp, raw, label, offset, classes, names)
        if probs is None and self.settings.samples > 1:
            label, probs = await self._agreement(first, classes, fmt, label, stats)
            common.update(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens)
        return Classification(label=label, probs=probs, raw=raw, attempts=stats.attempts,
                              faults=dict(stats.faults), **common)

    async def _agreement(self, messages: list[dict], classes: list[str], fmt: AnswerFormat,
                         label: str, stats: _Stats) -> tuple[str, dict[str, float]]:
        """k samples (the first is the answer already given): label by majority, probs by share."""
        temperature = max(self.settings.temperature, 0.7)
        votes: Counter[str] = Counter({label: 1})

        async def one() -> str | None:
            body = self._body(messages, classes, fmt, temperature=temperature, logprobs=False)
            try:
                return _parse(self._text(await self._send(body, stats)), classes, fmt)[0]
            except (ParseError, _Malformed):
                return None

        for answer in await asyncio.gather(*(one() for _ in range(self.settings.samples - 1))):
            if answer is not None:
                votes[answer] += 1
        total = sum(votes.values())
        best = max(votes.values())
        winner = label if votes[label] == best else sorted(c for c in votes if votes[c] == best)[0]
        return winner, {c: votes.get(c, 0) / total for c in classes}

    async def _classify_set(self, task: LabelTask, fmt: AnswerFormat, stats: _Stats) -> Classification:
        """Label one chunk with a set of classes (possibly none): one call, read by parse_label_set.

        An unreadable reply is asked again once with the error shown, then stored unlabeled with
        its raw text. Per-class probabilities: logprobs, else agreement across samples, else None.
        """
        classes = list(task.classes)
        first = build_label_messages(task, fmt, self.prompts)
        chosen, raw, error, resp, body = await self._until_readable(
            first, classes, fmt, stats, lambda raw: parse_label_set(raw, classes), 1 + SET_PARSE_RETRIES,
            multi=True)
        common = {"request": body, "response": _dump(resp), "multi_label": True}
        if chosen is None:
            return Classification(label=None, probs=None, raw=raw,
                                  reason=f"no label set in {1 + SET_PARSE_RETRIES} replies; last problem: {error}",
                                  prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                                  attempts=stats.attempts, faults=dict(stats.faults), **common)
        tokens = _token_alternatives(resp.choices[0], self.completion_mode) if resp is not None else []
        probs = label_sets.probs_from_logprobs(tokens, raw, chosen, classes)
        if probs is None and self.settings.samples > 1:
            chosen, probs = await self._set_agreement(first, classes, fmt, chosen, stats)
        return Classification(label=policy.encode_set(chosen, classes), probs=probs, raw=raw,
                              prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                              attempts=stats.attempts, faults=dict(stats.faults), **common)

    async def _set_agreement(self, messages: list[dict], classes: list[str], fmt: AnswerFormat,
                             chosen: list[str], stats: _Stats) -> tuple[list[str], dict[str, float]]:
        """k samples (the first is the answer already given): each class's share of the sets holding it."""
        temperature = max(self.settings.temperature, 0.7)

        async def one() -> list[str] | None:
            body = self._body(messages, classes, fmt, temperature=temperature, logprobs=False, multi=True)
            try:
                return parse_label_set(self._text(await self._send(body, stats)), classes)
            except (ParseError, _Malformed):
                return None

        others = await asyncio.gather(*(one() for _ in range(self.settings.samples - 1)))
        return label_sets.agreement(chosen, others, classes)

    def _logprob_probs(self, resp: Any, raw: str, label: str, offset: int | None,
                       classes: list[str], names: list[str]) -> dict[str, float] | None:
        """Class probabilities from the top logprobs of the answer's first token, if the server sent them.

        names[i] is how the reply writes class i: its name, or its index in Augmentoolkit's style.
        """
        if offset is None or resp is None:
            return None
        tokens = _token_alternatives(resp.choices[0], self.completion_mode)
        if not tokens:
            return None
        pos, index = 0, None
        for i, (tok, _lp, _alts) in enumerate(tokens):
            if pos <= offset < pos + len(tok) or (pos >= offset and tok.strip()):
                index = i
                break
            pos += len(tok)
        if index is None:
            return None
        tok, lp, alts = tokens[index]
        if not alts:
            alts = [(tok, lp)]
        mass: dict[str, float] = {c: 0.0 for c in classes}
        emitted = _clean_token(tok)
        for alt, alt_lp in alts:
            t = _clean_token(alt)
            if not t or alt_lp is None:
                continue
            matches = [c for c, name in zip(classes, names) if name.lower().startswith(t)]
            if not matches:
                continue
            if label in matches and t == emitted:
                matches = [label]
            for c in matches:
                mass[c] += math.exp(alt_lp) / len(matches)
        total = sum(mass.values())
        if total <= 0 or mass[label] <= 0:
            return None
        return {c: m / total for c, m in mass.items()}


def _parse(raw: str, classes: list[str], fmt: AnswerFormat) -> tuple[str, int | None, list[str]]:
    """(label, offset of its answer in raw, how the reply names each class) or ParseError."""
    if fmt == "index":
        from labelloop.llm.message_files import final_label_span

        found = final_label_span(raw, classes)
        if found is None:
            raise ParseError(
                f"no `Final label: <index>` line names one of the classes "
                f"{', '.join(f'{i}. {c}' for i, c in enumerate(classes))}"
            )
        label, offset, said = found
        by_index = said.isdigit()
        return label, offset, [str(i) for i in range(len(classes))] if by_index else list(classes)
    label, offset = parse_label_span(raw, classes)
    return label, offset, list(classes)


def _clean_token(token: str) -> str:
    return token.strip(" \t\n\"'`*:{[").lower()


def _token_alternatives(choice: Any, completion_mode: bool) -> list[tuple[str, float | None, list[tuple[str, float]]]]:
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return []
    if completion_mode:
        toks = getattr(lp, "tokens", None) or []
        lps = getattr(lp, "token_logprobs", None) or [None] * len(toks)
        tops = getattr(lp, "top_logprobs", None) or [{}] * len(toks)
        return [(t, p, list((top or {}).items())) for t, p, top in zip(toks, lps, tops, strict=False)]
    content = getattr(lp, "content", None) or []
    return [(c.token, c.logprob, [(a.token, a.logprob) for a in (c.top_logprobs or [])]) for c in content]

