"""The decision rule: what a student's probabilities answer, for a chunk and for a whole document.

The one place a probability row becomes a label (single-label: the most probable class) or a label
set (multi-label: every class reaching its threshold). The student's predict, its ONNX runtime,
`labelloop predict` (local and Ray), `labelloop serve`, the loop's scoring, its stored student
opinions, its stop-set checks and the balanced sampler all ask here. A document's answer is the
decision on its chunks' probabilities pooled by DocumentPool (the choice is measured in
bench/notes/2026-12-03-predict-documents.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rows(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:  # one row; an empty list is no rows
        return p[None, :] if p.size else p.reshape(0, 0)
    return p


def chosen(probs, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Rows x classes, True where chosen: the most probable class (first on a tie), or each reaching its threshold."""
    p = _rows(probs)
    if thresholds is not None:
        return p >= np.asarray(thresholds, dtype=np.float64)[None, :]
    held = np.zeros(p.shape, dtype=bool)
    if len(p):
        held[np.arange(len(p)), np.argmax(p, axis=1)] = True
    return held


def decide(probs, classes: Sequence[str], thresholds: Sequence[float] | None = None) -> list:
    """Each row's answer: a class name, or (thresholds given) the classes reaching their threshold, in class order."""
    held = chosen(probs, thresholds)
    if thresholds is None:
        return [classes[int(j)] for j in np.argmax(held, axis=1)] if len(held) else []
    return [[classes[j] for j in np.flatnonzero(row)] for row in held]


def decide_codes(probs, thresholds: Sequence[float] | None = None) -> list[int]:
    """Each row's answer as one integer: the class index, or (multi-label) the set as bits (bit j: class j)."""
    held = chosen(probs, thresholds)
    if not len(held):
        return []
    if thresholds is None:
        return [int(j) for j in np.argmax(held, axis=1)]
    return [int(v) for v in held.astype(np.int64) @ (1 << np.arange(held.shape[1], dtype=np.int64))]


def confidence(probs, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """How sure each answer is: the chosen class's probability, or (multi-label) the least sure of its decisions."""
    p = _rows(probs)
    if thresholds is not None:
        return np.min(np.maximum(p, 1.0 - p), axis=1)
    return np.max(p, axis=1) if p.shape[1] else np.zeros(len(p))


class DocumentPool:
    """A document's probabilities pooled from its chunks', added in batches: memory stays one row whatever the count.

    Single-label: the mean of the chunks' probabilities. Multi-label: each class's max, so a document holds a
    label when one of its chunks does (the union of the chunks' label sets). Measured on BBC articles in
    bench/notes/2026-12-03-predict-documents.md: the mean lost a topic that fills only part of a document.
    """

    def __init__(self, multi_label: bool = False):
        self.multi_label = multi_label
        self.pooled: np.ndarray | None = None  # the running sum (single-label) or max (multi-label)
        self.chunks = 0

    def add(self, chunk_probs) -> "DocumentPool":
        p = _rows(chunk_probs)
        if len(p):
            part = p.max(axis=0) if self.multi_label else p.sum(axis=0)
            if self.pooled is None:
                self.pooled = part
            else:
                self.pooled = np.maximum(self.pooled, part) if self.multi_label else self.pooled + part
            self.chunks += len(p)
        return self

    def probs(self) -> np.ndarray:
        if self.pooled is None:
            raise ValueError("a document needs at least one chunk to pool")
        return self.pooled if self.multi_label else self.pooled / self.chunks


def pool(chunk_probs, multi_label: bool = False) -> np.ndarray:
    """A document's probabilities from all its chunks' rows (DocumentPool at once)."""
    return DocumentPool(multi_label).add(chunk_probs).probs()
