"""Pick few-shot examples for a chunk: the most similar reviewed examples, every class represented."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from labelloop.llm.base import Example

EmbedFn = Callable[[list[str]], np.ndarray]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class FewShotPicker:
    """per_class most similar examples of each class (cosine on embed), most similar shown last."""

    def __init__(self, examples: Sequence[Example], embed: EmbedFn, per_class: int):
        self.examples = list(examples)
        self.embed = embed
        self.per_class = per_class
        self._example_vectors: np.ndarray | None = None
        self._cache: dict[str, np.ndarray] = {}

    def __str__(self) -> str:
        return f"FewShotPicker({len(self.examples)} examples, {self.per_class} per class)"

    def _vectors(self) -> np.ndarray:
        if self._example_vectors is None:
            self._example_vectors = _unit(self.embed([e.text for e in self.examples]))
        return self._example_vectors

    def prepare(self, texts: Sequence[str]) -> None:
        """Embed many query texts in one batch (pick() then finds them cached)."""
        if not self.examples or self.per_class <= 0:
            return
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vec in zip(missing, _unit(self.embed(missing)), strict=True):
                self._cache[text] = vec

    def pick(self, text: str) -> tuple[Example, ...]:
        """The examples to show before this text; never the text itself."""
        if not self.examples or self.per_class <= 0:
            return ()
        if text not in self._cache:
            self.prepare([text])
        sims = self._vectors() @ self._cache[text]
        same = " ".join(text.split())
        chosen: list[int] = []
        classes = list(dict.fromkeys(e.label for e in self.examples))
        for cls in classes:
            idx = [i for i, e in enumerate(self.examples)
                   if e.label == cls and " ".join(e.text.split()) != same]
            idx.sort(key=lambda i: (-float(sims[i]), i))
            chosen.extend(idx[: self.per_class])
        chosen.sort(key=lambda i: (float(sims[i]), -i))
        return tuple(self.examples[i] for i in chosen)
