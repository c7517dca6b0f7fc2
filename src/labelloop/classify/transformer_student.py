"""Student: a transformers sequence classifier fine-tuned end to end (plain torch loop, CPU).

Multi-label (`multi_label`): the config says problem_type="multi_label_classification" (so a
plain AutoModelForSequenceClassification load knows the outputs are independent), training uses
binary cross-entropy with logits, predict_proba is each label's sigmoid, and the per-label
decision thresholds are saved twice: in labelloop.json (`thresholds`, as every student) and in
config.json as `label_thresholds` ({label: threshold}), so that transformers alone can decide.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from labelloop.classify import folder as fmt
from labelloop.classify.base import (
    BaseStudent,
    check_classes,
    check_deadline,
    class_weights,
    fixed_balancing,
    isolated_rng,
    oversample_indices,
)
from labelloop.classify.encoder import resolve_model_path, set_torch_threads
from labelloop.classify.label_check import FineTunedLabelCheck
from labelloop.errors import ModelNotAvailableError

POS_WEIGHT_RANGE = (0.1, 10.0)  # multi-label class-weight: negatives/positives per label, clipped to this


def hf_model_dir(path: str) -> str:
    """The folder holding config.json: the top level, or a sentence-transformers Transformer module."""
    root = Path(path)
    if (root / "config.json").is_file():
        return str(root)
    modules = root / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("models.Transformer"):
                sub = root / module.get("path", "")
                if (sub / "config.json").is_file():
                    return str(sub)
    raise ModelNotAvailableError(
        f"{path!r} has no transformers model (no config.json at the top or in a sentence-transformers "
        "Transformer module); set training.model_path to a folder saved with save_pretrained, or leave it unset"
    )


class TransformerStudent(FineTunedLabelCheck, BaseStudent):
    """AutoModelForSequenceClassification from a local folder, with weighted cross-entropy.

    cache: embeddings of the base model as an encoder, for the frozen head that checks its labels
    (FineTunedLabelCheck).
    """

    kind = "transformer"

    def __init__(
        self,
        classes: Sequence[str],
        model_path: str | None = None,
        epochs: int = 5,
        lr: float = 1e-4,
        batch_size: int = 16,
        max_seq_length: int | None = None,
        balancing: str = "auto",
        seed: int = 0,
        weight_decay: float = 0.01,
        cache=None,
    ):
        super().__init__(classes, balancing=balancing, seed=seed)
        self.model_path = model_path
        self.cache = cache
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.weight_decay = weight_decay

    def _base_encoder(self) -> str | None:
        return self.model_path

    def _fit(self, texts: list[str], y: np.ndarray, classes: list[str], soft: np.ndarray | None = None) -> None:
        source = hf_model_dir(resolve_model_path(self.model_path, "training.model_path"))
        import torch

        set_torch_threads()
        with isolated_rng(self.seed):
            model, tokenizer = _load(source, classes, fresh_head=True)
            self.max_length_ = int(self.max_seq_length or _default_length(source, tokenizer))
            order = np.arange(len(texts))
            balancing = fixed_balancing(self.balancing)
            if balancing == "oversample":
                order = oversample_indices(y, self.seed)
            weights = None
            if balancing == "class-weight":
                weights = torch.tensor(class_weights(y, len(classes)), dtype=torch.float32)
            self._train(model, tokenizer, [texts[i] for i in order], y[order], weights,
                        None if soft is None else soft[order])
        model.eval()
        self.model_, self.tokenizer_ = model, tokenizer

    def _fit_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], soft: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> None:
        """BCE with logits on the label sets (soft: each label's probability as its BCE target; ignore: the
        decisions whose loss counts zero).

        Balancing: class-weight gives each label pos_weight = negatives / positives (clipped to
        POS_WEIGHT_RANGE; 1 for a label with no positives or no negatives); oversample repeats rows
        (multilabel_oversample_indices) and weighs nothing.
        """
        source = hf_model_dir(resolve_model_path(self.model_path, "training.model_path"))
        import torch

        set_torch_threads()
        with isolated_rng(self.seed):
            model, tokenizer = _load(source, classes, fresh_head=True, multi_label=True)
            self.max_length_ = int(self.max_seq_length or _default_length(source, tokenizer))
            order = np.arange(len(texts))
            balancing = fixed_balancing(self.balancing)
            if balancing == "oversample":
                order = multilabel_oversample_indices(Y, self.seed)
            pos_weight = None
            if balancing == "class-weight":
                pos_weight = torch.tensor(label_pos_weights(Y), dtype=torch.float32)
            targets = (Y if soft is None else np.clip(soft, 0.0, 1.0)).astype(np.float32)
            keep = None if ignore is None else (~np.asarray(ignore, dtype=bool)).astype(np.float32)[order]
            self._train(model, tokenizer, [texts[i] for i in order], targets[order], pos_weight, multi_label=True,
                        keep=keep)
        model.eval()
        self.model_, self.tokenizer_ = model, tokenizer

    def _train(self, model, tokenizer, texts: list[str], y: np.ndarray, weights, soft: np.ndarray | None = None,
               multi_label: bool = False, keep: np.ndarray | None = None) -> None:
        """The fine-tuning loop. Single-label: y class indices, weights per class. Multi-label: y the
        rows x labels BCE targets (0/1 or soft), weights the per-label pos_weight, keep (rows x labels)
        1 for the decisions that count, 0 for those left out."""
        import torch
        from torch.nn.functional import binary_cross_entropy_with_logits, cross_entropy

        steps_per_epoch = math.ceil(len(texts) / self.batch_size)
        total = max(1, steps_per_epoch * self.epochs)
        optim = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
        )
        rng = np.random.default_rng(self.seed)
        model.train()
        for _ in range(self.epochs):
            perm = rng.permutation(len(texts))
            for start in range(0, len(texts), self.batch_size):
                idx = perm[start:start + self.batch_size]
                enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length_,
                                padding=True, return_tensors="pt")
                logits = model(**enc).logits
                if multi_label:
                    target = torch.as_tensor(y[idx], dtype=logits.dtype)
                    if keep is None:
                        loss = binary_cross_entropy_with_logits(logits, target, pos_weight=weights)
                    else:
                        mask = torch.as_tensor(keep[idx], dtype=logits.dtype)
                        loss = binary_cross_entropy_with_logits(logits, target, weight=mask, pos_weight=weights,
                                                                reduction="sum") / mask.sum().clamp(min=1.0)
                elif soft is None:
                    loss = cross_entropy(logits, torch.as_tensor(y[idx]), weight=weights)
                else:  # distillation: cross-entropy with the teacher's distribution
                    target = torch.as_tensor(soft[idx], dtype=logits.dtype)
                    per_row = -(target * torch.log_softmax(logits, dim=-1)).sum(-1)
                    scale = weights[torch.as_tensor(y[idx])] if weights is not None else torch.ones_like(per_row)
                    loss = (per_row * scale).sum() / scale.sum()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                sched.step()
                optim.zero_grad()
                check_deadline()

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                enc = self.tokenizer_(texts[start:start + 32], truncation=True, max_length=self.max_length_,
                                      padding=True, return_tensors="pt")
                logits = self.model_(**enc).logits.float()
                out.append((torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)).numpy())
        return np.concatenate(out).astype(np.float64)

    def save(self, path: str | os.PathLike) -> None:
        """save_pretrained (safetensors) + tokenizer + labelloop.json + README.md."""
        self._check_fitted()
        folder = fmt.prepare_folder(path)
        if self.multi_label:  # for loaders without labelloop (see the README): config.label_thresholds
            self.model_.config.problem_type = "multi_label_classification"
            self.model_.config.label_thresholds = {c: float(t) for c, t in zip(self.classes_, self.thresholds_)}
        self.model_.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer_.model_max_length = self.max_length_  # plain loaders truncate the same way
        self.tokenizer_.save_pretrained(str(folder))
        meta = fmt.write_meta(
            folder, self.kind, self.classes_,
            max_seq_length=self.max_length_, truncation="head",
            base_model=str(self.model_path) if self.model_path else "all-MiniLM-L6-v2 (packaged)",
            balancing=self.balancing, seed=self.seed, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
            **self.multi_meta(),
        )
        fmt.write_readme(folder, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TransformerStudent":
        """A fitted student from a folder written by save()."""
        set_torch_threads()
        folder = Path(path)
        meta = fmt.read_meta(folder)
        classes = check_classes(meta["classes"])
        student = cls(
            classes, model_path=str(folder), epochs=meta.get("epochs", 3), lr=meta.get("lr", 5e-5),
            batch_size=meta.get("batch_size", 16), max_seq_length=meta.get("max_seq_length"),
            balancing=meta.get("balancing", "class-weight"), seed=meta.get("seed", 0),
        )
        student.model_, student.tokenizer_ = _load(str(folder), classes, fresh_head=False)
        student.model_.eval()
        student.max_length_ = int(meta.get("max_seq_length") or _default_length(str(folder), student.tokenizer_))
        student.classes_ = classes
        student.load_multi(meta)
        return student


def label_pos_weights(Y: np.ndarray) -> np.ndarray:
    """BCE pos_weight per label: negatives / positives, clipped to POS_WEIGHT_RANGE; 1 where a label has
    no positives or no negatives (nothing to balance)."""
    Y = np.asarray(Y, dtype=np.float64)
    pos = Y.sum(axis=0)
    neg = len(Y) - pos
    out = np.ones(Y.shape[1])
    both = (pos > 0) & (neg > 0)
    out[both] = np.clip(neg[both] / pos[both], *POS_WEIGHT_RANGE)
    return out


def multilabel_oversample_indices(Y: np.ndarray, seed: int) -> np.ndarray:
    """Row indices (seeded, shuffled) that repeat rows of rare labels: every row once, then, rarest
    label first, rows drawn with replacement from that label's positives until it has as many
    positives as the most common label. A drawn row brings all its labels, so the counts end up
    at least, not exactly, equal; label-less rows are never repeated. At most labels x the most
    common label's count extra rows."""
    Y = np.asarray(Y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    counts = Y.sum(axis=0)
    target = int(counts.max()) if len(counts) else 0
    extra: list[np.ndarray] = []
    for j in np.argsort(counts, kind="stable"):
        need = target - int(counts[j])
        rows = np.flatnonzero(Y[:, j])
        if need <= 0 or not len(rows):
            continue
        picked = rng.choice(rows, size=need, replace=True)
        extra.append(picked)
        counts = counts + Y[picked].sum(axis=0)
    order = np.concatenate([np.arange(len(Y)), *extra]) if extra else np.arange(len(Y))
    return order[rng.permutation(len(order))]


def _load(source: str, classes: list[str], *, fresh_head: bool, multi_label: bool = False):
    """Model and tokenizer from a local folder; a fresh head has one output per class (multi-label: one
    sigmoid output per label, problem_type="multi_label_classification")."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs = {}
    if fresh_head:
        kwargs = dict(
            num_labels=len(classes), id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)}, ignore_mismatched_sizes=True,
        )
        if multi_label:
            kwargs["problem_type"] = "multi_label_classification"
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights are newly initialized" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"cannot load a transformers classifier from {source!r}: {exc}; set training.model_path to a "
            "folder saved with save_pretrained (config.json, weights, tokenizer), or leave it unset"
        ) from exc
    finally:
        hf_logging.set_verbosity(previous)
    if model.config.num_labels != len(classes):
        raise ModelNotAvailableError(
            f"{source!r} has {model.config.num_labels} outputs but there are {len(classes)} classes {classes!r}"
        )
    return model, tokenizer


def _default_length(source: str, tokenizer) -> int:
    """sentence-transformers' max_seq_length if recorded, else the tokenizer's limit (at most 512)."""
    cfg = Path(source) / "sentence_bert_config.json"
    if cfg.is_file():
        length = json.loads(cfg.read_text()).get("max_seq_length")
        if length:
            return int(length)
    limit = getattr(tokenizer, "model_max_length", 512) or 512
    return int(min(limit, 512))

