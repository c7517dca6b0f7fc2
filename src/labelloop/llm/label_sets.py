"""Reading a multi-label answer: the set the reply names, and each class's probability of applying.

The set comes from labelloop.llm.parse.parse_label_set. Its per-class probabilities never come
from a number the model typed; they come from the server's logprobs, or from agreement across
samples.

From logprobs. A label set is written as a list, one item after the other, so the classes the
model considered are visible where each item starts: the top-logprob alternatives of that token
are the other classes it could have written there. For each class c:

    P(c applies) = 1 - prod over item slots k of (1 - reach_k * share_k(c))

- the slots are the tokens where a list item starts (`business` in `{"labels": ["business"`, or
  in `Labels: business, tech`), plus, for an empty answer, the token where the list is closed
  or `none` is written;
- share_k(c) is the probability the alternatives at slot k give to a token that begins c's name
  (split evenly among classes that share that beginning; the emitted class owns the emitted
  token). Classes already written before slot k take no share (a set names a class once). The
  probabilities are not renormalised: mass the server did not show stays unassigned;
- reach_k is the probability of the tokens between the previous item and slot k (`", "` in
  JSON, the `["` that opens a non-empty list): the model's choice to write one more item at
  all. An item that was a close call to write is then a close call in its probability.

So a class that was written gets at least reach times the probability of its written token,
a class the model considered at some slot gets the mass it gave it there, and a class no
alternative names gets 0. When the answer cannot be lined up with the tokens (an item written
as an index, a reply the tokens do not spell out), no probability is given (None), rather
than a guess.

From samples: the share of the k answers whose set holds the class; the label set is the
classes more than half of them hold (a tie keeps the first answer's decision).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from labelloop.llm.parse import _LABELS_LINE, NONE_WORDS, match_class

# (token text, its logprob, its top alternatives as (token, logprob)), as the server sent them.
Token = tuple[str, "float | None", list[tuple[str, float]]]

_MARKUP = " \t\r\n\"'`*_[](){}<>"
_LEAD = " \t\r\n\"'`*:{[(<"
_TRAIL = " \t\r\n\"'`*:,;.]})>"
_LIST_KEY = re.compile(r'(?i)"(?:labels|label|classes|categories)"\s*:\s*\[')
_BARE_LIST = re.compile(r"\[[^\[\]]*\]")
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SEPARATOR = re.compile(r"\s*(?:,|;|\band\b|\||/)\s*", re.I)


@dataclass(frozen=True)
class Slot:
    """Where one list item starts in the reply (cls None: the empty list's `]` or `none`)."""

    start: int
    end: int
    cls: str | None


@dataclass(frozen=True)
class Answer:
    """Where the label set is written in the reply: from region_start, one slot per item."""

    region_start: int
    slots: tuple[Slot, ...]


# ------------------------------------------------------------------ where the set is written


def locate(raw: str, chosen: Sequence[str], classes: Sequence[str]) -> Answer | None:
    """Find the written label set that names exactly `chosen`; None when it cannot be lined up.

    Tried in the order the parser reads: a JSON list under a "labels" key, a bare JSON list,
    the last `Labels:` line, then a one-line reply that is only the list.
    """
    want = set(chosen)
    candidates = [_json_key_list(raw, classes), _bare_list(raw, classes), _labels_line(raw, classes)]
    if "\n" not in raw.strip():
        start = len(raw) - len(raw.lstrip())
        candidates.append(_line_items(raw, start, len(raw), classes))
    for found in candidates:
        if found is not None and {s.cls for s in found.slots if s.cls} == want and (
                want or all(s.cls is None for s in found.slots)):
            return found
    return None


def _json_key_list(raw: str, classes: Sequence[str]) -> Answer | None:
    matches = list(_LIST_KEY.finditer(raw))
    if not matches:
        return None
    bracket = matches[-1].end() - 1
    return _json_items(raw, bracket, classes)


def _bare_list(raw: str, classes: Sequence[str]) -> Answer | None:
    for m in reversed(list(_BARE_LIST.finditer(raw))):
        try:
            value = json.loads(m.group(0))
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, list):
            return _json_items(raw, m.start(), classes)
    return None


def _json_items(raw: str, bracket: int, classes: Sequence[str]) -> Answer | None:
    """The items of the JSON list whose `[` is at bracket."""
    close = raw.find("]", bracket)
    if close < 0:
        return None
    slots = []
    for m in _JSON_STRING.finditer(raw, bracket, close):
        cls = match_class(m.group(1), classes)
        if cls is None:
            return None
        slots.append(Slot(m.start(1), m.end(1), cls))
    if not slots:
        inner = raw[bracket + 1:close + 1]
        empty_at = bracket + 1 + (len(inner) - len(inner.lstrip()))
        slots.append(Slot(empty_at, empty_at + 1, None))
    return Answer(bracket, tuple(_first_each(slots)))


def _labels_line(raw: str, classes: Sequence[str]) -> Answer | None:
    lines = [m for m in _LABELS_LINE.finditer(raw) if m.group("value").strip()]
    if not lines:
        return None
    m = lines[-1]
    return _line_items(raw, m.start("value"), m.end("value"), classes)


