"""What the students with a frozen body share: features computed once, and a head chosen on them.

The embedding-head and static students turn texts into fixed vectors and fit a logistic-regression
head on them. Their single-label head settings (C, and balancing "auto") are chosen by
cross-validation (labelloop.classify.head.choose_head): the round's cross-validation
(`cross_val_proba`, which the loop runs to rank label errors) chooses them on every training
label, and the fit that follows uses that choice on the labels kept. A fit with no
cross-validation before it chooses on its own rows.
"""

from __future__ import annotations

import numpy as np

from labelloop.classify.base import fixed_balancing, stratified_splits
from labelloop.classify.head import DEFAULT_C, HeadSettings, choose_head, fit_head

CHOICE_FOLDS = 5  # folds of a fit's own choice, when no cross-validation came before it


class FrozenHeadMixin:
    """For a BaseStudent subclass with `C`, `balancing`, `seed` and a `_features(texts, fitting)` method."""

    _cv_choice: HeadSettings | None = None  # what the last cross_val_proba chose; the next fit uses it

    def _features(self, texts: list[str], fitting: bool = False) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, texts: list[str], y: np.ndarray, classes: list[str], soft: np.ndarray | None = None) -> None:
        X = self._features(texts, fitting=True)
        settings = self._settings_for(X, y, len(classes))
        self.coef_, self.intercept_ = fit_head(X, y, len(classes), balancing=settings.balancing, seed=self.seed,
                                               C=settings.C, soft=soft)
        self.head_settings_ = settings

    def _cross_val(self, texts: list[str], y: np.ndarray, classes: list[str], splits, probs: np.ndarray,
                   stop_after=None) -> np.ndarray:
        """The body is frozen: each text is featurised once, and only the head is fitted per fold and setting."""
        X = self._features(texts)
        self._cv_choice, probs = choose_head(X, y, len(classes), splits, C=self.C, balancing=self.balancing,
                                             seed=self.seed, probs=probs)
        return probs

    def _settings_for(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> HeadSettings:
        if self.C is not None and self.balancing != "auto":
            return HeadSettings(float(self.C), self.balancing)
        if self._cv_choice is not None:
            chosen, self._cv_choice = self._cv_choice, None
            return chosen
        splits = stratified_splits(y, CHOICE_FOLDS, self.seed)
        if splits is None:  # nothing to hold out: the settings used where nothing is chosen
            return HeadSettings(DEFAULT_C if self.C is None else float(self.C), fixed_balancing(self.balancing))
        return choose_head(X, y, n_classes, splits, C=self.C, balancing=self.balancing, seed=self.seed)[0]

    def head_meta(self) -> dict:
        """labelloop.json's C and balancing: the ones this head was fitted with (a loaded head keeps them)."""
        settings = self.__dict__.get("head_settings_")
        if settings is None or self.multi_label:
            return {"C": DEFAULT_C if self.C is None else self.C, "balancing": fixed_balancing(self.balancing)}
        return {"C": settings.C, "balancing": settings.balancing, "head_choice": settings.to_dict()}
