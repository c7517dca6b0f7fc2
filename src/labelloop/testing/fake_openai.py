"""A fake OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

It speaks the real protocol over real HTTP (GET /v1/models, POST /v1/chat/completions,
POST /v1/completions). Its simulated teacher (labelloop.testing.teacher) knows gold labels,
finds the document a request quotes and answers the right class with probability `accuracy`.
Faults can be injected by rate or queued for the next requests, and every request is counted.

    with FakeOpenAI(gold={"text": "sports"}, accuracy=0.9) as fake:
        settings = LLMSection(mode="api", base_url=fake.base_url, model=fake.model)

It knows nothing of labelloop: it reads requests the way any server does (see
labelloop.testing.reading), so the client's prompts can change without the fake noticing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from labelloop.testing.reading import Request
from labelloop.testing.teacher import ANSWER_FORMATS, Teacher

OVER_CAPACITY = ("queue", "reject")  # a request beyond `capacity` waits its turn, or gets 429 + Retry-After
# How an unsupported request field is refused: OpenAI's 400, or llama-cpp-python's server, whose request
# model takes response_format types "text" and "json_object" (with an optional "schema") and answers
# anything else, and logprobs on a model loaded without logits_all, with HTTP 500 naming the field.
REFUSALS = ("openai", "llama-cpp-python")
FAULTS = ("http_500", "http_429", "hang", "malformed", "truncated", "unparseable", "too_long")
__all__ = ["ANSWER_FORMATS", "FAULTS", "OVER_CAPACITY", "REFUSALS", "FakeOpenAI", "request_hash"]


def request_hash(body: Mapping) -> str:
    """Canonical hash of a request body (what "the same request" means in the counters)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


