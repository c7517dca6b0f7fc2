"""Read a class label out of whatever shape of reply a model gives."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence


class ParseError(ValueError):
    """A reply names no class; the message says what was expected (it is shown to the model)."""


_STRIP = " \t\r\n\"'`*_[](){}<>"
_TRAIL = ".,;:!?"
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_LABEL_LINE = re.compile(
    r"(?i)(?:^|[\s*_#>`\"(])(?:final\s+)?(?:label|answer|class(?:ification)?|category)"
    r"[ \t]*[*_`]*[ \t]*[:=][ \t]*[*_`]*[ \t]*(?P<value>[^\n]*)"
)
_JSON_LABEL_KEY = re.compile(r'"(?:label|Label|LABEL|class|category)"\s*:\s*"?')


def _norm(value: str) -> str:
    return " ".join(value.lower().split())


def _clean(value: str) -> str:
    value = value.strip()
    prev = None
    while prev != value:
        prev = value
        value = value.strip(_STRIP).rstrip(_TRAIL)
    return value


def match_class(value: str | int, classes: Sequence[str]) -> str | None:
    """The class a value names (exact name, 1-based index, or name followed by an explanation)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return classes[value - 1] if 1 <= value <= len(classes) else None
    cleaned = _norm(_clean(str(value)))
    if not cleaned:
        return None
    by_norm = {_norm(c): c for c in classes}
    if cleaned in by_norm:
        return by_norm[cleaned]
    if cleaned.isdigit():
        idx = int(cleaned)
        return classes[idx - 1] if 1 <= idx <= len(classes) else None
    # "sports (it is about a match)" / "sports - clearly": the longest class at a word boundary.
    best = None
    for norm, cls in by_norm.items():
        if cleaned.startswith(norm) and not (cleaned[len(norm):len(norm) + 1].isalnum()):
            if best is None or len(norm) > len(_norm(best)):
                best = cls
    return best


def _value_offset(reply: str, start: int) -> int:
    """Skip quotes/markup so the offset points at the label's first character."""
    while start < len(reply) and reply[start] in _STRIP:
        start += 1
    return start


def _from_json(reply: str, classes: Sequence[str]) -> tuple[str, int | None] | None:
    candidates = [m.group(1) for m in _FENCE.finditer(reply)]
    stripped = reply.strip()
    if stripped.startswith("{"):
        candidates.append(stripped)
    for m in re.finditer(r"\{[^{}]*\}", reply):
        candidates.append(m.group(0))
    for text in reversed(candidates):
        try:
            obj = json.loads(text.strip())
        except (json.JSONDecodeError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        keys = {k.lower(): k for k in obj if isinstance(k, str)}
        for key in ("label", "class", "category", "final_label", "answer"):
            if key in keys:
                value = obj[keys[key]]
                found = match_class(value, classes) if isinstance(value, (str, int)) else None
                if found is None:
                    raise ParseError(
                        f"the JSON names label {value!r}, which is not one of the classes "
                        f"{list(classes)}; answer with one of them exactly"
                    )
                offsets = [m.end() for m in _JSON_LABEL_KEY.finditer(reply)]
                offset = _value_offset(reply, offsets[-1]) if offsets and isinstance(value, str) else None
                return found, offset
    return None


def parse_label_span(reply: str, classes: Sequence[str]) -> tuple[str, int | None]:
    """The label and the character offset where its name starts in reply (None if not located)."""
    if reply is None or not reply.strip():
        raise ParseError(f"the reply is empty; answer with one of the classes {list(classes)}")
    if reply.lstrip().startswith(("{", "```")) or "```json" in reply.lower():
        from_json = _from_json(reply, classes)
        if from_json is not None:
            return from_json
    lines = [m for m in _LABEL_LINE.finditer(reply) if _clean(m.group("value"))]
    if lines:
        last = lines[-1]
        value = last.group("value")
        found = match_class(value, classes)
        if found is None:
            raise ParseError(
                f"the last label line says {_clean(value)!r}, which is not one of the classes "
                f"{list(classes)}; end with `Final label: <class>` using one of them exactly"
            )
        offset = _value_offset(reply, last.start("value"))
        named = reply[offset:offset + len(found)].lower() == found.lower()
        return found, offset if named else None
    from_json = _from_json(reply, classes)
    if from_json is not None:
        return from_json
    found = match_class(reply, classes)
    if found is not None and len(_clean(reply)) <= len(found) + 40:
        offset = _value_offset(reply, 0)
        named = reply[offset:offset + len(found)].lower() == found.lower()
        return found, offset if named else None
    snippet = " ".join(reply.split())
    snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
    raise ParseError(
        f"could not find a class in the reply {snippet!r}; reply with exactly one of "
        f"{list(classes)}, or end with a line `Final label: <class>`"
    )


def parse_label(reply: str, classes: Sequence[str]) -> str:
    """The class a reply names; raise ParseError with a message fit to show the model."""
    return parse_label_span(reply, classes)[0]
