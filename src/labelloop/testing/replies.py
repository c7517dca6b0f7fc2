"""How the fake teacher writes a reply: its text, split into tokens, and the tokens' logprobs.

Logprobs come in the endpoint's format (chat: `content` entries; completions: parallel lists).
A label's first token carries the teacher's class probabilities; in a label set, each list
item's first token carries the probability that its class applies, and every class left out is
an alternative at one of those tokens (the structural tokens between them are certain).
"""

from __future__ import annotations

import math
import re

LABELS_LINE = "Labels:"  # how the teacher ends a label set written as text: `Labels: a, b` or `Labels: none`
REASONING = "Let me look at the document against the rules.\nIt fits one class best.\n\nFinal label: "
REASONING_SET = ("Let me look at the document against the rules, one label at a time.\n"
                 "I name every label that applies.\n\n")
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")

Entry = tuple[str, float, list[tuple[str, float]]]  # token, logprob, top alternatives
Segment = tuple[str, str, str | None]  # text, kind ('fixed', 'item' starts a list item, 'empty' no item), class


def tokens(text: str) -> list[str]:
    """The text as the fake's tokens: words with their leading space, and single marks."""
    return _TOKEN.findall(text)


def format_logprobs(endpoint: str, entries: list[Entry]) -> dict:
    """Token entries in the endpoint's logprobs format."""
    if endpoint == "chat":
        return {"content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()),
             "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top]}
            for t, lp, top in entries
        ]}
    offsets, pos = [], 0
    for t, _, _ in entries:
        offsets.append(pos)
        pos += len(t)
    return {
        "tokens": [t for t, _, _ in entries],
        "token_logprobs": [lp for _, lp, _ in entries],
        "top_logprobs": [dict(top) for _, _, top in entries],
        "text_offset": offsets,
    }


def label_logprobs(endpoint: str, prefix: str, label: str, suffix: str, probs: dict[str, float],
                   top_n: int) -> dict:
    """Logprobs of `prefix + label + suffix`: the label's first token has the class probabilities."""
    pre, lab, suf = tokens(prefix), tokens(label), tokens(suffix)
    first: dict[str, float] = {}
    for cls, p in probs.items():
        tok = tokens(cls)[0] if cls else cls
        first[tok] = first.get(tok, 0.0) + p
    answer_tok = lab[0]
    alts = sorted(first.items(), key=lambda kv: -kv[1])[: max(top_n, 1)]
    entries = []
    for i, tok in enumerate(pre + lab + suf):
        if i == len(pre):
            lp = math.log(max(first.get(answer_tok, 1e-6), 1e-12))
            top = [(t, math.log(max(p, 1e-12))) for t, p in alts]
        else:
            lp, top = -0.01, [(tok, -0.01)]
        entries.append((tok, lp, top[:top_n] if top_n else []))
    return format_logprobs(endpoint, entries)


def set_segments(chosen: list[str], *, json_field: str | None, reason: bool, head: str) -> list[Segment]:
    """A label set's reply in parts: a JSON object under json_field, else `head` then the list.

    reason adds a "reason" member to the JSON object (the teacher's chatty JSON style).
    """
    if json_field is not None:
        parts: list[Segment] = [(f'{{"{json_field}": [', "fixed", None)]
        for i, c in enumerate(chosen):
            parts += [(", " if i else "", "fixed", None), ('"', "fixed", None), (c, "item", c),
                      ('"', "fixed", None)]
        parts.append(("]", "empty" if not chosen else "fixed", None))
        tail = ', "reason": "fits the rules"}' if reason else "}"
        return [p for p in parts if p[0]] + [(tail, "fixed", None)]
    parts = [(head, "fixed", None)]
    for i, c in enumerate(chosen):
        if i:
            parts.append((", ", "fixed", None))
        parts.append((c, "item", c))
    if not chosen:
        parts.append(("none", "empty", None))
    return parts


def set_entries(segments: list[Segment], chosen: list[str], probs: dict[str, float], classes: list[str],
                top_n: int) -> list[Entry]:
    """Token entries whose item-start alternatives carry each class's probability.

    A written class's item token has its probability; each class left out is an alternative at
    the slot with the most room left (scaled down when they do not all fit in the slots' mass).
    """
    left_out = [c for c in classes if c not in chosen]
    slot_p = [probs[cls] for _t, kind, cls in segments if kind == "item"]
    if not slot_p:
        slot_p = [max(0.05, 1.0 - sum(probs[c] for c in left_out))]
    room = [1.0 - p for p in slot_p]
    wanted = sum(probs[c] for c in left_out)
    scale = min(1.0, sum(room) / wanted) if wanted > 0 else 1.0
    alts: list[dict[str, float]] = [{} for _ in slot_p]
    empty_json = any(kind == "empty" and text == "]" for text, kind, _c in segments)
    for c in left_out:
        k = max(range(len(room)), key=lambda i: room[i])
        mass = min(probs[c] * scale, room[k])
        room[k] -= mass
        tok = ('"' if empty_json else "") + tokens(c)[0]
        alts[k][tok] = alts[k].get(tok, 0.0) + mass
    entries, slot = [], 0
    for text, kind, _cls in segments:
        for j, tok in enumerate(tokens(text)):
            if j == 0 and kind in ("item", "empty"):
                top = dict(alts[slot])
                top[tok] = top.get(tok, 0.0) + slot_p[slot]
                ranked = sorted(top.items(), key=lambda kv: -kv[1])[:top_n]
                lp = math.log(max(slot_p[slot], 1e-12))
                entries.append((tok, lp, [(t, math.log(max(p, 1e-12))) for t, p in ranked]))
                slot += 1
            else:
                entries.append((tok, 0.0, [(tok, 0.0)][:top_n]))
    return entries
