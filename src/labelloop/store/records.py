"""Typed rows of the project file: what the store returns and takes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any



def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    id: int
    hash: str
    text: str
    source: str
    position: int
    n_tokens: int | None
    count: int
    metadata: dict
    split: str | None
    split_iteration: int | None


@dataclass(frozen=True)
class Label:
    id: int
    chunk_id: int
    source: str
    label: str | None
    confidence: float | None
    status: str
    iteration: int | None
    rules_version: int | None
    call_id: int | None
    raw: str | None
    reason: str | None
    probs: dict | None
    updated_at: str


@dataclass(frozen=True)
class Rules:
    id: int
    version: int
    text: str
    author: str
    model: str | None
    created_at: str
    call_id: int | None = None


@dataclass(frozen=True)
class LLMCall:
    id: int
    key: str
    purpose: str | None
    backend: str
    model: str | None
    request: dict
    response: Any
    status: str
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_s: float | None
    attempts: int
    faults: dict


@dataclass(frozen=True)
class Iteration:
    n: int
    train_size: int
    test_size: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    macro_f1: float | None
    gold_accuracy: float | None
    gold_size: int | None
    metrics: dict
    seconds: float | None
    llm_calls: int | None
    model_path: str | None
    status: str
    stop_reason: str | None


@dataclass(frozen=True)
class Review:
    id: int
    chunk_id: int
    action: str
    label: str | None
    previous: dict | None
    reviewer: str | None
    created_at: str


@dataclass(frozen=True)
class Dropped:
    """Chunks a changed file no longer holds (and no other file does), deleted with their labels."""

    chunks: int = 0
    labeled: int = 0  # had a label that can count (a person's or an LLM's)
    reviewed: int = 0  # a person had labeled or discarded them

    def __str__(self) -> str:
        return (f"dropped {self.chunks} chunk(s) it no longer contains ({self.labeled} labeled, "
                f"{self.reviewed} reviewed by a person)")


@dataclass(frozen=True)
class Added:
    """What recording one part of a file did to the chunks table."""

    new: int
    duplicate: int  # already held by another file, or twice in this one
    unchanged: int = 0  # held by an earlier reading of this same file: keeps its id and labels
    dropped: Dropped = field(default_factory=Dropped)


@dataclass
class NewChunk:
    """A chunk as ingestion produces it, before it has an id."""

    text: str
    source: str
    position: int
    n_tokens: int | None = None
    metadata: dict = field(default_factory=dict)


def from_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