def _line_items(raw: str, start: int, end: int, classes: Sequence[str]) -> Answer | None:
    """The items of `a, b and c` (or `none`) written in raw[start:end]."""
    value = raw[start:end]
    parts, pos = [], 0
    for m in _SEPARATOR.finditer(value):
        parts.append((pos, m.start()))
        pos = m.end()
    parts.append((pos, len(value)))
    slots = []
    for a, b in parts:
        text = value[a:b]
        lead = len(text) - len(text.lstrip(_MARKUP))
        body = text.strip(_MARKUP).rstrip(".,;:!?")
        if not body:
            continue
        at = start + a + lead
        if body.lower().rstrip(".") in NONE_WORDS:
            if len(parts) > 1:
                return None
            slots.append(Slot(at, at + len(body), None))
            continue
        cls = match_class(body, classes)
        if cls is None:
            return None
        slots.append(Slot(at, at + len(body), cls))
    if not slots:
        return None
    return Answer(start, tuple(_first_each(slots)))


def _first_each(slots: list[Slot]) -> list[Slot]:
    """Each class's first item only (a repeated class adds nothing to a set)."""
    seen: set[str] = set()
    out = []
    for s in slots:
        if s.cls is not None:
            if s.cls in seen:
                continue
            seen.add(s.cls)
        out.append(s)
    return out


# ------------------------------------------------------------------ probabilities from logprobs


def _clean(token: str) -> str:
    return token.lstrip(_LEAD).rstrip(_TRAIL).lower()


def _p(logprob: float | None) -> float:
    return 1.0 if logprob is None else math.exp(logprob)


def probs_from_logprobs(tokens: Sequence[Token], raw: str, chosen: Sequence[str],
                        classes: Sequence[str]) -> dict[str, float] | None:
    """Each class's probability of applying, read from the tokens of the reply (see the module doc).

    None when the server sent no tokens, or the written set cannot be lined up with them.
    """
    if not tokens:
        return None
    answer = locate(raw, chosen, classes)
    if answer is None:
        return None
    starts, pos = [], 0
    for tok, _lp, _alts in tokens:
        starts.append(pos)
        pos += len(tok)

    def covering(offset: int) -> int | None:
        for i, tok in enumerate(tokens):
            if starts[i] <= offset < starts[i] + len(tok[0]):
                return i
        return None

    miss = {c: 1.0 for c in classes}
    written: set[str] = set()
    prev = covering(answer.region_start)
    for slot in answer.slots:
        i = covering(slot.start)
        if i is None or prev is None:
            return None
        tok, lp, alts = tokens[i]
        if slot.cls is not None and not _spells(tok, slot.cls):
            return None  # the item is written some other way (an index, a synonym): nothing to read
        reach = math.prod(_p(tokens[j][1]) for j in range(prev, i))
        open_classes = [c for c in classes if c not in written]
        for cls, share in _shares(tok, lp, alts, slot.cls, open_classes).items():
            miss[cls] *= 1.0 - min(1.0, reach * share)
        if slot.cls is not None:
            written.add(slot.cls)
            last = covering(slot.end - 1)
            prev = i + 1 if last is None else last + 1
    return {c: min(1.0, max(0.0, 1.0 - miss[c])) for c in classes}


def _spells(token: str, cls: str) -> bool:
    """True when the token is the beginning of the class's name (the item is written by name)."""
    t = _clean(token)
    return bool(t) and (cls.lower().startswith(t) or t.startswith(cls.lower()))


def _shares(tok: str, lp: float | None, alts: list[tuple[str, float]], emitted: str | None,
            open_classes: list[str]) -> dict[str, float]:
    """The probability mass the alternatives at one slot give to each class still open there."""
    options = list(alts)
    if emitted is not None and not any(a == tok for a, _ in options):
        options.append((tok, lp if lp is not None else 0.0))
    said = _clean(tok)
    mass: dict[str, float] = {}
    for alt, alt_lp in options:
        t = _clean(alt)
        if not t or alt_lp is None:
            continue
        matches = [c for c in open_classes if c.lower().startswith(t)]
        if emitted in matches and t == said:
            matches = [emitted]
        for c in matches:
            mass[c] = mass.get(c, 0.0) + math.exp(alt_lp) / len(matches)
    return mass


# ------------------------------------------------------------------ probabilities from samples


def agreement(first: Sequence[str], others: Sequence[Sequence[str] | None],
              classes: Sequence[str]) -> tuple[list[str], dict[str, float]]:
    """(label set, each class's share of the answers that hold it) over k sampled answers.

    first is the answer already given; others are the extra samples (None: unreadable, left out).
    """
    answers = [set(first)] + [set(a) for a in others if a is not None]
    share = {c: sum(c in a for a in answers) / len(answers) for c in classes}
    chosen = [c for c in classes if share[c] > 0.5 or (share[c] == 0.5 and c in answers[0])]
    return chosen, share


# ------------------------------------------------------------------ the set under given thresholds


def thresholded(probs: dict[str, float], classes: Sequence[str], thresholds: Sequence[float]) -> list[str]:
    """The classes whose probability reaches their own threshold, in class order.

    The LLM side's cut (labelloop.classify.decision is the student's; the layers keep them apart).
    """
    if len(thresholds) != len(classes):
        raise ValueError(f"{len(thresholds)} thresholds for {len(classes)} classes {list(classes)}; give one per class")
    return [c for c, t in zip(classes, thresholds) if probs.get(c, 0.0) >= t]