class FakeOpenAI:
    """Configurable fake LLM server; use as a context manager or call start() / stop().

    gold, accuracy, seed, classes, multi_label, answer_format and vulnerable configure its
    teacher (see Teacher); or pass a `teacher` built beforehand. The rest is the server's.
    """

    def __init__(
        self,
        *,
        gold: Mapping[str, str | Sequence[str]] | None = None,
        accuracy: float = 1.0,
        seed: int = 0,
        classes: Iterable[str] | None = None,
        multi_label: bool | None = None,
        answer_format: str = "bare",
        vulnerable: bool = False,
        teacher: Teacher | None = None,
        models: Iterable[str] | None = ("fake-model",),
        supports_json_schema: bool = True,
        supports_logprobs: bool = True,
        refusal: str = "openai",
        capacity: int | None = None,
        over_capacity: str = "queue",
        latency_s: float = 0.0,
        fault_rates: Mapping[str, float] | None = None,
        retry_after_s: float = 1.0,
        hang_s: float = 5.0,
        api_key: str | None = None,
    ):
        if over_capacity not in OVER_CAPACITY:
            raise ValueError(f"over_capacity {over_capacity!r}: use one of {OVER_CAPACITY}")
        if refusal not in REFUSALS:
            raise ValueError(f"refusal {refusal!r}: use one of {REFUSALS}")
        unknown = set(fault_rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        self.teacher = teacher or Teacher(gold=gold, accuracy=accuracy, seed=seed, classes=classes,
                                          multi_label=multi_label, answer_format=answer_format,
                                          vulnerable=vulnerable)
        self.models = list(models) if models is not None else None
        self.supports_json_schema = supports_json_schema
        self.supports_logprobs = supports_logprobs
        self.refusal = refusal
        self.latency_s = latency_s
        self.fault_rates = dict(fault_rates or {})
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.api_key = api_key
        self._capacity = threading.Semaphore(capacity) if capacity else None
        self.over_capacity = over_capacity
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        self._queued: deque[str] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset_counts()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.models[0] if self.models else "fake-model"

    # ------------------------------------------------------------ counters

    def reset_counts(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.total = 0
            self.by_status: Counter[str] = Counter()
            self.successes: Counter[str] = Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.requests: list[dict] = []
        self.teacher.reset()

    @property
    def unknown_texts(self) -> int:
        """Label requests about a text the teacher does not know (it answers them by hash)."""
        return self.teacher.unknown_texts

    def repeated_successes(self) -> dict[str, int]:
        """Request hashes answered successfully more than once (a cache should make this empty)."""
        return {h: n for h, n in self.successes.items() if n > 1}

    def queue_faults(self, *kinds: str) -> None:
        """Apply these faults, in order, to the next completion requests."""
        for kind in kinds:
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")
        with self._lock:
            self._queued.extend(kinds)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._queued:
                return self._queued.popleft()
            for kind, rate in self.fault_rates.items():
                if self._fault_rng.random() < rate:
                    return kind
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid the 40 ms ACK stall

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    _unconfirmed: str | None = None  # hash of the last success sent on this connection

    def handle(self) -> None:
        """Serve the connection; a reset after a success means the client died with it unread."""
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            if self._unconfirmed is not None:
                # The kernel resets a connection closed with unread data: that answer never
                # reached the client, so it was not a success the client could have kept.
                with self.fake._lock:
                    self.fake.successes[self._unconfirmed] -= 1
                    self.fake.by_status["200"] -= 1
                    self.fake.by_status["client_gone"] += 1

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None,
              raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str, code: str | None = None,
               headers: Mapping[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    def _count(self, status: str) -> None:
        with self.fake._lock:
            self.fake.by_status[status] += 1

    def _authorized(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._count("401")
        self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return False

    def do_GET(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            names = self.fake.models or [self.fake.model]
            self._send(200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    def do_POST(self) -> None:  # noqa: N802
        self._unconfirmed = None  # a new request: the client read the previous answer
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.rstrip("/")
        endpoint = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}.get(path)
        if endpoint is None:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")
            return
        if not self._authorized():
            return
        fake = self.fake
        with fake._lock:
            fake.total += 1
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if fake._capacity is None:
                self._serve(endpoint, raw)
            elif fake._capacity.acquire(blocking=fake.over_capacity == "queue"):
                try:
                    self._serve(endpoint, raw)
                finally:
                    fake._capacity.release()
            else:
                self._count("429")
                self._error(429, "The server is at capacity; please retry later.", "rate_limit_error",
                            "rate_limit_exceeded", headers={"Retry-After": f"{fake.retry_after_s:g}"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _serve(self, endpoint: str, raw: bytes) -> None:
        fake = self.fake
        if fake.latency_s:
            time.sleep(fake.latency_s)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._count("400")
            self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
            return
        with fake._lock:
            fake.requests.append(body)
        model = body.get("model")
        if fake.models is not None and model not in fake.models:
            self._count("404")
            self._error(404, f"The model `{model}` does not exist or you do not have access to it.",
                        "invalid_request_error", "model_not_found")
            return
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema" and not fake.supports_json_schema:
            if fake.refusal == "llama-cpp-python":
                self._count("500")
                self._error(500, "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input "
                            "should be 'text' or 'json_object' [type=literal_error, input_value='json_schema', "
                            "input_type=str]", "internal_server_error")
                return
            self._count("400")
            self._error(400, "response_format of type json_schema is not supported by this model.",
                        "invalid_request_error", "unsupported_parameter")
            return
        if body.get("logprobs") and not fake.supports_logprobs and fake.refusal == "llama-cpp-python":
            self._count("500")
            self._error(500, "logprobs is not supported for models created with logits_all=False",
                        "internal_server_error")
            return
        fault = fake._next_fault()
        if fault == "http_500":
            self._count("500")
            self._error(500, "The server had an error while processing your request.", "server_error")
            return
        if fault == "http_429":
            self._count("429")
            self._error(429, "Rate limit reached; please retry later.", "rate_limit_error", "rate_limit_exceeded",
                        headers={"Retry-After": f"{fake.retry_after_s:g}"})
            return
        if fault == "too_long":
            self._count("400")
            self._error(400, "This model's maximum context length is 2048 tokens. However, your messages "
                        "resulted in 4096 tokens.", "invalid_request_error", "context_length_exceeded")
            return
        if fault == "hang":
            self._count("hang")
            time.sleep(fake.hang_s)
            self.close_connection = True
            return
        if fault == "malformed":
            self._count("malformed")
            self._send(200, None, raw=b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')
            return
        request = Request.of(endpoint, body)
        if not fake.supports_logprobs:
            request = dataclasses.replace(request, top_n=None)
        content, logprobs = fake.teacher.reply(request)
        if fault == "unparseable":
            content, logprobs = "Hmm, that is a hard one. I would rather not say.", None
        now = int(time.time())
        usage = {"prompt_tokens": max(1, len(json.dumps(body.get("messages") or body.get("prompt"))) // 4),
                 "completion_tokens": max(1, len(content) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if endpoint == "chat":
            payload = {"id": f"chatcmpl-{fake.total}", "object": "chat.completion", "created": now, "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "logprobs": logprobs, "finish_reason": "stop"}], "usage": usage}
        else:
            payload = {"id": f"cmpl-{fake.total}", "object": "text_completion", "created": now, "model": model,
                       "choices": [{"index": 0, "text": content, "logprobs": logprobs, "finish_reason": "stop"}],
                       "usage": usage}
        if fault == "truncated":
            self._count("truncated")
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self._client_gone():
            self._count("client_gone")  # the client died while we worked: nothing was delivered
            self.close_connection = True
            return
        try:
            self._send(200, payload)
            self.wfile.flush()
        except OSError:
            self._count("client_gone")
            self.close_connection = True
            return
        # Counted only once delivered, so a client killed mid-request is not charged a success.
        self._count("200")
        with fake._lock:
            fake.successes[request_hash(body)] += 1
        self._unconfirmed = request_hash(body)

    def _client_gone(self) -> bool:
        """True when the peer has closed its end (a killed client): readable with no data."""
        import select
        import socket

        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
