"""Student: static token embeddings distilled from the encoder (model2vec) + a logistic-regression head.

model2vec distils a sentence-transformers model into one vector per vocabulary token (each
token run through the model alone, reduced by PCA, weighted by Zipf's law). A text's embedding
is then the mean of its tokens' vectors: no transformer at prediction time, only a tokenizer
and numpy. It is distilled once per encoder and cached (~1 minute for MiniLM on 2 cores).

The saved folder holds `static/embeddings.safetensors`, `static/tokenizer.json`, the head in
`head.safetensors` and `labelloop.json`; no pickle, and predicting needs numpy, safetensors and
tokenizers alone (see the folder's README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from labelloop.classify import folder as fmt
from labelloop.classify.base import BaseStudent, check_classes
from labelloop.classify.frozen_head import FrozenHeadMixin
from labelloop.classify.head import DEFAULT_C, fit_multi_head, head_proba, multi_head_proba
from labelloop.errors import ModelNotAvailableError
from labelloop.files import sha256_file

STATIC_DIR = "static"
EMBEDDINGS = "embeddings.safetensors"
PCA_DIMS = 256
_LOCK = threading.Lock()
_LOADED: dict[str, "StaticEncoder"] = {}

class StaticEncoder:
    """Mean of token vectors, L2-normalized: a tokenizer and an embedding matrix."""

    def __init__(self, folder: Path, max_tokens: int = 512):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.embeddings = load_file(str(self.folder / EMBEDDINGS))["embeddings"].astype(np.float32)
        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        self.tokenizer = tok
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.embeddings.shape[1]), dtype=np.float32)
        for row, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = enc.ids[: self.max_tokens]
            if ids:
                out[row] = self.embeddings[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def distilled(encoder_folder: str, pca_dims: int = PCA_DIMS) -> Path:
    """The static model distilled from an encoder folder: made once (atomically), then read from the cache."""
    from labelloop.models.packaged import cache_dir

    source = Path(encoder_folder)
    weights = sorted(source.rglob("*.safetensors")) or sorted(source.rglob("*.bin"))
    ident = sha256_file(weights[0])[:16] if weights else source.name
    target = cache_dir() / "static" / f"{source.name}-{ident}-pca{pca_dims}"
    with _LOCK:
        if (target / EMBEDDINGS).is_file():
            return target
        try:
            from model2vec.distill import distill
        except ImportError as exc:
            raise ModelNotAvailableError(
                f"student.type static needs model2vec's distiller ({exc}); install it with "
                "`pip install model2vec skeletoken` (`make setup` does)"
            ) from None
        from safetensors.numpy import save_file

        model = distill(model_name=str(source), pca_dims=pca_dims, device="cpu")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            save_file({"embeddings": np.ascontiguousarray(model.embedding, dtype=np.float32)}, str(tmp / EMBEDDINGS))
            (tmp / "tokenizer.json").write_text(model.tokenizer.to_str(), encoding="utf-8")
            (tmp / "source.json").write_text(json.dumps({"encoder": str(source), "pca_dims": pca_dims}))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _encoder(folder: Path, max_tokens: int) -> StaticEncoder:
    key = f"{folder}\x00{max_tokens}"
    if key not in _LOADED:
        _LOADED[key] = StaticEncoder(folder, max_tokens)
    return _LOADED[key]


class StaticStudent(FrozenHeadMixin, BaseStudent):
    """Static embeddings (distilled once from the encoder) + logistic regression: thousands of texts a second."""

    kind = "static"

    def __init__(
        self,
        classes: Sequence[str],
        encoder_path: str | None = None,
        balancing: str = "auto",
        max_seq_length: int | None = None,
        seed: int = 0,
        C: float | None = None,
        pca_dims: int = PCA_DIMS,
    ):
        super().__init__(classes, balancing=balancing, seed=seed)
        self.encoder_path = encoder_path
        self.max_seq_length = max_seq_length
        self.C = C
        self.pca_dims = pca_dims

    def _static(self) -> StaticEncoder:
        from labelloop.models import resolve_model

        return _encoder(distilled(resolve_model(self.encoder_path), self.pca_dims), self._max_tokens())

    def _max_tokens(self) -> int:
        return int(self.max_seq_length or 512)

    def _features(self, texts: list[str], fitting: bool = False) -> np.ndarray:
        if fitting:
            self.static_ = self._static()
            return self.static_.encode(texts)
        return self._static().encode(texts)

    def _fit_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], soft: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> None:
        self.static_ = self._static()
        X = self.static_.encode(texts)
        self.coef_, self.intercept_ = fit_multi_head(X, Y, balancing=self.balancing, seed=self.seed, C=self.C, soft=soft,
                                                     ignore=ignore)

    def _cross_val_multi(self, texts, Y, classes, splits, probs, stop_after=None):
        X = self._static().encode(texts)
        for train_idx, test_idx in splits:
            coef, intercept = fit_multi_head(X[train_idx], Y[train_idx], balancing=self.balancing, seed=self.seed,
                                             C=self.C)
            probs[test_idx] = multi_head_proba(X[test_idx], coef, intercept)
        return probs

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = multi_head_proba if self.multi_label else head_proba
        return proba(self.static_.encode(texts), self.coef_, self.intercept_)

    def save(self, path: str | os.PathLike) -> None:
        self._check_fitted()
        folder = fmt.prepare_folder(path)
        shutil.copytree(self.static_.folder, folder / STATIC_DIR)
        fmt.save_head(folder, self.coef_, self.intercept_, self.thresholds_ if self.multi_label else None)
        meta = fmt.write_meta(
            folder, self.kind, self.classes_, static=STATIC_DIR, head=fmt.HEAD_FILE, normalize=True,
            max_seq_length=self._max_tokens(), truncation="head", pca_dims=self.pca_dims,
            encoder_source=str(self.encoder_path) if self.encoder_path else "all-MiniLM-L6-v2 (packaged)",
            encoder_path=str(self.encoder_path) if self.encoder_path else None,  # what a refit starts from
            seed=self.seed, **self.head_meta(), **self.multi_meta(),
        )
        fmt.write_readme(folder, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StaticStudent":
        folder = Path(path)
        meta = fmt.read_meta(folder)
        classes = check_classes(meta["classes"])
        student = cls(classes, encoder_path=meta.get("encoder_path"), balancing=meta.get("balancing", "class-weight"),
                      max_seq_length=meta.get("max_seq_length"), seed=meta.get("seed", 0), C=meta.get("C", DEFAULT_C),
                      pca_dims=meta.get("pca_dims", PCA_DIMS))
        student.static_ = _encoder(folder / meta.get("static", STATIC_DIR), student._max_tokens())
        student.coef_, student.intercept_ = fmt.load_head(folder, len(classes))
        student.classes_ = classes
        student.load_multi(meta)
        return student
