"""SQL fragments the table modules share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def member_of(column: str, values: Iterable[Any]) -> tuple[str, str]:
    """(condition, parameter) for `column IN values`, for any number of values.

    The values travel as one JSON parameter read by json_each, so a list is never cut into
    batches (whose results would need merging back into order) and never meets SQLite's
    limit on bound parameters.
    """
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values), default=_scalar)


def _scalar(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy integers from index arrays
        return value.item()
    raise TypeError(f"cannot match {type(value).__name__} {value!r} in SQL; pass ints or strings")
