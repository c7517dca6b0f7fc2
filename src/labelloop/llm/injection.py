"""Flag texts that carry instructions aimed at the labeler (possible prompt injection).

A flag does not change a label: flagged chunks get their own review queue, so a person
checks what the LLM did with them. Measured in bench/bench_injection.py.
"""

from __future__ import annotations

import re

_INSTRUCTION_LIKE = re.compile(
    r"(?i)\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your)\b"
    r"[^.\n]{0,40}\b(rules?|instructions?|prompts?|directions?)\b"
    r"|\b(ignore|disregard|forget|override)\s+(the|these|those|any|my|your)\s+"
    r"(rules?|instructions?|prompts?|directions?|guidelines?)\b"
    r"|\b(you are now|new instructions?|system prompt)\b"
    r"|^\s*(answer|respond|reply|output|label)\b[^.\n]{0,30}\b(with|as)\b",
    re.M,
)


def instruction_like(text: str) -> str | None:
    """The first instruction-like passage in text, or None."""
    match = _INSTRUCTION_LIKE.search(text)
    return match.group(0).strip() if match else None
