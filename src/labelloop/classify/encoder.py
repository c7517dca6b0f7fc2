"""Sentence embeddings from a local sentence-transformers folder, cached by text."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Protocol

import numpy as np

from labelloop.classify.base import check_deadline, has_deadline
from labelloop.errors import ModelNotAvailableError
from labelloop.files import usable_cpus
from labelloop.models import resolve_model

_MODELS: OrderedDict[str, object] = OrderedDict()  # folder identity -> SentenceTransformer, most recent last
_MAX_MODELS = 3


class EmbeddingCache(Protocol):
    """Where embeddings are kept between runs; labelloop.store.Store is one."""

    def get(self, keys: list[str]) -> dict[str, np.ndarray]: ...

    def put(self, vectors: dict[str, np.ndarray]) -> None: ...


def set_torch_threads() -> None:
    """Use the CPUs this process may run on, not the host's count."""
    import torch

    usable = usable_cpus()
    if torch.get_num_threads() > usable:
        torch.set_num_threads(max(1, usable))


def resolve_model_path(name_or_path: str | os.PathLike | None, setting: str = "student.encoder") -> str:
    """A local model folder for a setting (folder, packaged name or hub id); None means the packaged MiniLM."""
    return resolve_model(name_or_path, setting)


def load_sentence_transformer(path: str):
    """A SentenceTransformer for a local folder, loaded once per process (small LRU)."""
    key = _folder_identity(path)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    set_torch_threads()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars in a run's output

    try:
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure means the folder is not a usable model
        raise ModelNotAvailableError(
            f"cannot load a sentence-transformers model from {path!r}: {exc}; point student.encoder "
            "at a folder saved by sentence-transformers or transformers, or leave it unset"
        ) from exc
    model.eval()
    _default_length(model)  # remember it before any encoder changes max_seq_length
    _MODELS[key] = model
    while len(_MODELS) > _MAX_MODELS:
        _MODELS.popitem(last=False)
    return model


def _folder_identity(path: str) -> str:
    # A folder replaced by a new save (same path, new inode/mtime) is a different model.
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}\x00{st.st_ino}\x00{st.st_mtime_ns}"


class Encoder:
    """L2-normalized float32 embeddings; only texts missing from the cache reach the model."""

    def __init__(
        self,
        model_path: str | None = None,
        cache: EmbeddingCache | None = None,
        max_seq_length: int | None = None,
        batch_size: int = 32,
    ):
        self.model_path = resolve_model_path(model_path)
        self.cache = _as_cache(cache)
        self.batch_size = batch_size
        self._requested_length = max_seq_length
        self.n_embedded = 0  # texts actually run through the model by this encoder

    @property
    def model(self):
        """The loaded SentenceTransformer (shared within the process)."""
        return load_sentence_transformer(self.model_path)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text the model sees: the setting, else the model's own default."""
        if self._requested_length is not None:
            return int(self._requested_length)
        return int(_default_length(self.model))

    @property
    def dim(self) -> int:
        """Embedding size."""
        return int(self.model.get_sentence_embedding_dimension())

    def key(self, text: str) -> str:
        """Cache key: model identity, truncation length and text."""
        ident = f"{self.model_path}\x00{self.max_seq_length}\x00{text}"
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts, shape (len(texts), dim)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [self.key(t) for t in texts]
        found = self.cache.get(list(dict.fromkeys(keys))) if self.cache is not None else {}
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in todo:
                todo[k] = t
        if todo:
            fresh: dict[str, np.ndarray] = {}
            pending = list(todo.items())
            # Under a deadline (student.type auto), embed in parts, cached as they are done, so a candidate
            # stopped at the budget keeps its work; otherwise in one call, batched as always.
            step = max(1, 2 * self.batch_size) if has_deadline() else max(1, len(pending))
            for start in range(0, len(pending), step):
                part = pending[start:start + step]
                vectors = dict(zip([k for k, _ in part], self._embed([t for _, t in part])))
                if self.cache is not None:
                    self.cache.put(vectors)
                fresh.update(vectors)
                if start + step < len(pending):
                    check_deadline()
            found = {**found, **fresh}
        return np.stack([np.asarray(found[k], dtype=np.float32) for k in keys])

    def _embed(self, texts: list[str]) -> np.ndarray:
        model = self.model
        model.max_seq_length = self.max_seq_length
        vectors = model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        self.n_embedded += len(texts)
        return np.asarray(vectors, dtype=np.float32)


def _default_length(model) -> int:
    # The model's configured length before anyone changed it; remembered on the object.
    if not hasattr(model, "_labelloop_default_length"):
        model._labelloop_default_length = int(model.max_seq_length or 256)
    return model._labelloop_default_length


class _StoreCache:
    """Adapts an object with get_embeddings/put_embeddings (labelloop.store.Store) to EmbeddingCache."""

    def __init__(self, store):
        self.store = store

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        return self.store.get_embeddings(keys)

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        self.store.put_embeddings(vectors)


def _as_cache(cache):
    if cache is None:
        return None
    if hasattr(cache, "get_embeddings") and hasattr(cache, "put_embeddings"):
        return _StoreCache(cache)
    if hasattr(cache, "get") and hasattr(cache, "put"):
        return cache
    raise TypeError(f"cache must have get/put or get_embeddings/put_embeddings, got {type(cache).__name__}")
