"""Reviews and rules edits flow back into `labelloop run`, relabeling only what they must."""

from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

import yaml

from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import CLASSES, write_project

pytestmark = pytest.mark.e2e

LABELLOOP = str(Path(sys.executable).parent / "labelloop")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, timeout=600)


def test_reviews_become_gold_and_training_labels_and_rules_edits_relabel_only_llm_labels(tmp_path):
    docs = bbc_docs(per_class=8, seed=5)
    gold = dict(docs)
    with FakeOpenAI(gold=gold, accuracy=0.8, seed=2) as fake:
        cfg = write_project(tmp_path, docs, fake, max_iters=1, test_set_size=12, train_set_size=20)
        raw = yaml.safe_load(cfg.read_text())
        raw["review"] = {"gold_min": 10}
        cfg.write_text(yaml.safe_dump(raw))
        assert cli("run", str(cfg)).returncode == 0
        out = tmp_path / "output"
        store = Store(out / "labelloop.db")
        calls_before = fake.total

        # A person reviews every test chunk (gold), discarding one, and corrects three training labels.
        test = store.chunks("test")
        for c in test[1:]:
            store.record_review(c.id, "correct", fake.teacher.true_label(c.text), "ok", "ana")
        store.record_review(test[0].id, "discard", None, "discarded", "ana")
        train = store.chunks("train")
        for c in train[:3]:
            store.record_review(c.id, "correct", fake.teacher.true_label(c.text), "ok", "ana")
        store.record_review(train[3].id, "discard", None, "discarded", "ana")

        res = cli("run", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        assert fake.total == calls_before  # reviews cost no LLM call
        its = [it for it in store.iterations() if it.status == "done"]
        assert [it.n for it in its] == [1, 2]  # retrained once on the reviewed labels
        assert its[-1].gold_size == 11 and its[-1].gold_accuracy is not None
        # The test set is scored against the person's labels, and the discarded chunk left it: it is the gold set.
        assert its[-1].test_size == 11 and its[-1].accuracy == its[-1].gold_accuracy
        truth = yaml.safe_load((out / "classifiers" / "truth_labels_classification" / "llm_classifications.yaml")
                               .read_text())
        assert {t["chunk_id"]: t["label_source"] for t in truth} == {
            test[0].id: None, **{c.id: "human" for c in test[1:]}}
        assert its[-1].train_size == its[0].train_size - 1  # the discarded chunk left training
        sources = its[-1].metrics["train_label_sources"]
        assert sources["human"] == 3
        assert "accuracy vs human gold" in (out / "report.html").read_text()

        # A new rules version: the next run re-labels the LLM labels a person has not overridden.
        new_rules = tmp_path / "rules.md"
        new_rules.write_text("1. Label by the main topic.\n2. Default: business.\nClasses: " + ", ".join(CLASSES))
        edit = cli("rules", "edit", str(out), "--from-file", str(new_rules))
        assert edit.returncode == 0 and "will be re-labeled" in edit.stdout
        human_ids = {lab.chunk_id for lab in store.labels("human")}
        stale = [lab for src in ("llm-small", "llm-large") for lab in store.labels(src)
                 if lab.chunk_id not in human_ids]
        fake.reset_counts()
        assert cli("run", str(cfg)).returncode == 0
        assert fake.by_status["200"] == len(stale)  # exactly the stale labels, nothing else
        assert all(lab.rules_version == 2 for lab in store.labels("llm-small") if lab.chunk_id not in human_ids)
        assert all(lab.rules_version == 1 for lab in store.labels("llm-large"))  # all test chunks are human
        assert [it.n for it in store.iterations() if it.status == "done"] == [1, 2, 3]
