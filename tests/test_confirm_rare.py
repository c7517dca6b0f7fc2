"""review.confirm_rare: the large model checks the small model's labels of rare classes before a round trains."""

from __future__ import annotations

import pytest
import yaml
from rich.console import Console

from labelloop import labels as policy
from labelloop.config import load_config
from labelloop.loop.label_errors import RARE_SHARE_OF_EVEN, rare_classes
from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import CLASSES, write_project


@pytest.mark.unit
def test_a_class_is_rare_below_half_an_even_share_of_the_labels_given():
    assert RARE_SHARE_OF_EVEN == 0.5
    classes = ["a", "b", "c", "d"]  # an even share is 25%, so below 12.5% is rare
    labels = ["a"] * 70 + ["b"] * 18 + ["c"] * 12
    assert rare_classes(labels, classes) == ["c"]  # d is never given: there is nothing of it to check
    assert rare_classes(["a"] * 50 + ["b"] * 50, ["a", "b"]) == []
    assert rare_classes(["a"] * 76 + ["b"] * 24, ["a", "b"]) == ["b"]


def rare_tech_docs():
    """BBC articles with tech rare: 3 of 63."""
    docs = bbc_docs(per_class=15, seed=5)
    tech = [d for d in docs if d[1] == "tech"]
    return [d for d in docs if d[1] != "tech"] + tech[:3]


def run_project(tmp_path, docs, *, confirm: bool, same_model: bool = False):
    tmp_path.mkdir(parents=True, exist_ok=True)
    with FakeOpenAI(gold=dict(docs), accuracy=0.9, seed=3) as small, FakeOpenAI(gold=dict(docs), accuracy=1.0) as large:
        cfg_path = write_project(tmp_path, docs, small, max_iters=1, test_set_size=10, train_set_size=50)
        raw = yaml.safe_load(cfg_path.read_text())
        if not same_model:
            raw["large_model"] = {**raw["small_model"], "base_url": large.base_url}
        raw["classification"]["predict_on_whole_set_at_the_end"] = False
        raw["review"] = {"confirm_rare": confirm}
        cfg_path.write_text(yaml.safe_dump(raw))
        config = load_config(cfg_path)
        from labelloop.loop.runner import run

        console = Console(record=True, width=300)
        run(config, console=console, progress=False)
        calls = large.total
        run(config, console=Console(quiet=True), progress=False)  # resumed: asks nothing again
        assert large.total == calls
    return config, console.export_text()


@pytest.mark.e2e
def test_small_model_labels_of_a_rare_class_go_to_the_large_model_whose_label_trains(tmp_path):
    config, printed = run_project(tmp_path, rare_tech_docs(), confirm=True)
    store = Store(config.db_path)
    train = [c.id for c in store.chunks("train")]
    small, large = store.labels_by_chunk(policy.SMALL), store.labels_by_chunk(policy.LARGE)
    rare = rare_classes([small[cid].label for cid in train], CLASSES)
    assert rare  # the fake small model's errors spread over every topic, so tech's share stays small
    given_rare = {cid for cid in train if small[cid].label in rare}
    checked = {cid for cid in train if cid in large}
    assert given_rare and checked == given_rare  # exactly the rare-class labels, and nothing else
    gold = {c.id: c.metadata["gold"] for c in store.chunks()}
    assert all(large[cid].label == gold[cid] for cid in checked)
    final = store.final_labels(train)
    assert all(final[cid].source == policy.LARGE for cid in checked)
    it = [i for i in store.iterations() if i.status == "done"][0]
    assert it.metrics["train_label_sources"][policy.LARGE] == len(checked)
    assert f"the large model labeled the {len(checked)} chunks the small model gave them" in printed


@pytest.mark.e2e
def test_nothing_is_asked_when_off_or_when_both_roles_are_one_model(tmp_path):
    docs = rare_tech_docs()
    config, printed = run_project(tmp_path / "off", docs, confirm=False)
    store = Store(config.db_path)
    assert not set(store.labels_by_chunk(policy.LARGE)) & {c.id for c in store.chunks("train")}
    assert "Rare classes" not in printed
    config, printed = run_project(tmp_path / "same", docs, confirm=True, same_model=True)
    store = Store(config.db_path)
    assert not set(store.labels_by_chunk(policy.LARGE)) & {c.id for c in store.chunks("train")}
    assert "not confirmed: the small and large roles are the same model" in printed
