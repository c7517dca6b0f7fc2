"""Student: frozen sentence embeddings (MiniLM by default) + a logistic-regression head."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from labelloop.classify import folder as fmt
from labelloop.classify.base import BaseStudent, check_classes
from labelloop.classify.encoder import EmbeddingCache, Encoder
from labelloop.classify.frozen_head import FrozenHeadMixin
from labelloop.classify.head import DEFAULT_C, fit_multi_head, head_proba, multi_head_proba


class EmbeddingHeadStudent(FrozenHeadMixin, BaseStudent):
    """Embeddings from a sentence-transformers folder, classified by logistic regression.

    C None and balancing "auto" (the defaults): chosen by cross-validation (labelloop.classify.frozen_head).
    """

    kind = "embedding-head"

    def __init__(
        self,
        classes: Sequence[str],
        encoder_path: str | None = None,
        cache: EmbeddingCache | None = None,
        balancing: str = "auto",
        max_seq_length: int | None = None,
        seed: int = 0,
        C: float | None = None,
        batch_size: int = 32,
    ):
        super().__init__(classes, balancing=balancing, seed=seed)
        self.encoder_path = encoder_path
        self.cache = cache
        self.max_seq_length = max_seq_length
        self.C = C
        self.batch_size = batch_size

    def _make_encoder(self) -> Encoder:
        return Encoder(self.encoder_path, cache=self.cache, max_seq_length=self.max_seq_length,
                       batch_size=self.batch_size)

    def _features(self, texts: list[str], fitting: bool = False) -> np.ndarray:
        if fitting:
            self.encoder_ = self._make_encoder()
            return self.encoder_.encode(texts)
        return self._make_encoder().encode(texts)

    def _fit_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], soft: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> None:
        self.encoder_ = self._make_encoder()
        X = self.encoder_.encode(texts)
        self.coef_, self.intercept_ = fit_multi_head(X, Y, balancing=self.balancing, seed=self.seed, C=self.C, soft=soft,
                                                     ignore=ignore)

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = multi_head_proba if self.multi_label else head_proba
        return proba(self.encoder_.encode(texts), self.coef_, self.intercept_)

    def _cross_val_multi(self, texts, Y, classes, splits, probs, stop_after=None) -> np.ndarray:
        """Frozen body: each text embedded once, one head per label fitted per fold."""
        X = self._make_encoder().encode(texts)
        for train_idx, test_idx in splits:
            coef, intercept = fit_multi_head(X[train_idx], Y[train_idx], balancing=self.balancing, seed=self.seed,
                                             C=self.C)
            probs[test_idx] = multi_head_proba(X[test_idx], coef, intercept)
        return probs

    def embed(self, texts: list[str]) -> np.ndarray:
        """The body's embeddings (what the head sees)."""
        self._check_fitted()
        return self.encoder_.encode(list(texts))

    def save(self, path: str | os.PathLike) -> None:
        """A folder loadable with sentence-transformers + safetensors alone (see its README.md)."""
        self._check_fitted()
        folder = fmt.prepare_folder(path)
        self._save_body(folder / fmt.BODY_DIR)
        fmt.set_body_max_length(folder / fmt.BODY_DIR, self.encoder_.max_seq_length)
        fmt.save_head(folder, self.coef_, self.intercept_, self.thresholds_ if self.multi_label else None)
        self._write_meta(folder)

    def _save_body(self, body: Path) -> None:
        src = self.encoder_.model_path
        if (Path(src) / "modules.json").is_file():
            fmt.copy_model_folder(src, body)  # unchanged weights: link, don't duplicate
        else:
            self.encoder_.model.save(str(body))

    def _write_meta(self, folder: Path) -> None:
        meta = fmt.write_meta(
            folder, self.kind, self.classes_,
            body=fmt.BODY_DIR, head=fmt.HEAD_FILE, normalize=True,
            max_seq_length=self.encoder_.max_seq_length, truncation="head",
            encoder_source=str(self.encoder_path) if self.encoder_path else "all-MiniLM-L6-v2 (packaged)",
            seed=self.seed, **self.head_meta(), **self.multi_meta(),
        )
        fmt.write_readme(folder, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, cache: EmbeddingCache | None = None) -> "EmbeddingHeadStudent":
        """A fitted student from a folder written by save()."""
        folder = Path(path)
        meta = fmt.read_meta(folder)
        classes = check_classes(meta["classes"])
        student = cls(
            classes, encoder_path=str(folder / meta.get("body", fmt.BODY_DIR)), cache=cache,
            balancing=meta.get("balancing", "class-weight"), max_seq_length=meta.get("max_seq_length"),
            seed=meta.get("seed", 0), C=meta.get("C", DEFAULT_C),
        )
        student.coef_, student.intercept_ = fmt.load_head(folder, len(classes))
        student.encoder_ = student._make_encoder()
        student.classes_ = classes
        student.load_multi(meta)
        return student
