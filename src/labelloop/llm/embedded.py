"""Embedded llama.cpp backend: labels by class log-probabilities, calibrated; writes rules as free text.

The parts, one job each:

- labelloop.llm.embedded_runtime: the loaded GGUF per (path, n_ctx), its one worker thread, its KV cache;
- labelloop.llm.embedded_budget: the one budget that fits every prompt to the window;
- labelloop.llm.embedded_scoring: labeling (class log-probs, yes/no per class) and calibration;
- labelloop.llm.embedded_rules: rules writing.

The default backend writes rules with `rules_model` when set, else with `model`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from labelloop.config import LLMSection
from labelloop.errors import LLMError
from labelloop.llm import embedded_multi as multi
from labelloop.llm.base import Classification, Generation, LabelTask
from labelloop.llm.embedded_chat import DEFAULT_ORDER
from labelloop.llm.embedded_prompt import extract_classes
from labelloop.llm.embedded_rules import RulesWriter, render_completion
from labelloop.llm.embedded_runtime import Slot, file_fingerprint, slot
from labelloop.llm.embedded_scoring import Scorer, classification_from_logged
from labelloop.models import gguf_path as model_file

__all__ = ["EmbeddedBackend", "classification_from_logged", "file_fingerprint", "render_completion"]

PROMPT_VERSION = 3  # bump when the embedded prompt changes: old answers in the call log stop matching
# 3: every prompt fitted by embedded_budget (instructions never cut; chat examples cut like the others)


class EmbeddedBackend:
    """A GGUF model run in-process with llama.cpp (CPU)."""

    def __init__(self, settings: LLMSection, *, max_doc_tokens: int | None = None, order: str = DEFAULT_ORDER):
        path = model_file(settings.model, "small_model.model / large_model.model")
        self.settings = settings
        self.path = str(Path(path).resolve())
        self.model = Path(path).name
        self.identity = f"embedded {self.model} sha={file_fingerprint(self.path)}"
        self.max_doc_tokens = max_doc_tokens
        self.order = order
        self._slot = slot(self.path, settings.n_ctx)
        writer = model_file(settings.rules_model) if settings.rules_model else self.path
        self._writer = slot(writer, settings.n_ctx)
        self.generate_model = Path(writer).name
        self.generate_identity = f"embedded {self.generate_model} sha={file_fingerprint(writer)}"
        self._scorer = Scorer(self._slot, settings, order=order, doc_tokens=self._doc_tokens, identity=self.identity)
        self._rules = RulesWriter(self._writer, settings, identity=self.generate_identity, model=self.generate_model)

    @property
    def cache_params(self) -> dict:
        """What besides the task changes a label (part of the call log's key)."""
        return {"n_ctx": self.settings.n_ctx, "calibrate": self.settings.calibrate,
                "max_doc_tokens": self._doc_tokens(), "prompt": PROMPT_VERSION, "order": self.order}

    def cache_params_for(self, task: LabelTask) -> dict:
        """cache_params for this task: a multi-label task's also names the yes/no prompt's version.

        (A single-label task's is cache_params itself, so its keys stay as they were.)
        """
        if task.multi_label:
            params = {**self.cache_params, "multi_prompt": multi.PROMPT_VERSION}
            return params if task.thresholds is None else {**params, "thresholds": list(task.thresholds)}
        return self.cache_params

    def _doc_tokens(self) -> int | None:
        return self.max_doc_tokens if self.max_doc_tokens is not None else self.settings.doc_tokens

    @property
    def generate_params(self) -> dict:
        """What besides the messages changes generated text (the rules writer's context window)."""
        return {"n_ctx": self.settings.n_ctx, "prompt": PROMPT_VERSION}

    async def _run(self, fn, *args, on: Slot):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(on.executor, fn, *args)

    async def classify(self, task: LabelTask) -> Classification:
        if len(task.classes) < 2:
            raise LLMError(
                f"classify needs at least 2 classes, got {list(task.classes)!r}; "
                "list them in classification.classes"
            )
        return await self._run(self._classify_guarded, task, on=self._slot)

    def _classify_guarded(self, task: LabelTask) -> Classification:
        try:
            return self._scorer.classify(task)
        except RuntimeError as exc:  # llama.cpp decode failures
            self._slot.prefix_len = -1
            raise LLMError(
                f"embedded model {self.identity} failed on a chunk of {len(task.text)} characters: "
                f"{exc}; lower small_model.n_ctx or use another GGUF"
            ) from None

    async def generate(self, messages: list[dict], *, max_tokens: int, temperature: float,
                       classes: list[str] | None = None) -> Generation:
        """Free text (rules). The class list comes from `classes` or a 'Classes: ...' line."""
        from labelloop.llm.prompts import find_classes

        joined = "\n".join(str(m.get("content") or "") for m in messages)
        names = list(classes) if classes else (find_classes(joined) or extract_classes(messages))
        return await self._run(self._rules.generate, messages, max_tokens, temperature, names, on=self._writer)

    async def aclose(self) -> None:
        """Nothing to release: the model stays cached for other backends in this process."""
