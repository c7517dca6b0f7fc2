"""Request shapes for structured output, and how to tell a shape the server refuses from a fault.

OpenAI-compatible servers differ in what they take for a constrained answer. The shapes are
tried in this order, once per server and model, and the one that works is remembered:

1. `json_schema`: `response_format: {"type": "json_schema", "json_schema": {...}}` (OpenAI, vLLM,
   llama.cpp's `llama-server`, Ollama, LM Studio);
2. `json_object+schema`: `{"type": "json_object", "schema": {...}}` (llama-cpp-python's server,
   which answers `json_schema` with HTTP 500);
3. `json_object`: `{"type": "json_object"}`, JSON mode without a schema;
4. `text`: no response_format; the reply is read by the parser.

Logprobs (`logprobs`, `top_logprobs`) are negotiated the same way: a server that refuses them is
asked without, and the label's confidence then comes from agreement across samples, or is null.

A multi-label task asks with label_set_schema ({"labels": [...]}) in the same shapes; the shape a
server takes is one per server and model, whichever kind of task found it.

A 4xx (other than auth, not-found, rate limits and a too-long prompt), or a 5xx whose body names a
request field, is a shape problem: the next shape is tried at once, never retried as a fault.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

SHAPES = ("json_schema", "json_object+schema", "json_object", "text")
DESCRIPTIONS = {
    "json_schema": "JSON schema (response_format json_schema, the class names as an enum)",
    "json_object+schema": "JSON object with a schema (response_format json_object + schema)",
    "json_object": "JSON object (response_format json_object, no schema)",
    "text": "plain text, read by the parser",
}
_FIELDS = re.compile(r"response_format|json_schema|json_object|logprobs|top_logprobs|guided_\w+|grammar|\bschema\b",
                     re.I)
_LOGPROB_FIELDS = re.compile(r"logprob", re.I)
CONTEXT_WORDS = ("context", "too long", "maximum context", "token limit", "n_ctx", "exceeds")
NOT_SHAPE_STATUS = {401, 403, 404, 408, 409, 413, 425, 429}


def label_schema(classes: Sequence[str]) -> dict:
    """The JSON schema of a single-label answer: {"label": one of the classes}."""
    return {"type": "object", "properties": {"label": {"type": "string", "enum": list(classes)}},
            "required": ["label"], "additionalProperties": False}


def label_set_schema(classes: Sequence[str]) -> dict:
    """The JSON schema of a multi-label answer: {"labels": the classes that apply, each once; [] for none}."""
    return {"type": "object",
            "properties": {"labels": {"type": "array", "items": {"type": "string", "enum": list(classes)},
                                      "uniqueItems": True}},
            "required": ["labels"], "additionalProperties": False}


def response_format(shape: str, schema: dict, name: str = "label") -> dict | None:
    """The request's response_format for a shape (None: send none); name names the json_schema."""
    if shape == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if shape == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    if shape == "json_object":
        return {"type": "json_object"}
    return None


def is_context_error(message: str) -> bool:
    """The prompt does not fit the model's context window (a property of the chunk, not of the shape)."""
    low = message.lower()
    return any(w in low for w in CONTEXT_WORDS)


def shape_problem(status: int, message: str) -> str | None:
    """'logprobs' or 'format' when an error answers the request's shape; None when it is a fault or a refusal."""
    if status in NOT_SHAPE_STATUS or is_context_error(message):
        return None
    names_field = bool(_FIELDS.search(message))
    if status >= 500 and not names_field:
        return None  # a plain server error: a fault, retried
    if _LOGPROB_FIELDS.search(message) and not re.search(r"response_format|json", message, re.I):
        return "logprobs"
    return "format"


@dataclass
class Negotiation:
    """What one server and model take: the shape in use, logprobs or not, and why."""

    allowed: tuple[str, ...] = SHAPES
    shape: str = SHAPES[0]
    logprobs: bool = True
    settled: bool = False  # a request in this shape has succeeded (or the state came from the project file)
    why: str = "the first shape tried"
    notes: list[str] = field(default_factory=list)  # lines to print once, in order

    def __post_init__(self) -> None:
        if self.shape not in self.allowed:
            self.shape = self.allowed[0]

    def step_down(self, problem: str, status: int, message: str) -> bool:
        """Move to the next shape (or drop logprobs); False when there is nothing left to try."""
        said = " ".join(message.split())[:160]
        if problem == "logprobs" and self.logprobs:
            self.logprobs = False
            self.notes.append(f"the server refused logprobs (HTTP {status}: {said}); asking without them")
            return True
        i = self.allowed.index(self.shape)
        if i + 1 < len(self.allowed):
            old, self.shape = self.shape, self.allowed[i + 1]
            self.why = f"{old} was refused (HTTP {status}: {said})"
            return True
        if self.logprobs:
            self.logprobs = False
            self.notes.append(f"the server refused the request even as plain text (HTTP {status}: {said}); "
                              "asking without logprobs")
            return True
        return False

    def settle(self) -> bool:
        """Mark the current shape as working; True the first time."""
        if self.settled:
            return False
        self.settled = True
        return True

    def describe(self) -> str:
        lp = "with logprobs" if self.logprobs else "without logprobs"
        return f"{DESCRIPTIONS[self.shape]}, {lp}; {self.why}"

    def to_dict(self) -> dict:
        return {"shape": self.shape, "logprobs": self.logprobs, "why": self.why}

    @classmethod
    def restore(cls, data: dict | None, allowed: tuple[str, ...]) -> Negotiation:
        if not data or data.get("shape") not in allowed:
            return cls(allowed=allowed)
        return cls(allowed=allowed, shape=data["shape"], logprobs=bool(data.get("logprobs", True)), settled=True,
                   why=f"{data.get('why') or 'negotiated before'} (remembered in the project file)")
