"""Make a fresh student of a named type, or load a saved one from its folder."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence, get_args

from labelloop.classify.base import BaseStudent, check_balancing
from labelloop.classify.folder import read_meta
from labelloop.config import StudentType
from labelloop.errors import LabelloopError, ModelNotAvailableError

if TYPE_CHECKING:
    from labelloop.config import StudentSection

STUDENT_TYPES = get_args(StudentType)


def make_student(
    kind: str,
    classes: Sequence[str],
    *,
    settings: "StudentSection | None" = None,
    model_path: str | None = None,
    cache=None,
    balancing: str = "auto",
    max_seq_length: int | None = None,
    multi_label: bool = False,
) -> BaseStudent:
    """A new, unfitted student; the loop calls this every round.

    multi_label: the student learns label sets (a list of classes per text, possibly empty).

    model_path is the base model of every type (the runner passes student.encoder, else
    training.model_path): the embedding-head's encoder, SetFit's body, the transformer fine-tuned.
    """
    student = _make(kind, classes, settings=settings, model_path=model_path, cache=cache, balancing=balancing,
                    max_seq_length=max_seq_length)
    student.multi_label = multi_label
    return student


def _make(kind: str, classes: Sequence[str], *, settings, model_path, cache, balancing, max_seq_length) -> BaseStudent:
    check_balancing(balancing)
    s = settings
    seed = s.seed if s else 0
    max_len = max_seq_length or (s.max_seq_length if s else None)
    encoder = model_path or (s.encoder if s else None)
    if kind == "embedding-head":
        from labelloop.classify.embedding_head import EmbeddingHeadStudent

        return EmbeddingHeadStudent(
            classes, encoder_path=encoder, cache=cache, balancing=balancing, max_seq_length=max_len,
            seed=seed, batch_size=s.batch_size if s else 32,
        )
    if kind == "setfit":
        from labelloop.classify.setfit_student import SetFitStudent

        extra = {}
        if s:
            extra = _given(epochs=s.epochs, num_iterations=s.setfit_iterations, learning_rate=s.learning_rate,
                           batch_size=min(s.batch_size, 16))
        return SetFitStudent(classes, encoder_path=encoder, balancing=balancing, max_seq_length=max_len,
                             seed=seed, cache=cache, **extra)
    if kind == "transformer":
        from labelloop.classify.transformer_student import TransformerStudent

        extra = {}
        if s:
            extra = _given(epochs=s.epochs, lr=s.learning_rate, batch_size=s.batch_size)
        return TransformerStudent(classes, model_path=model_path or (s.encoder if s else None),
                                  balancing=balancing, max_seq_length=max_len, seed=seed, cache=cache, **extra)
    if kind == "static":
        from labelloop.classify.static_student import StaticStudent

        return StaticStudent(classes, encoder_path=encoder, balancing=balancing, max_seq_length=max_len, seed=seed)
    raise LabelloopError(f"unknown student type {kind!r}; expected one of {list(STUDENT_TYPES)} (student.type)")


def _given(**settings) -> dict:
    """Settings the user set; unset (None) ones fall back to each student's own default."""
    return {k: v for k, v in settings.items() if v is not None}


def load_student(path: str | os.PathLike, cache=None) -> BaseStudent:
    """A fitted student from a folder written by its save(); the type comes from labelloop.json."""
    kind = read_meta(path).get("student_type")
    if kind == "embedding-head":
        from labelloop.classify.embedding_head import EmbeddingHeadStudent

        return EmbeddingHeadStudent.load(path, cache=cache)
    if kind == "setfit":
        from labelloop.classify.setfit_student import SetFitStudent

        return SetFitStudent.load(path)
    if kind == "transformer":
        from labelloop.classify.transformer_student import TransformerStudent

        return TransformerStudent.load(path)
    if kind == "static":
        from labelloop.classify.static_student import StaticStudent

        return StaticStudent.load(path)
    raise ModelNotAvailableError(
        f"{str(path)!r} holds a student of type {kind!r}; this labelloop loads {list(STUDENT_TYPES)}"
    )
