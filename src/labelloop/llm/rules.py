"""Labeling rules: written by the large LLM, edited by people, versioned in the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from labelloop.errors import LabelloopError
from labelloop.files import write_yaml
from labelloop.llm.base import Backend, Generation
from labelloop.llm.calls import CallLog
from labelloop.llm.prompts import PromptSet, build_rules_messages
from labelloop import labels as policy
from labelloop.store import Label, Rules, Store

RULES_MAX_TOKENS = 1024  # the default of rules_max_tokens


def _max_tokens(backend: Backend) -> int:
    settings = getattr(backend, "settings", None)
    return int(getattr(settings, "rules_max_tokens", RULES_MAX_TOKENS))


def missing_classes(text: str, classes: Sequence[str]) -> list[str]:
    """Classes the rules never name (case-insensitive, as a whole word)."""
    return [c for c in classes if not re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text, re.I)]


def _clean(text: str) -> str:
    text = text.strip()
    fenced = re.fullmatch(r"```[a-zA-Z]*\n(.*?)\n?```", text, re.S)
    return (fenced.group(1) if fenced else text).strip()


async def _write(call_log: CallLog, backend: Backend, *, description: str, classes: Sequence[str],
                 samples: Sequence[str], prompts: PromptSet | None = None, multi_label: bool = False) -> Generation:
    messages = build_rules_messages(description, classes, samples, prompts, multi_label=multi_label)
    gen = await call_log.generate(backend, messages, "rules", max_tokens=_max_tokens(backend), temperature=0.0)
    missing = missing_classes(gen.text, classes)
    if missing:
        fix = [*messages, {"role": "assistant", "content": gen.text}, {"role": "user", "content": (
            f"Your rules never name the class(es) {', '.join(missing)}. Rewrite the numbered rules so that "
            f"every class ({', '.join(classes)}) is named and described. Output only the rules.")}]
        second = await call_log.generate(backend, fix, "rules", max_tokens=_max_tokens(backend), temperature=0.0)
        if len(missing_classes(second.text, classes)) < len(missing):
            gen = second
    if not _clean(gen.text):
        raise LabelloopError(
            f"{backend.identity} wrote empty rules; check the large model, or write them yourself with "
            "`labelloop rules edit OUTPUT_DIR`"
        )
    return gen


async def write_rules(call_log: CallLog, backend: Backend, *, description: str, classes: Sequence[str],
                      samples: Sequence[str], prompts: PromptSet | None = None, multi_label: bool = False) -> str:
    """Numbered labeling rules (default class, edge cases; multi-label: when each label applies)."""
    gen = await _write(call_log, backend, description=description, classes=classes, samples=samples,
                       prompts=prompts, multi_label=multi_label)
    return _clean(gen.text)


# Words a rule may use without saying anything about a class.
_FILLER = set("""a an the and or of to in on for with by as is are be it its this that these those when which
what label labels labeled labelling labeling text texts document documents article articles item items class
classes classify category mainly mostly about main subject topic topics if else otherwise use used default
rule rules no none any one each every clearly apply applies belongs belong it's not do does should must""".split())


def says_nothing(text: str, classes: Sequence[str]) -> bool:
    """True when rules only restate the class names ("label a text sports when it is about sports").

    What is left after removing the class names, numbering and filler words must hold at least
    two words of its own per class.
    """
    low = text.lower()
    for name in sorted(classes, key=len, reverse=True):
        low = re.sub(rf"(?<!\w){re.escape(name.lower())}(?!\w)", " ", low)
    words = {w for w in re.findall(r"[a-z][a-z'-]+", low) if w not in _FILLER and len(w) > 2}
    return len(words) < 2 * len(classes)


def description_rules(description: str, classes: Sequence[str]) -> str:
    """Rules made from the task description, when the model's rules say nothing."""
    return "\n".join([f"1. {description.strip()}", f"2. Choose exactly one of: {', '.join(classes)}."])


async def create_rules(store: Store, backend: Backend, *, description: str, classes: Sequence[str],
                       samples: Sequence[str], call_log: CallLog | None = None,
                       prompts: PromptSet | None = None, notes: list[str] | None = None,
                       multi_label: bool = False) -> Rules:
    """Write rules with the backend and store them as a new version authored by its model.

    Rules that only restate the class names are replaced by the description (noted in `notes`);
    people can edit them in the review app or with `labelloop rules edit`.
    """
    gen = await _write(call_log or CallLog(store), backend, description=description, classes=classes,
                       samples=samples, prompts=prompts, multi_label=multi_label)
    writer = getattr(backend, "generate_model", backend.model)
    text = _clean(gen.text)
    if says_nothing(text, classes) and not says_nothing(description, classes):
        if notes is not None:
            notes.append(f"the rules {writer} wrote only restate the class names; the task description is used as "
                         "the rules instead (edit them in the review app, or with `labelloop rules edit`)")
        return store.add_rules(description_rules(description, classes), author=f"description ({writer}'s rules "
                               "restated the classes)", model=writer, call_id=gen.call_id)
    return store.add_rules(text, author=writer, model=writer, call_id=gen.call_id)


def edit_rules(store: Store, new_text: str, author: str = "human") -> Rules:
    """Save edited rules as a new version (unchanged text keeps the current version)."""
    text = new_text.strip()
    if not text:
        raise LabelloopError("the new rules are empty; nothing saved. Write at least one rule, or keep the old ones")
    current = store.rules()
    if current is not None and current.text.strip() == text:
        return current
    return store.add_rules(text, author=author)


def stale_llm_labels(store: Store) -> list[Label]:
    """LLM labels made under an older rules version and not overridden by a person: what to re-label."""
    latest = store.rules()
    if latest is None:
        return []
    decided = policy.decided_chunks(store.labels(policy.HUMAN))
    return [
        lab for source in policy.LLM_SOURCES for lab in store.labels(source)
        if lab.rules_version is not None and lab.rules_version < latest.version and lab.chunk_id not in decided
    ]


class _BlockDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def _rules_call(store: Store, rules: Rules):
    """The logged call that wrote a rules version (None for human edits)."""
    if rules.call_id is None:
        return None
    return next((c for c in store.calls("rules") if c.id == rules.call_id and c.status == "ok"), None)


def write_rules_yaml(store: Store, path: str | Path) -> Path:
    """rules_creation_generation.yaml: every rules version with the prompt and reply that made it."""
    versions = []
    for rules in store.all_rules():
        entry = {"version": rules.version, "author": rules.author, "model": rules.model,
                 "created_at": rules.created_at, "text": rules.text}
        call = _rules_call(store, rules)
        if call is not None:
            entry["prompt"] = (call.request or {}).get("sent", {}).get("messages") or \
                (call.request or {}).get("inputs", {}).get("messages")
            entry["response"] = call.response.get("text")
        versions.append(entry)
    path = Path(path)
    write_yaml(path, {"rules_versions": versions}, Dumper=_BlockDumper)
    return path
