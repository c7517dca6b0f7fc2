"""How the fine-tuned students check their labels: with their frozen base encoder and a head."""

from __future__ import annotations

import numpy as np

from labelloop.classify.embedding_head import EmbeddingHeadStudent
from labelloop.errors import ModelNotAvailableError


class FineTunedLabelCheck:
    """For the fine-tuned single-label students (setfit, transformer): their labels are checked by the frozen
    base encoder + head, not by `folds` fine-tunes of their own.

    Their own cross-validation would fine-tune the body `folds` more times every round (minutes each on a
    CPU) only to rank label errors. The embedding-head student on the same base model and length gives
    out-of-sample probabilities for that in seconds. A multi-label student still cross-validates itself:
    its thresholds are tuned on its own out-of-fold probabilities. A base model that sentence-transformers
    cannot load as an encoder is cross-validated the slow way.
    """

    def _base_encoder(self) -> str | None:
        raise NotImplementedError

    def label_check_proba(self, texts: list[str], labels: list, folds: int = 5) -> np.ndarray:
        if self.multi_label:
            return self.cross_val_proba(texts, labels, folds=folds)
        frozen = EmbeddingHeadStudent(self.classes, encoder_path=self._base_encoder(),
                                      cache=getattr(self, "cache", None), balancing=self.balancing,
                                      max_seq_length=self.max_seq_length, seed=self.seed)
        try:
            return frozen.cross_val_proba(texts, labels, folds=folds)
        except ModelNotAvailableError:
            return self.cross_val_proba(texts, labels, folds=folds)
