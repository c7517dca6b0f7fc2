"""What samplers and stopping rules see of the pool: embeddings, the student's probabilities.

This is the I/O side of sampling: the samplers themselves (labelloop.loop.sampling) are pure.
Embeddings come from the encoder with the store as cache, the same vectors the student trained on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelloop import labels as policy
from labelloop.classify.student_input import StudentInput
from labelloop.config import Config
from labelloop.store import Chunk, Store


def candidates(pool_ids: Sequence[int], limit: int, seed: int, round_: int) -> list[int]:
    """The pool, or a seeded sample of `limit` of it when larger (sampling.pool_limit)."""
    ids = sorted(pool_ids)
    if len(ids) <= limit:
        return ids
    return sorted(random.Random(f"pool-{seed}-{round_}").sample(ids, limit))


def encode(config: Config, store: Store, chunks: Sequence[Chunk], contract: StudentInput) -> np.ndarray:
    """The student encoder's embeddings of these chunks as the student sees them (cached in the store)."""
    from labelloop.classify.encoder import Encoder

    enc = Encoder(config.student_model, cache=store, max_seq_length=contract.max_length)
    return enc.encode(contract.prepare([c.text for c in chunks]))


def student_probs(config: Config, store: Store, model_dir: str | Path, chunks: Sequence[Chunk], contract,
                  embeddings: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of a saved student, columns in config.classes order.

    An embedding-head student is applied to the cached encoder embeddings (its body is the
    encoder, unchanged); other students are loaded and run on the texts.
    """
    from labelloop.classify.folder import load_head, read_meta

    meta = read_meta(model_dir)
    saved = list(meta["classes"])
    same_input = StudentInput.load(model_dir) == contract  # the saved student saw what this run's encoder sees
    if meta.get("student_type") == "embedding-head" and same_input:
        from labelloop.classify.head import head_proba, multi_head_proba

        coef, intercept = load_head(Path(model_dir), len(saved))
        X = embeddings if embeddings is not None else encode(config, store, chunks, contract)
        probs = (multi_head_proba if meta.get("multi_label") else head_proba)(X, coef, intercept)
    else:
        from labelloop.classify import load_student

        student = load_student(model_dir)
        saved = list(student.classes_)
        probs = np.asarray(student.predict_proba(StudentInput.load(model_dir).prepare([c.text for c in chunks])))
    out = np.zeros((len(chunks), len(config.classes)))
    for j, cls in enumerate(saved):
        if cls in config.classes:
            out[:, config.classes.index(cls)] = probs[:, j]
    return out


def label_counts(store: Store, multi_label: bool = False) -> dict[str, int]:
    """Final labels per class over the training chunks (what `balanced` evens out); multi-label: positives."""
    train = [c.id for c in store.chunks("train")]
    if not train:
        return {}
    final = store.final_labels(train).values()
    if multi_label:
        return dict(Counter(c for lab in final for c in policy.label_value(lab, True)))
    return dict(Counter(lab.label for lab in final))


def saved_thresholds(config: Config, model_dir: str | Path) -> np.ndarray | None:
    """A saved multi-label student's thresholds in config.classes order; None for single-label."""
    from labelloop.classify.folder import read_meta

    meta = read_meta(model_dir)
    if not meta.get("multi_label"):
        return None
    return np.array([float(meta["thresholds"].get(c, 0.5)) for c in config.classes])


def sampler_state(config: Config, store: Store, sampler, pool: Sequence[Chunk], round_: int,
                  contract) -> dict:
    """The keyword arguments a sampler asked for, for round `round_` (its student: round_ - 1)."""
    state: dict = {}
    if not (sampler.needs_probs or sampler.needs_embeddings):
        return state
    state["classes"] = config.classes
    X = encode(config, store, pool, contract)
    state["embeddings"] = X  # every student-guided strategy spreads its first batch over embedding clusters
    prev = _model_dir(store, round_ - 1)
    if sampler.needs_probs and prev:
        state["probs"] = student_probs(config, store, prev, pool, contract, embeddings=X)
        state["label_counts"] = label_counts(store, config.multi_label)
        if config.multi_label:
            state["thresholds"] = saved_thresholds(config, prev)
    return state


def stop_set(store: Store, seed: int, size: int) -> list[Chunk]:
    """A fixed, seeded sample of the non-test chunks, on which successive students are compared."""
    ids = sorted(c.id for c in store.chunks() if c.split != "test")
    if len(ids) > size:
        ids = sorted(random.Random(f"stopset-{seed}").sample(ids, size))
    return store.chunks(ids=ids)


def _model_dir(store: Store, n: int) -> str | None:
    for it in store.iterations():
        if it.n == n and it.status == "done" and it.model_path and Path(it.model_path).is_dir():
            return it.model_path
    return None
