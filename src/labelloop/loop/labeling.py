"""The loop's LLM steps: rules, and labeling chunks by role. Every call goes through the call log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from labelloop import labels as policy
from labelloop.config import Config, resolve_llm
from labelloop.llm.base import Example
from labelloop.store import Chunk, Rules, Store

CALIBRATION_CHUNKS = 60  # test chunks the embedded small model answers to choose its multi-label thresholds


class Teachers:
    """The run's LLM backends, one per role, made on first use and kept for the whole run.

    A backend lives as long as the run, so what it learns about its server (the in-flight limit,
    the request shape that works) is learned once. Each step runs in its own event loop; the
    HTTP client is closed after each step and made again for the next (it belongs to its loop).
    """

    def __init__(self, config: Config, embed: Callable[[list[str]], Any] | None = None, *,
                 store: Store | None = None, say: Callable[[str], None] | None = None):
        from labelloop.llm.prompts import PromptSet

        self.config = config
        self.embed = embed
        self.store = store  # remembers what each server takes (the request shape) between runs
        self.say = say or (lambda _line: None)
        self.prompts = PromptSet.from_config(config)
        if config.multi_label:
            self.prompts.check_multi_label()  # before anything is asked: a prompt file that wants one label
        self._backends: dict[str, Any] = {}

    def backend(self, role: str):
        if role not in self._backends:
            from labelloop.llm.factory import make_backend

            backend = make_backend(resolve_llm(self.config, role), self.config.system, self.prompts)  # type: ignore[arg-type]
            if self.store is not None and hasattr(backend, "restore_shape"):
                store, key = self.store, backend.shape_key
                backend.restore_shape(store.get_meta(key))
                backend.on_negotiated = lambda state: store.set_meta(key, state)  # before any other answer is logged
            self._backends[role] = backend
        return self._backends[role]

    def run(self, role: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """fn(backend) in a fresh event loop; what the backend learned about its server is kept and said."""
        backend = self.backend(role)

        async def main() -> Any:
            try:
                return await fn(backend)
            finally:
                await backend.aclose()

        try:
            return asyncio.run(main())
        finally:
            self._remember(backend)

    def _remember(self, backend) -> None:
        for line in getattr(backend, "take_notes", lambda: [])():
            self.say(line)

    def rules(self, store: Store, samples: Sequence[str]) -> Rules:
        """The latest rules; the large model writes version 1 if there are none yet."""
        rules = store.rules()
        if rules is not None:
            return rules
        from labelloop.llm.rules import create_rules

        config = self.config
        notes: list[str] = []
        rules = self.run("large", lambda backend: create_rules(
            store, backend, description=config.classification.desc, classes=config.classes,
            samples=list(samples), prompts=self.prompts, notes=notes, multi_label=config.multi_label,
        ))
        for note in notes:
            self.say(f"warning: {note}")
        return rules

    def label(self, store: Store, chunks: Sequence[Chunk], role: str, rules: Rules, *, iteration: int | None,
              progress: bool = True) -> Any:
        """Label chunks with one role's model; results land in the store as they arrive."""
        if not chunks:
            return None
        from labelloop.llm.labeler import label_chunks

        config = self.config
        picker = self.few_shot(store, exclude={c.id for c in chunks})
        thresholds = self.small_thresholds(store, rules) if role == "small" else None
        return self.run(role, lambda backend: label_chunks(
            store, backend, list(chunks), source=policy.ROLE_SOURCE[role], classes=config.classes, rules=rules,
            description=config.classification.desc, few_shot=picker,
            concurrency_limit=config.system.concurrency_limit, iteration=iteration, progress=progress,
            multi_label=config.multi_label, thresholds=thresholds,
        ))

    def few_shot(self, store: Store, exclude: set[int]):
        """The few-shot picker over the reviewed examples outside `exclude`, or None when there are none."""
        from labelloop.llm.fewshot import FewShotPicker

        per_class = self.config.review.few_shot_per_class
        pool = [ex for _cid, ex in few_shot_examples(store, exclude=exclude)]
        return FewShotPicker(pool, embed=self.embed, per_class=per_class) if (
            pool and self.embed is not None and per_class > 0) else None

    def small_thresholds(self, store: Store, rules: Rules) -> dict[str, float] | None:
        """Multi-label with an embedded small model: its per-class thresholds, tuned on the large model's labels.

        The embedded model answers with calibrated yes/no probabilities; where to cut them is chosen
        where the teacher's truth is, on the test chunks (up to CALIBRATION_CHUNKS of them): the small
        model's answers there are only used for this, never stored as labels. They are answers to what
        labeling sends: the same prompts and the same few-shot pool (less the test chunks themselves).
        Remembered per rules version and few-shot pool.
        """
        config = self.config
        if not config.multi_label or resolve_llm(config, "small").mode == "api":
            return None
        large = store.labels_by_chunk(policy.LARGE)
        test = [c for c in store.chunks("test") if policy.usable(large.get(c.id))][:CALIBRATION_CHUNKS]
        picker = self.few_shot(store, exclude={c.id for c in test})
        key = f"small_thresholds:rules-v{rules.version}" + (f":shots-{_pool_digest(picker)}" if picker else "")
        saved = store.get_meta(key)
        if saved is not None:
            return saved or None
        thresholds = self._tune_small(store, rules, test, large, picker) if test else {}
        store.set_meta(key, thresholds)
        if thresholds:
            shown = ", ".join(f"{c} {t:.2f}" for c, t in thresholds.items())
            self.say(f"small model thresholds, tuned on {len(test)} large-model test labels: {shown}")
        return thresholds or None

    def _tune_small(self, store: Store, rules: Rules, test: list[Chunk], large: dict, picker) -> dict[str, float]:
        import numpy as np

        from labelloop.classify.thresholds import tune_thresholds
        from labelloop.evaluate import label_matrix
        from labelloop.llm.calls import CallLog
        from labelloop.llm.labeler import classify_chunks

        config = self.config
        answers = self.run("small", lambda backend: classify_chunks(
            backend, test, CallLog(store), classes=config.classes, rules=rules,
            description=config.classification.desc, purpose="calibrate:small", multi_label=True,
            few_shot=picker, concurrency_limit=config.system.concurrency_limit))
        rows = [(c, a) for c, a in zip(test, answers) if a is not None and a.probs]
        if not rows:
            return {}
        probs = np.array([[float(a.probs.get(k, 0.0)) for k in config.classes] for _c, a in rows])
        Y = label_matrix([policy.label_value(large[c.id], True) for c, _a in rows], config.classes)
        return {k: float(t) for k, t in zip(config.classes, tune_thresholds(probs, Y))}


def _pool_digest(picker) -> str:
    """A short hash of a picker's examples: tuned thresholds belong to the few-shot pool they were tuned with."""
    import hashlib
    import json

    pairs = sorted([e.text, e.label] for e in picker.examples)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:12]


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


def few_shot_examples(store: Store, exclude: set[int] = frozenset()) -> list[tuple[int, Example]]:
    """Human-reviewed labels, the labeler's few-shot pool."""
    out = []
    for lab in store.labels(policy.HUMAN):
        if policy.usable(lab) and lab.chunk_id not in exclude:
            out.append((lab.chunk_id, Example(text=store.chunk(lab.chunk_id).text, label=lab.label)))
    return out


def missing_labels(store: Store, chunks: Sequence[Chunk], source: str, rules: Rules) -> list[Chunk]:
    """Chunks that still need this source's label: none yet, or one made under older rules.

    A chunk a human has labeled needs nothing: the human label wins regardless of rules.
    """
    have = store.labels_by_chunk(source)
    decided = policy.decided_chunks(store.labels(policy.HUMAN))
    todo = []
    for c in chunks:
        lab = have.get(c.id)
        if c.id in decided:
            continue
        if lab is None or (lab.rules_version or 0) < rules.version:
            todo.append(c)
    return todo
