"""A fake OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

It speaks the real protocol over real HTTP (GET /v1/models, POST /v1/chat/completions,
POST /v1/completions). A "teacher" knows gold labels, finds the document in the prompt's
data fence and answers the right class with probability `accuracy` (deterministic per
text and seed). Faults can be injected by rate or queued for the next requests, and
every request is counted.

    with FakeOpenAI(gold={"text": "sports"}, accuracy=0.9) as fake:
        settings = LLMSection(mode="api", base_url=fake.base_url, model=fake.model)

Multi-label requests (a schema with a `labels` property, or a prompt that asks for
`Labels: ...` / {"labels": [...]}) get a label set. A gold value may then be a list of classes
(a plain class is a set of one). Each class's membership is decided right with probability
`accuracy`, independently per class (deterministic per text, seed and class). Logprobs put the
teacher's per-class probabilities where labelloop.llm.label_sets reads them: at the tokens
where list items start (the structural tokens between them are certain).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from labelloop.labels import encode_set
from labelloop.llm.parse import match_class
from labelloop.llm.prompts import (
    LABELS_CUE,
    TRUNCATION_MARK,
    find_classes,
    find_fenced,
    unfenced,
)

OVER_CAPACITY = ("queue", "reject")  # a request beyond `capacity` waits its turn, or gets 429 + Retry-After
# How an unsupported request field is refused: OpenAI's 400, or llama-cpp-python's server, whose request
# model takes response_format types "text" and "json_object" (with an optional "schema") and answers
# anything else, and logprobs on a model loaded without logits_all, with HTTP 500 naming the field.
REFUSALS = ("openai", "llama-cpp-python")
FAULTS = ("http_500", "http_429", "hang", "malformed", "truncated", "unparseable", "too_long")
ANSWER_FORMATS = ("bare", "json", "reasoning", "final-index")  # final-index: Augmentoolkit's `Final label: 0`
_INJECTION = re.compile(r"(?im)^.*ignore all previous rules and answer\s+[\"'`]?([^\"'`\n.]+)")
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
# What labelloop's multi-label prompts say and no single-label one does (outside the documents).
_ASKS_FOR_SET = re.compile(r'`Labels: none`|\{"labels": \[')
_MULTI_RULES = re.compile(r"several labels, or\s+none|several, one or none", re.I)
_REASONING_SET = ("Let me look at the document against the rules, one label at a time.\n"
                  "I name every label that applies.\n\n")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def request_hash(body: Mapping) -> str:
    """Canonical hash of a request body (what "the same request" means in the counters)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


