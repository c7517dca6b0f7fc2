"""The loop's LLM steps: rules, and labeling chunks by role. Every call goes through the call log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from labelloop.config import Config, resolve_llm
from labelloop.llm.base import Example
from labelloop.store import Chunk, Rules, Store

ROLE_SOURCE = {"small": "llm-small", "large": "llm-large"}
SOURCE_ROLE = {v: k for k, v in ROLE_SOURCE.items()}


def with_backend(config: Config, role: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run fn(backend) in a fresh event loop; the backend is made and closed inside it."""
    from labelloop.llm.factory import make_backend
    from labelloop.llm.prompts import PromptSet

    async def main() -> Any:
        backend = make_backend(resolve_llm(config, role), config.system, PromptSet.from_config(config))  # type: ignore[arg-type]
        try:
            return await fn(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def prompt_notes(config: Config) -> list[str]:
    """One line per prompt file that this run does not use, and why (custom prompts are never ignored silently)."""
    from labelloop.llm.prompts import PromptSet

    prompts = PromptSet.from_config(config)
    notes = list(prompts.notes)
    if prompts.label_messages is not None:
        for role in ("small", "large"):
            if resolve_llm(config, role).mode != "api":  # type: ignore[arg-type]
                notes.append(
                    f"prompt file {prompts.label_messages.path} is not used by the {role} model: it runs embedded "
                    "(llama.cpp), which scores the class names with its own prompt; give that role mode: api "
                    "to label with this file")
    if prompts.rules_messages is not None and resolve_llm(config, "large").mode != "api":
        notes.append(f"prompt file {prompts.rules_messages.path} is used by the embedded large model as a plain "
                     "completion prompt (no chat turns)")
    return notes


def ensure_rules(config: Config, store: Store, samples: Sequence[str]) -> Rules:
    """The latest rules; the large model writes version 1 if there are none yet."""
    rules = store.rules()
    if rules is not None:
        return rules
    from labelloop.llm.prompts import PromptSet
    from labelloop.llm.rules import create_rules

    return with_backend(
        config,
        "large",
        lambda backend: create_rules(
            store, backend,
            description=config.classification.desc,
            classes=config.classes,
            samples=list(samples),
            prompts=PromptSet.from_config(config),
        ),
    )


def few_shot_examples(store: Store, exclude: set[int] = frozenset()) -> list[tuple[int, Example]]:
    """Human-reviewed labels, the labeler's few-shot pool."""
    out = []
    for lab in store.labels("human"):
        if lab.status == "ok" and lab.label is not None and lab.chunk_id not in exclude:
            out.append((lab.chunk_id, Example(text=store.chunk(lab.chunk_id).text, label=lab.label)))
    return out


def label(
    config: Config,
    store: Store,
    chunks: Sequence[Chunk],
    role: str,
    rules: Rules,
    *,
    iteration: int | None,
    embed: Callable[[list[str]], Any] | None,
    progress: bool = True,
) -> Any:
    """Label chunks with one role's model; results land in the store as they arrive."""
    if not chunks:
        return None
    from labelloop.llm.fewshot import FewShotPicker
    from labelloop.llm.labeler import label_chunks

    pool = [ex for _cid, ex in few_shot_examples(store, exclude={c.id for c in chunks})]
    picker = (
        FewShotPicker(pool, embed=embed, per_class=config.review.few_shot_per_class)
        if pool and embed is not None and config.review.few_shot_per_class > 0
        else None
    )
    return with_backend(
        config,
        role,
        lambda backend: label_chunks(
            store, backend, list(chunks),
            source=ROLE_SOURCE[role],
            classes=config.classes,
            rules=rules,
            description=config.classification.desc,
            few_shot=picker,
            concurrency_limit=config.system.concurrency_limit,
            iteration=iteration,
            progress=progress,
        ),
    )


def missing_labels(store: Store, chunks: Sequence[Chunk], source: str, rules: Rules) -> list[Chunk]:
    """Chunks that still need this source's label: none yet, or one made under older rules.

    A chunk a human has labeled needs nothing: the human label wins regardless of rules.
    """
    have = store.labels_by_chunk(source)
    human = store.labels_by_chunk("human")
    todo = []
    for c in chunks:
        lab = have.get(c.id)
        if c.id in human:
            continue
        if lab is None or (lab.rules_version or 0) < rules.version:
            todo.append(c)
    return todo
