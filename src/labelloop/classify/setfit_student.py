"""Student: SetFit (contrastive fine-tuning of the sentence-transformers body) + a logistic-regression head.

The body is tuned with the `setfit` library; the head is the same balanced logistic regression
as the embedding-head student, and the saved folder has the same format (no joblib head).

Multi-label (`multi_label`): the body is tuned with setfit's own multi-label pairs
(`multi_target_strategy="one-vs-rest"`, multi-hot label lists), then one logistic regression per
label (classify.head.fit_multi_head) on the tuned body's embeddings; each label's threshold is
saved with the head (head.safetensors `thresholds`) and in labelloop.json.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from labelloop.classify import folder as fmt
from labelloop.classify.base import BaseStudent, check_classes, check_deadline, isolated_rng
from labelloop.classify.encoder import resolve_model_path, set_torch_threads
from labelloop.classify.label_check import FineTunedLabelCheck
from labelloop.classify.head import fit_head, fit_multi_head, head_proba, multi_head_proba


def _accuracy(y_pred, y_test) -> dict[str, float]:
    """setfit's metric; its default evaluate.load('accuracy') needs the network."""
    return {"accuracy": float(np.mean(np.asarray(y_pred) == np.asarray(y_test)))}


def _deadline_callback():
    """A transformers callback that checks the fit's deadline (classify.base.fit_deadline) every step."""
    from transformers import TrainerCallback

    class Deadline(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            check_deadline()

    return Deadline()


class SetFitStudent(FineTunedLabelCheck, BaseStudent):
    """A sentence-transformers body fine-tuned on contrastive pairs (setfit), then a head.

    cache: embeddings of the base encoder, for the frozen head that checks its labels (FineTunedLabelCheck).
    """

    kind = "setfit"

    def __init__(
        self,
        classes: Sequence[str],
        encoder_path: str | None = None,
        balancing: str = "auto",
        max_seq_length: int | None = None,
        seed: int = 0,
        epochs: int = 1,
        num_iterations: int = 20,
        learning_rate: float = 2e-5,
        batch_size: int = 16,
        C: float = 10.0,
        cache=None,
    ):
        super().__init__(classes, balancing=balancing, seed=seed)
        self.encoder_path = encoder_path
        self.cache = cache
        self.max_seq_length = max_seq_length
        self.epochs = epochs
        self.num_iterations = num_iterations
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.C = C

    def _base_encoder(self) -> str | None:
        return self.encoder_path

    def _fresh_body(self):
        """A fresh copy of the base body (training changes it)."""
        path = resolve_model_path(self.encoder_path)
        set_torch_threads()
        from sentence_transformers import SentenceTransformer

        body = SentenceTransformer(path, device="cpu", local_files_only=True)
        if self.max_seq_length is not None:
            body.max_seq_length = int(self.max_seq_length)
        return body

    def _fit(self, texts: list[str], y: np.ndarray, classes: list[str], soft: np.ndarray | None = None) -> None:
        body = self._fresh_body()
        with isolated_rng(self.seed):
            if len(np.unique(y)) > 1:
                self._tune_body(body, texts, y)
            body.eval()
            self.body_ = body
            X = self._embed(texts)
            self.coef_, self.intercept_ = fit_head(
                X, y, len(classes), balancing=self.balancing, seed=self.seed, C=self.C, soft=soft
            )

    def _fit_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], soft: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> None:
        """Contrastive tuning on setfit's multi-label pairs, then one head per label (soft: the heads' targets;
        ignore: decisions the heads learn without; the pairs use the sets as given)."""
        body = self._fresh_body()
        with isolated_rng(self.seed):
            if _has_multilabel_pairs(Y):
                # The pairs come from the hard label sets (soft targets only reach the heads).
                self._tune_body(body, texts, [[int(v) for v in row] for row in Y], multi_label=True)
            body.eval()
            self.body_ = body
            X = self._embed(texts)
            self.coef_, self.intercept_ = fit_multi_head(X, Y, balancing=self.balancing, seed=self.seed, C=self.C,
                                                         soft=soft, ignore=ignore)

    def _tune_body(self, body, texts: list[str], y, multi_label: bool = False) -> None:
        """setfit's contrastive phase (train_embeddings) on the body, in place.

        Single-label: y holds class indices; a pair is positive when both texts have the same class.
        Multi-label: y holds multi-hot rows and the SetFitModel says multi_target_strategy="one-vs-rest".
        setfit 1.2 (sampler.ContrastiveDataset.generate_multilabel_pairs) then takes every unordered
        pair of training texts, each text with itself included, in a fixed shuffled order, and calls
        a pair positive (target cosine 1) when the two label sets share at least one label, else
        negative (target 0). So "sport" and "sport+business" are pulled together, "sport" and
        "business" pushed apart, and a text with no label forms only negative pairs (even with
        another label-less text, and with itself, where the cosine cannot move). With
        num_iterations it keeps num_iterations * len(texts) positive and as many negative pairs,
        cycling through each list; with none of either there is nothing to tune (see
        _has_multilabel_pairs).
        """
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        quiet = [logging.getLogger(n) for n in ("setfit", "sentence_transformers", "transformers")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.WARNING)
        try:
            with tempfile.TemporaryDirectory(prefix="labelloop-setfit-") as tmp:
                args = TrainingArguments(
                    output_dir=tmp, batch_size=self.batch_size, num_epochs=self.epochs,
                    num_iterations=self.num_iterations, body_learning_rate=self.learning_rate,
                    sampling_strategy="oversampling", seed=self.seed, report_to="none",
                    save_strategy="no", show_progress_bar=False, max_length=body.max_seq_length,
                )
                labels = [list(row) for row in y] if multi_label else [int(v) for v in y]
                strategy = {"multi_target_strategy": "one-vs-rest"} if multi_label else {}
                model = SetFitModel(model_body=body, model_head=None, labels=None, **strategy)
                data = Dataset.from_dict({"text": list(texts), "label": labels})
                trainer = Trainer(model=model, args=args, train_dataset=data, metric=_accuracy,
                                  callbacks=[_deadline_callback()])
                trainer.train_embeddings(list(texts), labels, args=args)
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vecs = self.body_.encode(
            list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = multi_head_proba if self.multi_label else head_proba
        return proba(self._embed(texts), self.coef_, self.intercept_)

    def save(self, path: str | os.PathLike) -> None:
        """Same folder format as the embedding-head student: body/, head.safetensors, labelloop.json."""
        self._check_fitted()
        folder = fmt.prepare_folder(path)
        body = folder / fmt.BODY_DIR
        self.body_.save(str(body), safe_serialization=True)
        fmt.set_body_max_length(body, self.body_.max_seq_length)
        fmt.save_head(folder, self.coef_, self.intercept_, self.thresholds_ if self.multi_label else None)
        meta = fmt.write_meta(
            folder, self.kind, self.classes_,
            body=fmt.BODY_DIR, head=fmt.HEAD_FILE, normalize=True,
            max_seq_length=int(self.body_.max_seq_length), truncation="head",
            encoder_source=str(self.encoder_path) if self.encoder_path else "all-MiniLM-L6-v2 (packaged)",
            balancing=self.balancing, seed=self.seed, C=self.C, epochs=self.epochs,
            num_iterations=self.num_iterations, learning_rate=self.learning_rate, batch_size=self.batch_size,
            **self.multi_meta(),
        )
        fmt.write_readme(folder, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SetFitStudent":
        """A fitted student from a folder written by save()."""
        from labelloop.classify.encoder import load_sentence_transformer

        folder = Path(path)
        meta = fmt.read_meta(folder)
        classes = check_classes(meta["classes"])
        body_path = str((folder / meta.get("body", fmt.BODY_DIR)).resolve())
        student = cls(
            classes, encoder_path=body_path, balancing=meta.get("balancing", "class-weight"),
            max_seq_length=meta.get("max_seq_length"), seed=meta.get("seed", 0),
            epochs=meta.get("epochs", 1), num_iterations=meta.get("num_iterations", 20),
            learning_rate=meta.get("learning_rate", 2e-5), batch_size=meta.get("batch_size", 16),
            C=meta.get("C", 10.0),
        )
        student.coef_, student.intercept_ = fmt.load_head(folder, len(classes))
        student.body_ = load_sentence_transformer(body_path)
        student.body_.max_seq_length = int(meta.get("max_seq_length") or student.body_.max_seq_length)
        student.classes_ = classes
        student.load_multi(meta)
        return student


def _has_multilabel_pairs(Y: np.ndarray) -> bool:
    """Whether setfit's multi-label sampler finds both kinds of pair (it fails on an empty kind).

    Positive: some text has a label (it pairs with itself). Negative: two texts (or one with itself)
    share no label.
    """
    Y = np.asarray(Y, dtype=np.int64)
    return bool(Y.any()) and bool(((Y @ Y.T) == 0).any())