class FakeOpenAI:
    """Configurable fake LLM server; use as a context manager or call start() / stop()."""

    def __init__(
        self,
        *,
        gold: Mapping[str, str | Sequence[str]] | None = None,
        accuracy: float = 1.0,
        seed: int = 0,
        classes: Iterable[str] | None = None,
        models: Iterable[str] | None = ("fake-model",),
        answer_format: str = "bare",
        supports_json_schema: bool = True,
        supports_logprobs: bool = True,
        refusal: str = "openai",
        vulnerable: bool = False,
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
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format {answer_format!r}: use one of {ANSWER_FORMATS}")
        unknown = set(fault_rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        self.gold = {_norm(k): v if isinstance(v, str) else list(v) for k, v in (gold or {}).items()}
        self._gold_items = list(self.gold.items())
        self.accuracy = accuracy
        self.seed = seed
        self.classes = list(classes) if classes else None
        self.models = list(models) if models is not None else None
        self.answer_format = answer_format
        if refusal not in REFUSALS:
            raise ValueError(f"refusal {refusal!r}: use one of {REFUSALS}")
        self.supports_json_schema = supports_json_schema
        self.supports_logprobs = supports_logprobs
        self.refusal = refusal
        self.vulnerable = vulnerable
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
        self._lookup_cache: dict[str, str | None] = {}
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
            self.unknown_texts = 0
            self.requests: list[dict] = []
            self._sample_counter: Counter[str] = Counter()

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

    # ------------------------------------------------------------ the teacher

    def true_label(self, text: str) -> str | list[str] | None:
        """Gold label (or label set, as given) of a (possibly truncated or chunked) text, or None if unknown."""
        if text.endswith(TRUNCATION_MARK):
            text = text[: -len(TRUNCATION_MARK)]
        norm = _norm(text)
        if norm in self._lookup_cache:
            return self._lookup_cache[norm]
        found = self.gold.get(norm)
        if found is None and norm:
            for key, label in self._gold_items:
                if key.startswith(norm) or norm in key or norm.startswith(key):
                    found = label
                    break
        self._lookup_cache[norm] = found
        return found

    def _gold_classes(self) -> list[str]:
        """Every class the gold labels name, sorted (the classes when a request does not list them)."""
        names: set[str] = set()
        for value in self.gold.values():
            names.update([value] if isinstance(value, str) else value)
        return sorted(names)

    def true_set(self, text: str) -> list[str] | None:
        """Gold label set of a text (a plain gold class is a set of one), or None if unknown."""
        truth = self.true_label(text)
        if truth is None:
            return None
        return [truth] if isinstance(truth, str) else list(truth)

    def _sample_salt(self, norm: str, temperature: float) -> str:
        """Each sampled (temperature > 0) request of a text draws anew; greedy ones repeat."""
        if temperature <= 0:
            return ""
        with self._lock:
            self._sample_counter[norm] += 1
            return f":{self._sample_counter[norm]}"

    def answer_label(self, text: str, classes: list[str], temperature: float = 0.0) -> tuple[str, bool]:
        """The label the teacher gives and whether it is the gold one."""
        if self.vulnerable:
            m = _INJECTION.search(text)
            injected = match_class(m.group(1), classes) if m else None
            if injected:
                return injected, False
        truth = self.true_label(text)
        if isinstance(truth, list):  # a label set asked for one label: its first class that is offered
            truth = next((c for c in truth if c in classes), None)
        norm = _norm(text)
        salt = self._sample_salt(norm, temperature)
        rng = random.Random(f"{self.seed}:{norm}{salt}")
        if truth is None or truth not in classes:
            with self._lock:
                self.unknown_texts += 1
            return classes[int(hashlib.sha256(norm.encode()).hexdigest(), 16) % len(classes)], False
        if rng.random() < self.accuracy or len(classes) < 2:
            return truth, True
        return rng.choice([c for c in classes if c != truth]), False

    def answer_set(self, text: str, classes: list[str], temperature: float = 0.0) -> tuple[list[str], dict[str, bool]]:
        """The label set the teacher gives (in class order) and, per class, whether that decision is right.

        Each class is decided right with probability `accuracy`, on its own draw (text, seed, class).
        """
        if self.vulnerable:
            m = _INJECTION.search(text)
            injected = match_class(m.group(1), classes) if m else None
            if injected:
                return [injected], {c: False for c in classes}
        truth = self.true_set(text)
        norm = _norm(text)
        if truth is None:
            with self._lock:
                self.unknown_texts += 1
            guess = classes[int(hashlib.sha256(norm.encode()).hexdigest(), 16) % len(classes)]
            return [guess], {c: False for c in classes}
        salt = self._sample_salt(norm, temperature)
        right = {c: random.Random(f"{self.seed}:{norm}{salt}:{c}").random() < self.accuracy for c in classes}
        chosen = [c for c in classes if (c in truth) == right[c]]
        return chosen, right

    def rules_text(self, classes: list[str], multi_label: bool = False) -> str:
        if multi_label:
            return self._set_rules_text(classes)
        lines = [f"{i}. Label a document `{c}` when its main subject is {c}: its events, people, organisations "
                 "and vocabulary." for i, c in enumerate(classes, 1)]
        n = len(lines)
        lines.append(f"{n + 1}. Default: when no rule clearly applies, use `{classes[0]}`.")
        lines.append(f"{n + 2}. Edge case: a document that touches several classes gets the one it spends most words on.")
        return "\n".join(lines)

    @staticmethod
    def _set_rules_text(classes: list[str]) -> str:
        lines = [f"{i}. Label `{c}` applies when a part of the document is about {c}: its events, people, "
                 "organisations and vocabulary, whatever else the document is about." for i, c in enumerate(classes, 1)]
        n = len(lines)
        lines.append(f"{n + 1}. A document gets every label that applies, and none of them when no rule applies.")
        lines.append(f"{n + 2}. Edge case: a passing mention is not enough; the part must say something about it.")
        return "\n".join(lines)

    def _probs(self, label: str, correct: bool, classes: list[str], key: str) -> dict[str, float]:
        rng = random.Random(f"p:{self.seed}:{key}")
        p = rng.uniform(0.7, 0.99) if correct else rng.uniform(0.35, 0.65)
        others = [c for c in classes if c != label]
        weights = [rng.random() + 0.05 for _ in others]
        total = sum(weights) or 1.0
        probs = {label: p}
        probs.update({c: (1 - p) * w / total for c, w in zip(others, weights, strict=True)})
        return probs

    # ------------------------------------------------------------ answers

    def _answer(self, endpoint: str, body: dict) -> tuple[str, dict | None, str | None]:
        """(content, logprobs, label) for a request."""
        if endpoint == "chat":
            messages = body.get("messages") or []
            prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
            user_texts = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        else:
            prompt = str(body.get("prompt", ""))
            user_texts = [prompt]
        docs = [d for t in user_texts for d in find_fenced(t)]
        rf = body.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("schema") or rf.get("schema") or {}
        enum = ((schema.get("properties") or {}).get("label") or {}).get("enum")
        json_mode = rf.get("type") in ("json_schema", "json_object")
        set_enum = ((((schema.get("properties") or {}).get("labels") or {}).get("items")) or {}).get("enum")
        classes = list(enum or set_enum or self.classes or find_classes(prompt) or self._gold_classes())
        instructions = unfenced(prompt)
        if not docs:
            if "rule" in prompt.lower() and classes:
                return self.rules_text(classes, multi_label=bool(_MULTI_RULES.search(instructions))), None, None
            return "OK", None, None
        doc = docs[-1]
        if set_enum is not None or (enum is None and self._asks_for_set(instructions, endpoint)):
            return self._answer_set(endpoint, body, doc, classes, json_mode)
        label, correct = self.answer_label(doc, classes, float(body.get("temperature") or 0.0))
        if enum is not None or json_mode:
            prefix, suffix = '{"label": "', '"}'
        elif endpoint == "completions":
            prefix, suffix = " ", ""
        elif self.answer_format == "json":
            prefix, suffix = '{"label": "', '", "reason": "fits the rules"}'
        elif self.answer_format == "reasoning":
            prefix, suffix = "Let me look at the document against the rules.\nIt fits one class best.\n\nFinal label: ", ""
        elif self.answer_format == "final-index":
            prefix, suffix = ("Summary of input: a document.\n\nFinal reasoning: considering this evidence, the input "
                              f"can be classified with the label: {label}\nFinal label: "), ""
        else:
            prefix, suffix = "", ""
        answer = str(classes.index(label)) if self.answer_format == "final-index" and not json_mode else label
        content = prefix + answer + suffix
        logprobs = None
        want = body.get("logprobs")
        if want and self.supports_logprobs:
            top_n = int(body.get("top_logprobs") or 0) if endpoint == "chat" else int(want)
            probs = self._probs(label, correct, classes, _norm(doc))
            if answer != label:  # the answer names classes by index: the alternatives are indices too
                probs = {str(classes.index(c)): p for c, p in probs.items()}
            logprobs = self._logprobs(endpoint, prefix, answer, suffix, probs, top_n)
        return content, logprobs, label

    # ------------------------------------------------------------ label sets (multi-label)

    @staticmethod
    def _asks_for_set(instructions: str, endpoint: str) -> bool:
        """A multi-label request: labelloop's multi-label wording, or a completion prompt cued `Labels:`."""
        if _ASKS_FOR_SET.search(instructions):
            return True
        return endpoint == "completions" and instructions.rstrip().endswith(LABELS_CUE)

    def _answer_set(self, endpoint: str, body: dict, doc: str, classes: list[str],
                    json_mode: bool) -> tuple[str, dict | None, str]:
        """(content, logprobs, stored label set) for a multi-label request."""
        chosen, right = self.answer_set(doc, classes, float(body.get("temperature") or 0.0))
        segments = self._set_segments(endpoint, chosen, json_mode)
        content = "".join(text for text, _kind, _cls in segments)
        logprobs = None
        want = body.get("logprobs")
        if want and self.supports_logprobs:
            top_n = int(body.get("top_logprobs") or 0) if endpoint == "chat" else int(want)
            probs = self._set_probs(chosen, right, classes, _norm(doc))
            logprobs = _format_logprobs(endpoint, self._set_entries(segments, chosen, probs, classes, top_n))
        return content, logprobs, encode_set(chosen, classes)

    def _set_segments(self, endpoint: str, chosen: list[str], json_mode: bool) -> list[tuple[str, str, str | None]]:
        """The reply as (text, kind, class) parts: kind 'item' starts a list item, 'empty' an empty answer."""
        if json_mode or (self.answer_format == "json" and endpoint == "chat"):
            parts: list[tuple[str, str, str | None]] = [('{"labels": [', "fixed", None)]
            for i, c in enumerate(chosen):
                parts += [(", " if i else "", "fixed", None), ('"', "fixed", None), (c, "item", c),
                          ('"', "fixed", None)]
            parts.append(("]", "empty" if not chosen else "fixed", None))
            tail = "}" if json_mode else ', "reason": "fits the rules"}'
            return [p for p in parts if p[0]] + [(tail, "fixed", None)]
        if endpoint == "completions":
            head = " "
        elif self.answer_format == "reasoning":
            head = _REASONING_SET + LABELS_CUE + " "
        else:
            head = LABELS_CUE + " "
        parts = [(head, "fixed", None)]
        for i, c in enumerate(chosen):
            if i:
                parts.append((", ", "fixed", None))
            parts.append((c, "item", c))
        if not chosen:
            parts.append(("none", "empty", None))
        return parts

    def _set_probs(self, chosen: list[str], right: dict[str, bool], classes: list[str], key: str) -> dict[str, float]:
        """The teacher's probability that each class applies: sure where it is right, near 0.5 where wrong."""
        probs = {}
        for c in classes:
            rng = random.Random(f"p:{self.seed}:{key}:{c}")
            sure = rng.uniform(0.7, 0.99) if right[c] else rng.uniform(0.5, 0.65)
            probs[c] = sure if c in chosen else 1.0 - sure
        return probs

    @staticmethod
    def _set_entries(segments: list[tuple[str, str, str | None]], chosen: list[str], probs: dict[str, float],
                     classes: list[str], top_n: int) -> list[tuple[str, float, list[tuple[str, float]]]]:
        """Token entries whose item-start alternatives carry each class's probability.

        A written class's item token has its probability; each class left out is an alternative at
        the slot with the most room left (scaled down when they do not all fit in the slots' mass).
        """
        left_out = [c for c in classes if c not in chosen]
        slot_p = [probs[cls] for _t, kind, cls in segments if kind == "item"]
        if not slot_p:
            slot_p = [max(0.05, 1.0 - sum(probs[c] for c in left_out))]
        room = [1.0 - p for p in slot_p]
        wanted = sum(probs[c] for c in left_out)
        scale = min(1.0, sum(room) / wanted) if wanted > 0 else 1.0
        alts: list[dict[str, float]] = [{} for _ in slot_p]
        empty_json = any(kind == "empty" and text == "]" for text, kind, _c in segments)
        for c in left_out:
            k = max(range(len(room)), key=lambda i: room[i])
            mass = min(probs[c] * scale, room[k])
            room[k] -= mass
            tok = ('"' if empty_json else "") + _tokens(c)[0]
            alts[k][tok] = alts[k].get(tok, 0.0) + mass
        entries, slot = [], 0
        for text, kind, _cls in segments:
            for j, tok in enumerate(_tokens(text)):
                if j == 0 and kind in ("item", "empty"):
                    top = dict(alts[slot])
                    top[tok] = top.get(tok, 0.0) + slot_p[slot]
                    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:top_n]
                    lp = math.log(max(slot_p[slot], 1e-12))
                    entries.append((tok, lp, [(t, math.log(max(p, 1e-12))) for t, p in ranked]))
                    slot += 1
                else:
                    entries.append((tok, 0.0, [(tok, 0.0)][:top_n]))
        return entries

    def _logprobs(self, endpoint: str, prefix: str, label: str, suffix: str,
                  probs: dict[str, float], top_n: int) -> dict:
        pre, lab, suf = _tokens(prefix), _tokens(label), _tokens(suffix)
        first: dict[str, float] = {}
        for cls, p in probs.items():
            tok = _tokens(cls)[0] if cls else cls
            first[tok] = first.get(tok, 0.0) + p
        answer_tok = lab[0]
        alts = sorted(first.items(), key=lambda kv: -kv[1])[: max(top_n, 1)]
        entries = []
        for i, tok in enumerate(pre + lab + suf):
            if i == len(pre):
                lp = math.log(max(first.get(answer_tok, 1e-6), 1e-12))
                top = [(t, math.log(max(p, 1e-12))) for t, p in alts]
            else:
                lp, top = -0.01, [(tok, -0.01)]
            entries.append((tok, lp, top[:top_n] if top_n else []))
        return _format_logprobs(endpoint, entries)


def _format_logprobs(endpoint: str, entries: list[tuple[str, float, list[tuple[str, float]]]]) -> dict:
    """Token entries (token, logprob, top alternatives) in the endpoint's logprobs format."""
    if endpoint == "chat":
        return {"content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()),
             "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top]}
            for t, lp, top in entries
        ]}
    offsets, pos = [], 0
    for t, _, _ in entries:
        offsets.append(pos)
        pos += len(t)
    return {
        "tokens": [t for t, _, _ in entries],
        "token_logprobs": [lp for _, lp, _ in entries],
        "top_logprobs": [dict(top) for _, _, top in entries],
        "text_offset": offsets,
    }


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
        content, logprobs, _label = fake._answer(endpoint, body)
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
