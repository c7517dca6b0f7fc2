"""What every student shares: class bookkeeping, input checks, balancing, the fitted check."""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol, get_args, runtime_checkable

import numpy as np

from labelloop.config import BalancingMode
from labelloop.errors import LabelloopError, NotFittedError

BALANCING_MODES = get_args(BalancingMode)
_DEADLINE: ContextVar[float | None] = ContextVar("labelloop_fit_deadline", default=None)


class OverBudget(LabelloopError):
    """A fit stopped at its deadline: `student.type: auto` keeps every candidate to student.budget_s."""


@contextlib.contextmanager
def fit_deadline(at: float | None) -> Iterator[None]:
    """Fits started inside stop (OverBudget) once time.monotonic() passes `at`; students that train
    for long (setfit, transformer) check it every step."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def has_deadline() -> bool:
    return _DEADLINE.get() is not None


def check_deadline() -> None:
    at = _DEADLINE.get()
    if at is not None and time.monotonic() > at:
        raise OverBudget("the fit ran past its deadline (student.budget_s)")


class UnfittedAttributeError(NotFittedError, AttributeError):
    """Fitted state read before fit; an AttributeError too, so hasattr() stays False."""


@runtime_checkable
class Student(Protocol):
    """The interface the loop trains, scores and saves."""

    classes: list[str]

    def fit(self, texts: list[str], labels: list[str]) -> "Student": ...

    def predict(self, texts: list[str]) -> list[str]: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


class BaseStudent:
    """Shared behaviour; subclasses implement _fit, _predict_proba, save and load."""

    kind = "base"
    multi_label = False  # set per student by make_student / load (classification.multi_label)

    def __init__(self, classes: Sequence[str], balancing: str = "auto", seed: int = 0):
        self.classes = classes
        self.balancing = balancing
        self.seed = seed

    # ------------------------------------------------------------ public API

    def __getattr__(self, name: str):
        # Only called for missing attributes: fitted state (`classes_`, ...) before fit.
        if name.endswith("_") and not name.startswith("_"):
            raise UnfittedAttributeError(self._unfitted_message(name))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fit(self, texts: list[str], labels: list, soft: np.ndarray | None = None,
            thresholds: Sequence[float] | None = None, ignore: np.ndarray | None = None):
        """Train on texts and their labels (every label must be one of `classes`); return self.

        soft (rows x classes, rows sum to 1): the teacher's class probabilities, for students that
        learn from a distribution (distillation); the others use the labels alone.

        Multi-label (`multi_label` True): each label is a list of classes (possibly empty), soft holds
        each class's own probability, and `thresholds_` are the per-class decision thresholds: the
        given ones, else tuned on this student's own out-of-fold probabilities (never a fixed 0.5).
        ignore (rows x classes, bool): single decisions to learn nothing from (likely label errors).
        """
        classes = check_classes(self.classes)
        check_balancing(self.balancing)
        if self.multi_label:
            return self._fit_sets(list(texts), list(labels), classes, soft, thresholds, ignore)
        y = encode_labels(texts, labels, classes)
        if soft is not None:
            soft = np.asarray(soft, dtype=np.float64)
            if soft.shape != (len(y), len(classes)):
                raise LabelloopError(f"soft targets have shape {soft.shape}; expected {(len(y), len(classes))}")
            self._fit(list(texts), y, classes, soft=soft)
        else:
            self._fit(list(texts), y, classes)
        self.classes_ = classes
        return self

    def _fit_sets(self, texts: list[str], label_sets: list, classes: list[str], soft, thresholds, ignore=None):
        from labelloop.classify.thresholds import tune_thresholds

        Y = encode_label_sets(texts, label_sets, classes)
        if soft is not None:
            soft = np.asarray(soft, dtype=np.float64)
            if soft.shape != Y.shape:
                raise LabelloopError(f"soft targets have shape {soft.shape}; expected {Y.shape}")
        if ignore is not None:
            ignore = np.asarray(ignore, dtype=bool)
            if ignore.shape != Y.shape:
                raise LabelloopError(f"ignore has shape {ignore.shape}; expected {Y.shape} (rows x classes)")
        if thresholds is None:
            thresholds = tune_thresholds(self.cross_val_proba(texts, label_sets), Y, ignore)
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.shape != (len(classes),):
            raise LabelloopError(f"got {thresholds.size} thresholds for {len(classes)} classes; give one per "
                                 "class, in class order")
        self._fit_multi(texts, Y, classes, soft=soft, ignore=ignore)
        self.classes_ = classes
        self.thresholds_ = thresholds
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(classes_)), columns in `classes_` order."""
        self._check_fitted()
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return self._predict_proba(texts)

    def predict(self, texts: list[str]) -> list:
        """The most probable class of each text; multi-label: each text's label set (its thresholds)."""
        from labelloop.classify.decision import decide

        return decide(self.predict_proba(texts), self.classes_, self.thresholds_ if self.multi_label else None)

    def cross_val_proba(self, texts: list[str], labels: list[str], folds: int = 5,
                        stop_after: Callable[[int, int], bool] | None = None) -> np.ndarray | None:
        """Out-of-sample class probabilities of the training texts: no row is scored by a model that saw it.

        Stratified K-fold (seeded), each fold a fresh copy of this student. With fewer than two
        labels in some class there is nothing to hold out: every row gets the uniform distribution.
        stop_after(folds done, folds) may end it early (None is returned): `auto` keeps to its budget so.
        """
        classes = check_classes(self.classes)
        if self.multi_label:
            return self._cross_val_sets(list(texts), list(labels), classes, folds, stop_after)
        y = encode_labels(texts, labels, classes)
        probs = np.full((len(y), len(classes)), 1.0 / len(classes))
        splits = stratified_splits(y, folds, self.seed)
        if splits is None:
            return probs
        return self._cross_val(list(texts), y, classes, splits, probs, stop_after)

    def label_check_proba(self, texts: list[str], labels: list, folds: int = 5) -> np.ndarray:
        """Out-of-sample probabilities of the training texts that rank their label errors (the loop's
        pruning, re-labeling and review queue): this student's own cross-validation. The fine-tuned
        students use their frozen base encoder instead (labelloop.classify.label_check)."""
        return self.cross_val_proba(texts, labels, folds=folds)

    def _cross_val(self, texts: list[str], y: np.ndarray, classes: list[str], splits, probs: np.ndarray,
                   stop_after: Callable[[int, int], bool] | None = None) -> np.ndarray | None:
        for k, (train_idx, test_idx) in enumerate(splits, 1):
            fold = self.unfitted_copy()
            fold.fit([texts[i] for i in train_idx], [classes[y[i]] for i in train_idx])
            probs[test_idx] = fold.predict_proba([texts[i] for i in test_idx])
            if stop_after is not None and k < len(splits) and stop_after(k, len(splits)):
                return None
        return probs

    def _cross_val_sets(self, texts: list[str], label_sets: list, classes: list[str], folds: int,
                        stop_after=None) -> np.ndarray | None:
        """Multi-label: shuffled K-fold (seeded); a row no fold can hold out gets each class's base rate."""
        Y = encode_label_sets(texts, label_sets, classes)
        probs = np.tile(Y.mean(axis=0), (len(Y), 1)).astype(np.float64)
        n_folds = min(folds, len(Y))
        if n_folds < 2:
            return probs
        from sklearn.model_selection import KFold

        splits = list(KFold(n_folds, shuffle=True, random_state=self.seed).split(np.zeros(len(Y))))
        return self._cross_val_multi(texts, Y, classes, splits, probs, stop_after)

    def _cross_val_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], splits, probs: np.ndarray,
                         stop_after=None) -> np.ndarray | None:
        half = np.full(len(classes), 0.5)  # a fold's own thresholds are never used: only its probabilities
        for k, (train_idx, test_idx) in enumerate(splits, 1):
            fold = self.unfitted_copy()
            fold.fit([texts[i] for i in train_idx], [decode_row(Y[i], classes) for i in train_idx], thresholds=half)
            probs[test_idx] = fold.predict_proba([texts[i] for i in test_idx])
            if stop_after is not None and k < len(splits) and stop_after(k, len(splits)):
                return None
        return probs

    def unfitted_copy(self) -> "BaseStudent":
        """A new student with the same settings, not fitted (each __init__ argument is kept as an attribute)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        copy = type(self)(**{name: self.__dict__[name] for name in names if name in self.__dict__})
        copy.multi_label = self.multi_label
        return copy

    def multi_meta(self) -> dict:
        """What labelloop.json says about label sets: nothing for a single-label student."""
        if not self.multi_label:
            return {}
        return {"multi_label": True, "activation": "sigmoid",
                "thresholds": {c: float(t) for c, t in zip(self.classes_, self.thresholds_)}}

    def load_multi(self, meta: dict) -> None:
        """Restore multi-label mode and the thresholds from labelloop.json."""
        if meta.get("multi_label"):
            self.multi_label = True
            self.thresholds_ = np.array([float(meta["thresholds"][c]) for c in meta["classes"]])

    # ------------------------------------------------------------ for subclasses

    def _check_fitted(self) -> None:
        if "classes_" not in self.__dict__:
            raise NotFittedError(self._unfitted_message("predict"))

    def _unfitted_message(self, what: str) -> str:
        return (
            f"{type(self).__name__}.{what} needs a fitted model: call fit first "
            f"(or load a saved one with labelloop.classify.load_student(path))"
        )

    def _fit(self, texts: list[str], y: np.ndarray, classes: list[str], soft: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def _predict_proba(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _fit_multi(self, texts: list[str], Y: np.ndarray, classes: list[str], soft: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> None:
        raise LabelloopError(f"the {self.kind} student does not learn label sets; classification.multi_label needs "
                             "student.type embedding-head, static, setfit or transformer")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classes={list(self.classes)!r}, balancing={self.balancing!r}, seed={self.seed})"


# ------------------------------------------------------------ input checks


def check_classes(classes: Sequence[str]) -> list[str]:
    """The class list as a list of distinct non-empty strings, or an error saying what is wrong."""
    out = list(classes) if not isinstance(classes, str) else [classes]
    if len(out) < 2:
        raise LabelloopError(
            f"a student needs at least 2 classes, got {out!r}; list them in classification.classes"
        )
    bad = [c for c in out if not isinstance(c, str) or not c.strip()]
    if bad:
        raise LabelloopError(f"class names must be non-empty strings, got {bad!r} in {out!r}")
    dupes = sorted(c for c, n in Counter(out).items() if n > 1)
    if dupes:
        raise LabelloopError(f"class names must be distinct; repeated: {dupes!r} in {out!r}")
    return out


def check_balancing(mode: str) -> str:
    """The balancing mode, or an error listing the valid ones."""
    if mode not in BALANCING_MODES:
        raise LabelloopError(
            f"unknown balancing mode {mode!r}; expected one of {list(BALANCING_MODES)} (balancing.mode)"
        )
    return mode


def stratified_splits(y: np.ndarray, folds: int, seed: int) -> list | None:
    """Seeded stratified K-fold splits of class indices, at most as many folds as the smallest class has
    labels; None when there is nothing to hold out (one class, or a class with a single label)."""
    counts = Counter(y.tolist())
    n_folds = min(folds, min(counts.values()))
    if n_folds < 2 or len(counts) < 2:
        return None
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def fixed_balancing(mode: str) -> str:
    """The balancing a student applies where no cross-validation chooses it: "auto" means class-weight.

    Only the single-label heads of the embedding-head and static students choose (classify.head.choose_head).
    """
    return "class-weight" if mode == "auto" else mode


def check_texts(texts: Sequence[str]) -> list[str]:
    """Texts as a list of strings; anything else is reported with its position."""
    if isinstance(texts, str):
        raise LabelloopError("expected a list of texts, got a single string; wrap it in a list: [text]")
    out = list(texts)
    bad = [(i, type(t).__name__) for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        shown = ", ".join(f"#{i} is {t}" for i, t in bad[:5])
        raise LabelloopError(f"every text must be a string; {len(bad)} are not ({shown})")
    return out


def check_fit_inputs(texts: Sequence[str], labels: Sequence, what: str, fix: str) -> list[str]:
    """The texts, checked: strings, at least one, as many as their labels."""
    texts = check_texts(texts)
    if len(texts) != len(labels):
        raise LabelloopError(f"fit got {len(texts)} texts but {len(labels)} {what}; give {fix}")
    if not texts:
        raise LabelloopError("fit got no training texts; label some chunks before training a student")
    return texts


def encode_labels(texts: Sequence[str], labels: Sequence[str], classes: list[str]) -> np.ndarray:
    """Label indices into `classes`; unknown labels and length mismatches are errors."""
    labels = list(labels)
    texts = check_fit_inputs(texts, labels, "labels", "one label per text")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(lab) for lab in labels if lab not in index})
    if unknown:
        raise LabelloopError(
            f"labels {unknown!r} are not among the classes {classes!r}; "
            f"fix the labels or add the class to classification.classes"
        )
    return np.array([index[lab] for lab in labels], dtype=np.int64)


def encode_label_sets(texts: Sequence[str], label_sets: Sequence, classes: list[str]) -> np.ndarray:
    """Rows x classes of 0/1; each label must be a list of classes (empty: none of them)."""
    texts = check_fit_inputs(texts, label_sets, "label sets", "one per text")
    index = {c: i for i, c in enumerate(classes)}
    Y = np.zeros((len(texts), len(classes)), dtype=np.int8)
    for row, labels in enumerate(label_sets):
        if isinstance(labels, str) or not hasattr(labels, "__iter__"):
            raise LabelloopError(f"label #{row} is {labels!r}; a multi-label student takes a list of classes per "
                                 "text ([] for none of them)")
        for lab in labels:
            if lab not in index:
                raise LabelloopError(f"label {lab!r} (text #{row}) is not among the classes {classes!r}; "
                                     "fix the labels or add the class to classification.classes")
            Y[row, index[lab]] = 1
    return Y


def decode_row(row: np.ndarray, classes: Sequence[str]) -> list[str]:
    """The classes a 0/1 row holds."""
    return [classes[j] for j in np.flatnonzero(row)]


# ------------------------------------------------------------ balancing


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'balanced' weights n / (k * count) for the classes present; 1.0 for absent ones (unused)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def oversample_indices(y: np.ndarray, seed: int) -> np.ndarray:
    """Indices that repeat each present class up to the largest class's count (seeded)."""
    rng = np.random.default_rng(seed)
    counts = Counter(y.tolist())
    most = max(counts.values())
    out = []
    for cls in sorted(counts):
        idx = np.flatnonzero(y == cls)
        extra = rng.choice(idx, size=most - len(idx), replace=True) if most > len(idx) else idx[:0]
        out.append(np.concatenate([idx, extra]))
    order = np.concatenate(out)
    return order[rng.permutation(len(order))]


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed python/numpy/torch for a block, then restore the global RNG states as they were."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
