"""Label chunks with an LLM: concurrent calls, every result written to the store as it arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from labelloop.llm.base import Backend, Classification, LabelTask, RequestRejectedError
from labelloop.llm.calls import CallLog
from labelloop.llm.fewshot import FewShotPicker
from labelloop.llm.prompts import truncate
from labelloop.store import Chunk, Rules, Store


@dataclass
class LabelSummary:
    """What one labeling pass did."""

    source: str
    total: int = 0
    labeled: int = 0
    unlabeled: int = 0
    cached: int = 0
    requested: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        classes = ", ".join(f"{k} {v}" for k, v in sorted(self.by_class.items()))
        faults = f"; faults: {self.faults}" if self.faults else ""
        return (f"{self.source}: {self.labeled}/{self.total} labeled, {self.unlabeled} unlabeled "
                f"({self.requested} requested, {self.cached} from the call log) in {self.seconds:.1f}s "
                f"[{classes}]{faults}")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "-/s", style="progress.data.speed")


def build_task(text: str, *, classes: Sequence[str], rules: Rules | None, description: str,
               few_shot: FewShotPicker | None, max_chars: int, multi_label: bool = False,
               thresholds: Mapping[str, float] | None = None) -> LabelTask:
    """The LabelTask for one chunk: the text and each few-shot example cut to max_chars (the model's doc_chars)."""
    examples = few_shot.pick(text) if few_shot is not None else ()
    return LabelTask(
        text=truncate(text, max_chars), classes=tuple(classes), rules=rules.text if rules else "",
        description=description, multi_label=multi_label,
        examples=tuple(dataclasses.replace(e, text=truncate(e.text, max_chars)) for e in examples),
        thresholds=tuple(float(thresholds[c]) for c in classes) if thresholds else None,
    )


def char_budget(backend: Backend, max_chars: int | None) -> int:
    """max_chars when given, else the backend's setting (small_model / large_model doc_chars)."""
    return max_chars if max_chars is not None else backend.settings.doc_chars


def counted_classes(label: str, multi_label: bool) -> list[str]:
    """What a label adds to the per-class tally: its class, or each class of a set ('(none)' for an empty one)."""
    if not multi_label:
        return [label]
    from labelloop.labels import decode_set

    return decode_set(label) or ["(none)"]


async def label_chunks(
    store: Store,
    backend: Backend,
    chunks: Sequence[Chunk],
    *,
    source: str,
    classes: Sequence[str],
    rules: Rules | None,
    description: str,
    few_shot: FewShotPicker | None = None,
    concurrency_limit: int = 8,
    iteration: int | None = None,
    progress: bool = True,
    call_log: CallLog | None = None,
    max_chars: int | None = None,
    multi_label: bool = False,
    thresholds: Mapping[str, float] | None = None,
) -> LabelSummary:
    """Label chunks concurrently; each answer is stored as it arrives (a kill loses only calls in flight).

    max_chars: what each text and few-shot example is cut to; default the backend's doc_chars.
    thresholds (multi-label): each class's decision threshold on the answer's probabilities, in place
    of the backend's own decision (the embedded small model's, tuned on the large model's labels). The
    backend decides with them, so the call log, the stored label and meta_datagen hold the same set.
    """
    max_chars = char_budget(backend, max_chars)
    log = call_log or CallLog(store)
    summary = LabelSummary(source=source, total=len(chunks))
    by_class: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    started = time.perf_counter()
    if few_shot is not None:
        few_shot.prepare([c.text for c in chunks])
    gate = asyncio.Semaphore(max(1, concurrency_limit))
    rules_version = rules.version if rules else None

    async def save(chunk: Chunk, result: Classification | None, error: str | None) -> None:
        if result is not None:
            faults.update(result.faults or {})
            if result.cached:
                summary.cached += 1
            else:
                summary.requested += 1
        if result is not None and result.label is not None:
            summary.labeled += 1
            by_class.update(counted_classes(result.label, multi_label))
            probs = {str(k): float(v) for k, v in result.probs.items()} if result.probs else None
            confidence = None if result.confidence is None else float(result.confidence)
            await store.write_async(store.set_label, chunk.id, source, result.label, confidence=confidence,
                                    status="ok", iteration=iteration, rules_version=rules_version,
                                    call_id=result.call_id, raw=result.raw, reason=result.reason, probs=probs)
        else:
            summary.unlabeled += 1
            await store.write_async(store.set_label, chunk.id, source, None, status="unlabeled", iteration=iteration,
                                    rules_version=rules_version, call_id=result.call_id if result else None,
                                    raw=result.raw if result else None,
                                    reason=error or (result.reason if result else None))

    async def one(chunk: Chunk) -> None:
        async with gate:
            task = build_task(chunk.text, classes=classes, rules=rules, description=description,
                              few_shot=few_shot, max_chars=max_chars, multi_label=multi_label,
                              thresholds=thresholds)
            try:
                result = await log.classify(backend, task, purpose=f"label:{source}")
            except RequestRejectedError as exc:
                await save(chunk, None, f"the LLM server refused this chunk: {exc}")
                return
        await save(chunk, result, None)

    columns = [TextColumn(f"labeling ({source})"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        bar_task = bar.add_task(source, total=len(chunks))
        tasks = [asyncio.ensure_future(one(c)) for c in chunks]
        for t in tasks:
            t.add_done_callback(lambda _t: bar.advance(bar_task))
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    summary.by_class = dict(by_class)
    summary.faults = dict(faults)
    summary.seconds = time.perf_counter() - started
    return summary


async def classify_chunks(backend: Backend, chunks: Sequence[Chunk], call_log: CallLog, *, classes: Sequence[str],
                          rules: Rules | None, description: str, purpose: str, multi_label: bool = False,
                          few_shot: FewShotPicker | None = None, concurrency_limit: int = 8,
                          max_chars: int | None = None) -> list[Classification | None]:
    """The backend's answers for chunks, through the call log, stored nowhere else (None: refused).

    The tasks are built as label_chunks builds them (same cut, same few-shot picker), so answers
    used to tune thresholds are answers to what labeling sends.
    """
    gate = asyncio.Semaphore(max(1, concurrency_limit))
    max_chars = char_budget(backend, max_chars)
    if few_shot is not None:
        few_shot.prepare([c.text for c in chunks])

    async def one(chunk: Chunk) -> Classification | None:
        async with gate:
            task = build_task(chunk.text, classes=classes, rules=rules, description=description, few_shot=few_shot,
                              max_chars=max_chars, multi_label=multi_label)
            try:
                return await call_log.classify(backend, task, purpose=purpose)
            except RequestRejectedError:
                return None

    return list(await asyncio.gather(*(one(c) for c in chunks)))


def label_chunks_sync(*args, **kwargs) -> LabelSummary:
    """label_chunks for synchronous callers (runs its own event loop)."""
    return asyncio.run(label_chunks(*args, **kwargs))
