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


# ------------------------------------------------------------------ label sets (multi-label)

NONE_WORDS = ("none", "no label", "no labels", "nothing", "none of them", "none apply", "n/a", "[]")
_LABELS_LINE = re.compile(r"(?i)(?:^|[\s*_#>`\"(])(?:final\s+)?labels?[ \t]*[*_`]*[ \t]*[:=][ \t]*[*_`]*[ \t]*(?P<value>[^\n]*)")


def _set_from_items(items, classes: Sequence[str], where: str) -> list[str]:
    out, unknown = [], []
    for item in items:
        found = match_class(item, classes) if isinstance(item, (str, int)) else None
        if found is None:
            unknown.append(item)
        elif found not in out:
            out.append(found)
    if unknown:
        raise ParseError(f"{where} names {unknown!r}, which are not among the classes {list(classes)}; "
                         "use only those names")
    return [c for c in classes if c in out]


def parse_label_set(reply: str, classes: Sequence[str]) -> list[str]:
    """The classes a multi-label reply names, in class order; [] for "none of them".

    Read: a JSON object {"labels": [...]} (or a bare JSON list), or a last line `Labels: a, b` /
    `Labels: none`, or a reply that is only class names separated by commas.
    """
    if reply is None or not reply.strip():
        raise ParseError(f"the reply is empty; answer with the classes that apply, from {list(classes)}, or none")
    text = reply.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    candidates += [m.group(0) for m in re.finditer(r"\{[^{}]*\}|\[[^\[\]]*\]", text)]
    for cand in reversed(candidates):
        try:
            obj = json.loads(cand.strip())
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            keys = {k.lower(): k for k in obj if isinstance(k, str)}
            key = next((keys[k] for k in ("labels", "label", "classes", "categories") if k in keys), None)
            if key is None:
                continue
            obj = obj[key]
            obj = [obj] if isinstance(obj, str) else obj
        if isinstance(obj, list):
            return _set_from_items(obj, classes, "the JSON")
    lines = [m for m in _LABELS_LINE.finditer(text) if m.group("value").strip()]
    value = lines[-1].group("value") if lines else (text if "\n" not in text else None)
    if value is not None:
        cleaned = _clean(value).strip().lower()
        if cleaned in NONE_WORDS or cleaned.rstrip(".") in NONE_WORDS:
            return []
        parts = [p for p in re.split(r"\s*(?:,|;|\band\b|\||/)\s*", _clean(value)) if p.strip()]
        if parts:
            return _set_from_items(parts, classes, f"the answer {_clean(value)!r}")
    snippet = " ".join(text.split())
    snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
    raise ParseError(f"could not find a label set in the reply {snippet!r}; end with a line `Labels: <class>, <class>` "
                     f"using the classes {list(classes)}, or `Labels: none`")
