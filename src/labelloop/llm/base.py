"""The one small interface every LLM backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from labelloop.errors import LLMError

if TYPE_CHECKING:
    from labelloop.config import LLMSection


class RequestRejectedError(LLMError):
    """The server refused this one request (e.g. 400: too long); other requests may still work."""


@dataclass(frozen=True)
class Example:
    """A labeled example shown to the model (few-shot)."""

    text: str
    label: str  # a class name; multi-label: the stored label set (labels.encode_set)


@dataclass(frozen=True)
class LabelTask:
    """Everything the labeler knows about one chunk; backends render it into their own prompt."""

    text: str
    classes: tuple[str, ...]
    rules: str
    description: str
    examples: tuple[Example, ...] = ()
    multi_label: bool = False  # answer with a set of classes (several, or none)
    # Multi-label: each class's decision threshold on the answer's probabilities (in class order), in place of
    # the backend's own cut; the backend decides with them, so the logged answer is the label that is stored.
    thresholds: tuple[float, ...] | None = None


@dataclass
class Generation:
    """A free-text answer (used for rules)."""

    text: str
    request: dict
    response: Any
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    faults: dict = field(default_factory=dict)
    call_id: int | None = None  # set by CallLog: the llm_calls row this came from
    cached: bool = False  # set by CallLog: rebuilt from the log, no request made


@dataclass
class Classification:
    """One labeling answer. label is None when the reply could not be parsed (status unlabeled).

    Multi-label: label is the stored label set (labels.encode_set, '[]' for none of them) and
    probs holds each class's own probability of applying (they do not sum to 1).
    """

    label: str | None
    probs: dict[str, float] | None
    raw: str
    request: dict
    response: Any
    reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    attempts: int = 1
    faults: dict = field(default_factory=dict)
    call_id: int | None = None  # set by CallLog: the llm_calls row this came from
    cached: bool = False  # set by CallLog: rebuilt from the log, no request made
    multi_label: bool = False

    @property
    def confidence(self) -> float | None:
        """The chosen label's probability from logprobs or sample agreement; never self-reported.

        Multi-label: the least sure of the per-class decisions (max(p, 1 - p) of each class).
        """
        if self.label is None or not self.probs:
            return None
        if self.multi_label:
            return min(max(p, 1.0 - p) for p in self.probs.values())
        return self.probs.get(self.label)


class Backend(Protocol):
    identity: str  # names the server/model in messages and in cache keys
    model: str
    settings: LLMSection  # doc_chars: how much of a text the labeler sends

    async def generate(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Generation: ...

    async def classify(self, task: LabelTask) -> Classification: ...

    async def aclose(self) -> None: ...
