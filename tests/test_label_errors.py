"""Label-error detection: cleanlab on out-of-sample probabilities, and the loop that flags, re-labels, samples and stops."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rich.console import Console

from labelloop.config import load_config
from labelloop.classify import make_student
from labelloop.classify.label_quality import rank_label_issues
from labelloop.loop.label_errors import METRICS_KEY
from labelloop.loop.pool_state import student_probs
from labelloop.loop.sampling import margins
from labelloop.loop.stopping import STOP_SET_KEY
from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import CLASSES, write_project

pytestmark = pytest.mark.e2e


class DictCache:
    """An in-memory embedding cache (the EmbeddingCache protocol)."""

    def __init__(self):
        self.data: dict = {}

    def get(self, keys):
        return {k: self.data[k] for k in keys if k in self.data}

    def put(self, vectors):
        self.data.update(vectors)


def test_confident_learning_finds_flipped_labels_in_real_articles():
    docs = bbc_docs(per_class=12, seed=7)
    texts, gold = [t for t, _ in docs], [lab for _, lab in docs]
    rng = np.random.default_rng(0)
    flipped = set(rng.choice(len(docs), size=8, replace=False).tolist())
    given = [CLASSES[(CLASSES.index(g) + 1) % 5] if i in flipped else g for i, g in enumerate(gold)]
    student = make_student("embedding-head", CLASSES, cache=DictCache(), max_seq_length=128)
    probs = student.cross_val_proba([t[:600] for t in texts], given)
    ranked = rank_label_issues(np.array([CLASSES.index(g) for g in given]), probs)
    hits = [i for i in ranked if i in flipped]
    base_rate = len(flipped) / len(docs)
    assert len(hits) / len(ranked) >= 3 * base_rate, (ranked, flipped)  # flags are wrong far more often
    assert len(hits) >= 5  # most of the 8 flipped labels are found
    with pytest.raises(ValueError, match="cleanlab could not rank"):
        rank_label_issues(np.array([0, 0, 1]), np.array([[0.5, 0.5]] * 2))


@pytest.fixture(scope="module")
def active_run(tmp_path_factory):
    """A run with diverse-uncertainty sampling, a noisy small model, a right large one, and re-labeling."""
    tmp = tmp_path_factory.mktemp("active")
    docs = bbc_docs(per_class=14, seed=11)
    with FakeOpenAI(gold=dict(docs), accuracy=0.65, seed=4) as small, FakeOpenAI(gold=dict(docs), accuracy=1.0) as large:
        cfg_path = write_project(tmp, docs, small, max_iters=3, test_set_size=20, train_set_size=30,
                                 train_set_increment=10)
        raw = yaml.safe_load(cfg_path.read_text())
        raw["large_model"] = {**raw["small_model"], "base_url": large.base_url}
        raw["classification"]["predict_on_whole_set_at_the_end"] = False
        raw["sampling"] = {"strategy": "diverse-uncertainty", "seed": 2}
        raw["review"] = {"relabel_suspects": True}
        raw["stopping"] = {"kappa": 0.0, "kappa_window": 1}  # any agreement: stops after round 2
        cfg_path.write_text(yaml.safe_dump(raw))
        config = load_config(cfg_path)
        from labelloop.loop.runner import run

        console = Console(record=True, width=300)
        run(config, console=console, progress=False)
        calls = small.total + large.total
        run(config, console=Console(quiet=True), progress=False)  # resumed: nothing new
        again = small.total + large.total
        yield config, console.export_text(), calls, again


def test_loop_flags_and_relabels_llm_label_errors(active_run):
    config, printed, *_ = active_run
    store = Store(config.db_path)
    its = [it for it in store.iterations() if it.status == "done"]
    flags = its[0].metrics[METRICS_KEY]
    assert flags["checked"] == its[0].train_size and flags["flagged"]
    small = store.labels_by_chunk("llm-small")
    gold = {c.id: c.metadata["gold"] for c in store.chunks()}  # the JSONL's gold key, never shown to the LLM
    train = {c.id for c in store.chunks("train")}
    wrong = {cid for cid, lab in small.items() if cid in train and lab.label != gold[cid]}
    precision = np.mean([cid in wrong for cid in flags["flagged"]])
    base_rate = len(wrong) / len(train & set(small))
    assert precision > base_rate, (precision, base_rate)
    # the flagged small-model labels went to the large model, whose label now trains the student
    relabeled = flags["relabeled"]
    assert relabeled and set(relabeled) <= set(flags["flagged"])
    large = store.labels_by_chunk("llm-large")
    assert all(large[cid].label == gold[cid] for cid in relabeled)
    assert its[1].metrics["train_label_sources"]["llm-large"] == len(relabeled)
    assert "re-labeled by the large model" in printed


def test_loop_samples_uncertain_chunks_and_stores_its_stop_reason(active_run):
    config, printed, calls, again = active_run
    store = Store(config.db_path)
    its = [it for it in store.iterations() if it.status == "done"]
    assert [it.n for it in its] == [1, 2]
    assert "predictions stabilized" in its[-1].stop_reason and "predictions stabilized" in printed
    assert all(len(it.metrics[STOP_SET_KEY]["pred"]) > 0 for it in its)
    assert again == calls  # the resumed run re-labeled nothing and asked for nothing
    # round 2's chunks are among the least certain for student 1, over the pool it chose from
    from labelloop.classify.student_input import StudentInput

    round2 = {c.id for c in store.chunks("train") if c.split_iteration == 2}
    pool = [c for c in store.chunks() if c.split is None or c.id in round2]
    prepare = StudentInput.from_config(config)
    m = margins(student_probs(config, store, its[0].model_path, pool, prepare))
    uncertain = {pool[i].id for i in np.argsort(m, kind="stable")[: 10 * len(round2)]}
    assert len(round2) == 10 and round2 <= uncertain
