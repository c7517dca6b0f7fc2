"""Labeling rules: written by the large LLM, edited by people, versioned in the store."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from labelloop.errors import LabelloopError
from labelloop.llm.base import Backend, Generation
from labelloop.llm.calls import CallLog
from labelloop.llm.prompts import PromptSet, build_rules_messages
from labelloop.store import LLM_SOURCES, Label, Rules, Store

RULES_MAX_TOKENS = 1024


def missing_classes(text: str, classes: Sequence[str]) -> list[str]:
    """Classes the rules never name (case-insensitive, as a whole word)."""
    return [c for c in classes if not re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text, re.I)]


def _clean(text: str) -> str:
    text = text.strip()
    fenced = re.fullmatch(r"```[a-zA-Z]*\n(.*?)\n?```", text, re.S)
    return (fenced.group(1) if fenced else text).strip()


async def _write(call_log: CallLog, backend: Backend, *, description: str, classes: Sequence[str],
                 samples: Sequence[str], prompts: PromptSet | None = None) -> Generation:
    messages = build_rules_messages(description, classes, samples, prompts)
    gen = await call_log.generate(backend, messages, "rules", max_tokens=RULES_MAX_TOKENS, temperature=0.0)
    missing = missing_classes(gen.text, classes)
    if missing:
        fix = [*messages, {"role": "assistant", "content": gen.text}, {"role": "user", "content": (
            f"Your rules never name the class(es) {', '.join(missing)}. Rewrite the numbered rules so that "
            f"every class ({', '.join(classes)}) is named and described. Output only the rules.")}]
        second = await call_log.generate(backend, fix, "rules", max_tokens=RULES_MAX_TOKENS, temperature=0.0)
        if len(missing_classes(second.text, classes)) < len(missing):
            gen = second
    if not _clean(gen.text):
        raise LabelloopError(
            f"{backend.identity} wrote empty rules; check the large model, or write them yourself with "
            "`labelloop rules edit OUTPUT_DIR`"
        )
    return gen


async def write_rules(call_log: CallLog, backend: Backend, *, description: str, classes: Sequence[str],
                      samples: Sequence[str], prompts: PromptSet | None = None) -> str:
    """Numbered labeling rules (default class, edge cases) from the description and sample chunks."""
    gen = await _write(call_log, backend, description=description, classes=classes, samples=samples,
                       prompts=prompts)
    return _clean(gen.text)


async def create_rules(store: Store, backend: Backend, *, description: str, classes: Sequence[str],
                       samples: Sequence[str], call_log: CallLog | None = None,
                       prompts: PromptSet | None = None) -> Rules:
    """Write rules with the backend and store them as a new version authored by its model."""
    gen = await _write(call_log or CallLog(store), backend, description=description, classes=classes,
                       samples=samples, prompts=prompts)
    return store.add_rules(_clean(gen.text), author=backend.model, model=backend.model, call_id=gen.call_id)


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
    human = {lab.chunk_id for lab in store.labels("human")}
    return [
        lab for source in LLM_SOURCES for lab in store.labels(source)
        if lab.rules_version is not None and lab.rules_version < latest.version and lab.chunk_id not in human
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump({"rules_versions": versions}, Dumper=_BlockDumper, sort_keys=False,
                              allow_unicode=True, width=100), encoding="utf-8")
    return path
