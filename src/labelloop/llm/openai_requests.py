"""Request bodies for an OpenAI-compatible server, in the request shape it takes (negotiated once).

The shape for a constrained answer (json_schema, json_object+schema, json_object, text) is found on
the first requests and remembered per server and model (labelloop.llm.shapes); a request the server
refuses for its shape steps down to the next one at once, without counting as a fault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from labelloop.config import LLMSection
from labelloop.llm.base import LabelTask, RequestRejectedError
from labelloop.llm.openai_transport import BadRequest
from labelloop.llm.prompts import LABELS_CUE, AnswerFormat, PromptSet, render_completion
from labelloop.llm.shapes import (
    SHAPES,
    Negotiation,
    is_context_error,
    label_schema,
    label_set_schema,
    response_format,
    shape_problem,
)

T = TypeVar("T")


class Requests:
    """Builds request bodies for one server and model, in the shape negotiated with it."""

    def __init__(self, settings: LLMSection, prompts: PromptSet, *, completion_mode: bool, use_stop: bool):
        self.settings = settings
        self.prompts = prompts
        self.completion_mode = completion_mode
        self.use_stop = use_stop
        self.negotiation = Negotiation(allowed=self.allowed_shapes())

    def allowed_shapes(self) -> tuple[str, ...]:
        """The shapes this backend may try: the setting's, and only text where the reply must be free."""
        if self.completion_mode or self.prompts.answer_style == "index":
            return ("text",)  # completions have no response_format; Augmentoolkit's prompt wants reasoning
        chosen = self.settings.structured_output
        if chosen == "auto":
            return SHAPES
        if chosen == "none":
            return ("text",)
        return (chosen,)

    @property
    def cache_params(self) -> dict:
        """What besides the task changes the answer (part of the cache key): the prompt, and the shape asked for."""
        s = self.settings
        return {"temperature": s.temperature, "samples": s.samples, "structured_output": s.structured_output,
                "prompts": self.prompts.fingerprint, "max_tokens": s.max_tokens,
                "shape": self.negotiation.shape, "logprobs": self.negotiation.logprobs}

    def cache_params_for(self, task: LabelTask) -> dict:
        """cache_params for this task: a multi-label task's prompt fingerprint covers its own templates.

        (A single-label task's is cache_params itself, so its keys stay as they were.)
        """
        params = self.cache_params
        if task.multi_label:
            params = {**params, "prompts": self.prompts.multi_fingerprint}
            if task.thresholds is not None:
                params["thresholds"] = list(task.thresholds)
        return params

    def restore(self, state: dict | None) -> None:
        """Use a shape negotiated by an earlier run (from the project file): no new negotiation."""
        if state:
            self.negotiation = Negotiation.restore(state, self.allowed_shapes())

    def fmt(self) -> AnswerFormat:
        if self.prompts.answer_style == "index":
            return "index"  # the user's Augmentoolkit prompt asks for reasoning, then `Final label: <index>`
        return "text" if self.negotiation.shape == "text" else "json"

    def body(self, messages: list[dict], classes: Sequence[str], fmt: AnswerFormat,
             temperature: float | None = None, logprobs: bool = True, multi: bool = False) -> dict:
        """The request body; multi asks for a label set (its schema, or the `Labels:` cue)."""
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "max_tokens": s.max_tokens,
                                "temperature": s.temperature if temperature is None else temperature}
        want_lp = logprobs and self.negotiation.logprobs
        if self.completion_mode:
            cue = LABELS_CUE if multi else "Final label:"
            body["prompt"] = render_completion(messages, cue if classes else None)
            if classes and self.use_stop:
                body["stop"] = ["\n"]
            if want_lp and classes:
                body["logprobs"] = min(20, max(5, len(classes)))
            return body
        body["messages"] = messages
        if classes and fmt == "json":
            schema, name = (label_set_schema(classes), "label_set") if multi else (label_schema(classes), "label")
            rf = response_format(self.negotiation.shape, schema, name)
            if rf is not None:
                body["response_format"] = rf
        if want_lp and classes:
            body["logprobs"] = True
            body["top_logprobs"] = min(20, max(5, len(classes)))
        return body

    async def negotiated(self, attempt: Callable[[AnswerFormat], Awaitable[T]],
                         too_long: Callable[[BadRequest], Exception], where: str) -> T:
        """attempt(fmt) in the current shape; a refused shape steps down to the next and tries again."""
        while True:
            try:
                return await attempt(self.fmt())
            except BadRequest as exc:
                if is_context_error(exc.message):
                    raise too_long(exc) from None
                problem = shape_problem(exc.status, exc.message) or "format"
                if self.negotiation.step_down(problem, exc.status, exc.message):
                    continue  # a shape problem, not a fault: the next shape at once, no retry
                raise RequestRejectedError(
                    f"{where} refused every request shape, plain text included (last: HTTP {exc.status}: "
                    f"{exc.message}); check the server's log") from None
