"""Reading an OpenAI-compatible server's answers: the reply text, the label in it, probabilities from logprobs.

The response objects are built without validation (the client's default), so every field read
here may hold anything the server sent: what is missing or of the wrong type is a Malformed
answer (the server's fault), found by checking, never by catching our own errors.
"""

from __future__ import annotations

import math
from typing import Any

from labelloop.llm.parse import ParseError, parse_label_span
from labelloop.llm.prompts import AnswerFormat

# (token text, its logprob, its top alternatives as (token, logprob)), as the server sent them.
Token = tuple[str, "float | None", list[tuple[str, float]]]


class Malformed(Exception):
    """The server answered 200 with a body we cannot use."""


def dump(resp: Any) -> Any:
    """A response as plain JSON (for the call log)."""
    return resp.model_dump(mode="json", exclude_none=True) if hasattr(resp, "model_dump") else resp


def reply_text(resp: Any, completion_mode: bool) -> str:
    """The first choice's text, or Malformed."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise Malformed("the response has no choices")
    choice = choices[0]
    if completion_mode:
        text = getattr(choice, "text", None)
    else:
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) if message is not None else None
    if not isinstance(text, str):
        raise Malformed("the first choice has no text" if text is None else
                        f"the first choice's text is a {type(text).__name__}, not a string")
    return text


def token_count(usage: Any, name: str) -> int:
    """usage.<name> when the server sent a whole number, else 0."""
    value = getattr(usage, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_answer(raw: str, classes: list[str], fmt: AnswerFormat) -> tuple[str, int | None, list[str]]:
    """(label, offset of its answer in raw, how the reply names each class) or ParseError."""
    if fmt == "index":
        from labelloop.llm.message_files import final_label_span

        found = final_label_span(raw, classes)
        if found is None:
            raise ParseError(
                f"no `Final label: <index>` line names one of the classes "
                f"{', '.join(f'{i}. {c}' for i, c in enumerate(classes))}"
            )
        label, offset, said = found
        by_index = said.isdigit()
        return label, offset, [str(i) for i in range(len(classes))] if by_index else list(classes)
    label, offset = parse_label_span(raw, classes)
    return label, offset, list(classes)


def _clean_token(token: str) -> str:
    return token.strip(" \t\n\"'`*:{[").lower()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def token_alternatives(choice: Any, completion_mode: bool) -> list[Token]:
    """The reply's tokens with their logprobs and top alternatives; [] when the server sent none (or nonsense)."""
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return []
    if completion_mode:
        toks = getattr(lp, "tokens", None) or []
        lps = getattr(lp, "token_logprobs", None) or [None] * len(toks)
        tops = getattr(lp, "top_logprobs", None) or [{}] * len(toks)
        if not (isinstance(toks, list) and isinstance(lps, list) and isinstance(tops, list)):
            return []
        out = []
        for t, p, top in zip(toks, lps, tops, strict=False):
            alts = list(top.items()) if isinstance(top, dict) else []
            out.append((str(t), _number(p), [(str(a), v) for a, v in alts if _number(v) is not None]))
        return out
    content = getattr(lp, "content", None) or []
    if not isinstance(content, list):
        return []
    out = []
    for c in content:
        alts = getattr(c, "top_logprobs", None) or []
        pairs = [(str(getattr(a, "token", "")), _number(getattr(a, "logprob", None)))
                 for a in (alts if isinstance(alts, list) else [])]
        out.append((str(getattr(c, "token", "")), _number(getattr(c, "logprob", None)),
                    [(t, v) for t, v in pairs if v is not None]))
    return out


def logprob_probs(tokens: list[Token], label: str, offset: int | None, classes: list[str],
                  names: list[str]) -> dict[str, float] | None:
    """Class probabilities from the top logprobs of the answer's first token, if the server sent them.

    names[i] is how the reply writes class i: its name, or its index in Augmentoolkit's style.
    """
    if offset is None or not tokens:
        return None
    pos, index = 0, None
    for i, (tok, _lp, _alts) in enumerate(tokens):
        if pos <= offset < pos + len(tok) or (pos >= offset and tok.strip()):
            index = i
            break
        pos += len(tok)
    if index is None:
        return None
    tok, lp, alts = tokens[index]
    if not alts:
        alts = [(tok, lp)] if lp is not None else []
    mass: dict[str, float] = {c: 0.0 for c in classes}
    emitted = _clean_token(tok)
    for alt, alt_lp in alts:
        t = _clean_token(alt)
        if not t or alt_lp is None:
            continue
        matches = [c for c, name in zip(classes, names) if name.lower().startswith(t)]
        if not matches:
            continue
        if label in matches and t == emitted:
            matches = [label]
        for c in matches:
            mass[c] += math.exp(min(alt_lp, 0.0)) / len(matches)
    total = sum(mass.values())
    if total <= 0 or mass[label] <= 0:
        return None
    return {c: m / total for c, m in mass.items()}
