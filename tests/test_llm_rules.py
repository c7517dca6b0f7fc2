"""Rules: written by the large LLM (fake server), versioned, edited, and what a new version re-labels."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from labelloop.config import LLMSection
from labelloop.errors import LabelloopError
from labelloop.llm.calls import CallLog
from labelloop.llm.openai_backend import OpenAIBackend
from labelloop.llm.prompts import RULES_SAMPLE_CHARS, find_classes
from labelloop.llm.rules import create_rules, edit_rules, stale_llm_labels, write_rules, write_rules_yaml
from labelloop.store import NewChunk, Store

pytestmark = pytest.mark.unit

CLASSES = ["business", "entertainment", "politics", "sports", "tech"]


@pytest.fixture
def store(tmp_path, bbc_news):
    s = Store(tmp_path / "labelloop.db")
    s.add_document("bbc", "0" * 64, None, [NewChunk(t, "bbc", i) for i, t in enumerate(bbc_news(2))])
    return s


def backend(fake) -> OpenAIBackend:
    return OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model="big-model"), 2)


def test_create_rules_stores_a_version_by_the_model(store, fake_server) -> None:
    fake = fake_server(models=["big-model"], classes=CLASSES)
    samples = [c.text for c in store.chunks()[:3]]
    rules = asyncio.run(create_rules(store, backend(fake), description="BBC topics", classes=CLASSES,
                                     samples=samples))
    assert rules.version == 1 and rules.author == "big-model" and rules.model == "big-model"
    assert rules.text.startswith("1. ") and all(f"`{c}`" in rules.text for c in CLASSES)
    sent = fake.requests[-1]["messages"]
    assert find_classes(sent[-1]["content"]) == CLASSES  # the rules prompt shows every class
    assert samples[0][:RULES_SAMPLE_CHARS].rstrip() in sent[-1]["content"]  # each sample shown, cut to a few lines
    # The call log answers the same request again without the server.
    again = asyncio.run(write_rules(CallLog(store), backend(fake), description="BBC topics", classes=CLASSES,
                                    samples=samples))
    assert again == rules.text and fake.total == 1 and store.call_stats()["cache_hits"] == 1


def test_rules_yaml_has_every_version_with_prompt_and_response(store, fake_server, tmp_path) -> None:
    fake = fake_server(models=["big-model"], classes=CLASSES)
    asyncio.run(create_rules(store, backend(fake), description="BBC topics", classes=CLASSES, samples=["x"]))
    edit_rules(store, "1. Everything about money is business.\n2. Default: tech.")
    path = write_rules_yaml(store, tmp_path / "out" / "rules_creation_generation.yaml")
    versions = yaml.safe_load(path.read_text())["rules_versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["author"] == "big-model" and versions[1]["author"] == "human"
    assert versions[0]["prompt"][0]["role"] == "system" and versions[0]["response"].strip() == versions[0]["text"]
    assert "prompt" not in versions[1] and versions[1]["text"].startswith("1. Everything")


def test_edit_rules_versions_and_refuses_empty(store) -> None:
    first = edit_rules(store, "1. Rule one.")
    assert edit_rules(store, "  1. Rule one.\n") == first  # unchanged text: no new version
    second = edit_rules(store, "1. Rule one.\n2. Rule two.", author="ana")
    assert second.version == 2 and second.author == "ana"
    with pytest.raises(LabelloopError, match="empty"):
        edit_rules(store, "   ")
    assert store.rules().version == 2


def test_stale_labels_are_old_llm_labels_not_overridden_by_people(store) -> None:
    assert stale_llm_labels(store) == []
    v1 = edit_rules(store, "1. v1")
    ids = [c.id for c in store.chunks()]
    for cid in ids[:4]:
        store.set_label(cid, "llm-small", "tech", rules_version=v1.version)
    store.set_label(ids[4], "llm-large", "politics", rules_version=v1.version)
    store.set_label(ids[5], "llm-small", None, status="unlabeled", rules_version=v1.version)
    store.set_label(ids[0], "human", "business")
    store.set_label(ids[1], "student", "tech")
    assert stale_llm_labels(store) == []  # still the latest rules
    v2 = edit_rules(store, "1. v2")
    store.set_label(ids[6], "llm-small", "sports", rules_version=v2.version)
    stale = stale_llm_labels(store)
    assert sorted((lab.chunk_id, lab.source) for lab in stale) == sorted(
        [(ids[1], "llm-small"), (ids[2], "llm-small"), (ids[3], "llm-small"), (ids[4], "llm-large"),
         (ids[5], "llm-small")])


@pytest.mark.parametrize(("text", "empty"), [
    ("1. Label a text sports when it is a sports.\n2. Label a text business when it is a business.", True),
    ("Classes: sports, business\n1. Use sports when the text is mainly about sports.\n"
     "Default: if no rule clearly applies, label the text business.", True),
    ("1. sports: matches, players, teams, goals and tournaments.\n2. business: companies, markets, shares.", False),
])
def test_rules_that_only_restate_the_classes_are_caught(text, empty):
    from labelloop.llm.rules import says_nothing

    assert says_nothing(text, ["sports", "business"]) is empty


def test_rules_that_say_nothing_fall_back_to_the_description(tmp_path):
    """Gemma 270M's rules restate the class names; the description, which does say something, is used."""
    from labelloop.llm.base import Generation
    from labelloop.llm.rules import create_rules

    class Restater:
        identity = model = "restater"

        async def generate(self, messages, *, max_tokens, temperature):
            return Generation(text="1. sports: when it is sports.\n2. business: when it is business.",
                              request={}, response={})

    store = Store(tmp_path / "p.db")
    notes: list[str] = []
    desc = "Sports news (matches, players, results) versus business news (companies, markets, shares)."
    rules = asyncio.run(create_rules(store, Restater(), description=desc, classes=["sports", "business"],
                                     samples=["x"], notes=notes))
    assert desc in rules.text and "description" in rules.author
    assert len(notes) == 1 and "only restate the class names" in notes[0]
