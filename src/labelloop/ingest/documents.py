"""What the readers produce: Documents, and a Problem for every path they could not use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Document:
    """Text from one file, one row (jsonl/csv), one page (pdf) or one streamed block (txt/md)."""

    source: str
    text: str
    metadata: dict = field(default_factory=dict)
    part: int = 0


@dataclass(frozen=True)
class Problem:
    """Something wrong with one input path; `path` may carry a row (`f.jsonl:12`)."""

    path: str
    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


OnProblem = Callable[[Problem], None]
