"""Transport to an OpenAI-compatible server: one request with our retries, every fault counted.

The official client does the HTTP; retries are ours (client max_retries=0): exponential backoff
with jitter on 429/5xx/connection errors/timeouts/malformed bodies, honouring Retry-After, within
settings.max_retries. Requests in flight are capped by the adaptive limit (labelloop.llm.limiter),
which shrinks when the server answers 429 or 503, or a request times out (it still occupies the
server). Only the server's faults are caught: an error raised by labelloop's own code is a bug and
leaves as it is.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types import Completion
from openai.types.chat import ChatCompletion

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm.base import RequestRejectedError
from labelloop.llm.limiter import AdaptiveLimit
from labelloop.llm.openai_answers import Malformed, reply_text, token_count
from labelloop.llm.shapes import shape_problem
from labelloop.llm.timeouts import AdaptiveTimeout

MAX_RETRY_AFTER_S = 120.0
_RETRY_STATUS = {408, 409, 425, 429}
_OVERLOAD_STATUS = {429, 503}  # the server is full: fewer requests in flight


class BadRequest(Exception):
    """The server refused this request's shape, or this one request (too long)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Stats:
    """What one labeling or generation call spent: attempts, faults by kind, tokens."""

    attempts: int = 0
    faults: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_error: str | None = None

    def add_usage(self, resp: Any) -> None:
        usage = getattr(resp, "usage", None)
        if usage is not None:
            self.prompt_tokens += token_count(usage, "prompt_tokens")
            self.completion_tokens += token_count(usage, "completion_tokens")


@contextmanager
def with_stats(stats: Stats) -> Iterator[None]:
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
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


class Transport:
    """Sends request bodies to one server and model, at most the limiter's count at a time."""

    def __init__(self, settings: LLMSection, *, completion_mode: bool, limiter: AdaptiveLimit,
                 timeouts: AdaptiveTimeout, backoff_s: float, max_backoff_s: float):
        self.settings = settings
        self.model = settings.model
        self.base_url = (settings.base_url or "").rstrip("/")
        self.completion_mode = completion_mode
        self.limiter = limiter
        self.timeouts = timeouts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._api_key = resolve_api_key(settings)
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: AsyncOpenAI | None = None

    def client(self) -> AsyncOpenAI:
        """The client for the running event loop (a new loop gets a new client)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None:
            self._loop = loop
            # Plain http needs no TLS context (building one costs ~40 ms per event loop).
            http = openai.DefaultAsyncHttpxClient(verify=False) if self.base_url.startswith("http://") else None
            self._client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, http_client=http,
                                       timeout=self.timeouts.base, max_retries=0)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            except RuntimeError:
                pass
            self._client = None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * self._rng.uniform(0.5, 1.0)

    async def send(self, body: dict, stats: Stats, kind: str = "label") -> Any:
        """One request with our retry loop; returns the response (its reply text readable) or raises."""
        client, limiter = self.client(), self.limiter
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
                reply_text(resp, self.completion_mode)
            except openai.APIStatusError as exc:
                wait = await self._status_fault(exc, stats)
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
            except (Malformed, json.JSONDecodeError, openai.APIResponseValidationError) as exc:
                stats.faults["malformed"] += 1
                stats.last_error = f"malformed response body ({type(exc).__name__}: {exc})"
            else:
                stats.add_usage(resp)
                self.timeouts.answered(kind, time.perf_counter() - start)
                return resp
            if attempt < retries:
                await asyncio.sleep(wait if wait is not None else self._backoff(attempt))
        raise LLMError(self._gave_up(stats))

    async def _status_fault(self, exc: openai.APIStatusError, stats: Stats) -> float | None:
        """A retryable HTTP error is counted (returns the wait the server asked for); any other raises."""
        code = exc.status_code
        if shape_problem(code, exc.message) is not None or (code in (400, 413, 422)):
            raise BadRequest(code, exc.message) from None
        if code in _RETRY_STATUS or code >= 500:
            stats.faults[f"http_{code}"] += 1
            stats.last_error = f"HTTP {code}: {exc.message}"
            after = _retry_after(exc.response)
            return None if after is None else min(after, MAX_RETRY_AFTER_S)
        if code == 404:
            raise await self._not_found(exc) from None
        if code in (401, 403):
            where = f"the variable {self.settings.api_key_env}" if self.settings.api_key_env else "api_key"
            raise LLMError(
                f"the server at {self.base_url} refused the API key (HTTP {code}: {exc.message}); "
                f"check {where} for model {self.model}"
            ) from None
        raise RequestRejectedError(
            f"the server at {self.base_url} refused the request for model {self.model} "
            f"(HTTP {code}: {exc.message})"
        ) from None

    def _gave_up(self, stats: Stats) -> str:
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
        try:
            page = await self.client().models.list()
        except (openai.APIError, json.JSONDecodeError) as list_exc:  # the server's fault; we only add a hint
            return LLMError(
                f"the server at {self.base_url} answered 404 for model {self.model!r} ({exc.message}), and its "
                f"model list could not be read either ({type(list_exc).__name__}); check base_url "
                "(OpenAI-compatible servers usually end in /v1) and the model name"
            )
        data = getattr(page, "data", None)
        names = sorted(str(getattr(m, "id", m)) for m in data) if isinstance(data, list) else []
        return LLMError(
            f"model {self.model!r} is not served at {self.base_url} ({exc.message}); the server offers: "
            f"{', '.join(names) or '(none)'}. Set `model` in small_model/large_model (or api.small_model / "
            "api.large_model) to one of them"
        )
