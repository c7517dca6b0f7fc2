"""How the fake teacher reads a request: what the protocol asks for, and which known text it is about.

It knows nothing of the client's prompts. It reads what any server reads:

- the JSON schema in `response_format`, if any: a string property with an `enum` asks for one
  label among those classes, an array property whose items have an `enum` asks for a label set;
  any JSON response format asks for a label (free text is never asked for as JSON);
- the text: the messages' contents in order (chat) or the prompt (completions). The document
  is the corpus text quoted last (labelloop.testing.corpus). The quotes just before it belong to
  the same request when nothing between them names one of the teacher's classes: a client that
  shows several texts at once (samples to write rules from) asks for free text, while examples
  shown with their answers (few-shot turns, each answered by a class) come before the document.

So a request without a schema is a labeling request when its last quote stands alone, and a
request for free text when it quotes several texts together, or none of the known ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from labelloop.testing.corpus import Corpus, Occurrence, words


@dataclass(frozen=True)
class Request:
    """What a request asks for, as the teacher reads it."""

    endpoint: str  # "chat" or "completions"
    texts: list[str]  # the messages' contents in order, or the prompt
    schema_classes: list[str] | None  # the classes the JSON schema allows, if it names them
    wants_set: bool | None  # the schema's answer: True a label set, False one label, None no schema says
    json_field: str | None  # the property the schema puts the answer in
    json_mode: bool  # a JSON response format was asked for
    temperature: float
    top_n: int | None  # how many alternatives per token the logprobs should hold; None: no logprobs

    @classmethod
    def of(cls, endpoint: str, body: dict) -> Request:
        if endpoint == "chat":
            texts = [str(m.get("content", "")) for m in body.get("messages") or [] if isinstance(m, dict)]
        else:
            texts = [str(body.get("prompt", ""))]
        rf = body.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("schema") or rf.get("schema") or {}
        field, enum, wants_set = _answer_property(schema)
        want = body.get("logprobs")
        top_n = None
        if want:
            top_n = int(body.get("top_logprobs") or 0) if endpoint == "chat" else int(want)
        return cls(endpoint=endpoint, texts=texts, schema_classes=enum, wants_set=wants_set, json_field=field,
                   json_mode=rf.get("type") in ("json_schema", "json_object"),
                   temperature=float(body.get("temperature") or 0.0), top_n=top_n)


def _answer_property(schema: dict) -> tuple[str | None, list[str] | None, bool | None]:
    """(property, its classes, whether it is a set) of the first property that lists allowed values."""
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if isinstance(prop.get("enum"), list):
            return name, [str(c) for c in prop["enum"]], False
        items = prop.get("items")
        if prop.get("type") == "array" and isinstance(items, dict) and isinstance(items.get("enum"), list):
            return name, [str(c) for c in items["enum"]], True
    return None, None, None


@dataclass(frozen=True)
class Found:
    """The document a request is about, and the text (message or prompt) that quotes it."""

    occurrence: Occurrence | None  # None: the request quotes no known text
    text: str  # the message (or prompt) holding the document; the last text when none is known
    together: int  # how many quotes stand together at the end (1: a document to label)


def find_document(corpus: Corpus, texts: Sequence[str], classes: Sequence[str]) -> Found:
    """The last known text the request quotes, and how many quotes stand together with it."""
    for text in reversed(texts):
        found = corpus.occurrences(text)
        if found:
            return Found(found[-1], text, _together(text, found, classes))
    return Found(None, texts[-1] if texts else "", 0)


def _together(text: str, found: list[Occurrence], classes: Sequence[str]) -> int:
    """How many quotes at the end of the text are not separated by a class name."""
    ws = [_bare(w) for w in words(text)]
    names = [name for name in ([_bare(w) for w in words(c)] for c in classes) if name and all(name)]
    n = 1
    for before, after in zip(reversed(found[:-1]), reversed(found[1:]), strict=True):
        if _names_a_class(ws[before.end:after.start], names):
            break
        n += 1
    return n


def _bare(word: str) -> str:
    """A word without the quotes and marks around it (`"sport"},` is `sport`)."""
    return re.sub(r"^\W+|\W+$", "", word)


def _names_a_class(gap: list[str], names: list[list[str]]) -> bool:
    return any(gap[i:i + len(name)] == name for name in names for i in range(len(gap) - len(name) + 1))
