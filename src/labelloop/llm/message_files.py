"""Augmentoolkit's prompt files: YAML lists of {role, content} messages with Python-format fields.

A prompt folder (`path.prompts`, then `path.default_prompts`) may hold:

- `create_rules_for_desc.yaml`: the rules prompt; fields `{class_list}` (numbered classes,
  also spelled `{classes_list}`) and `{classes_desc}` (classification.desc);
- `create_labels_for_chunk.yaml`: the labeling prompt; fields `{classes}` (numbered from 0,
  `0. cruise`), `{rules}` and `{text}` (the chunk, inside labelloop's data fence).

Replies to the labeling prompt end in `Final label: <index>`, read as Augmentoolkit reads
them (the last such line; a class name, a 0-based index, or "1. name").
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from labelloop.errors import LabelloopError

RULES_FILE = "create_rules_for_desc.yaml"
LABELS_FILE = "create_labels_for_chunk.yaml"
FIELDS = {
    RULES_FILE: frozenset({"class_list", "classes_list", "classes_desc"}),
    LABELS_FILE: frozenset({"classes", "rules", "text"}),
}
ROLES = ("system", "user", "assistant")
_FINAL = re.compile(r"Final label:[ \t]*(.+)")


@dataclass(frozen=True)
class MessageTemplate:
    """One prompt file: its messages, and the fields they use."""

    path: Path
    messages: tuple[tuple[str, str], ...]  # (role, content)
    fields: frozenset[str]

    def render(self, **values: str) -> list[dict]:
        """The messages with every field filled (fields the file does not use are ignored)."""
        return [{"role": role, "content": content.format_map(values)} for role, content in self.messages]

    def render_last_user(self, **values: str) -> str:
        """The last user message alone, filled (used to show few-shot examples in the same shape)."""
        for role, content in reversed(self.messages):
            if role == "user":
                return content.format_map(values)
        raise LabelloopError(f"{self.path}: has no user message; add one that holds {{text}}")


def load_template(path: Path) -> MessageTemplate:
    """Read and check one prompt file; every problem names the file and the fix."""
    allowed = FIELDS[path.name]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LabelloopError(f"prompt file {path}: cannot read it as YAML ({' '.join(str(exc).split())}); "
                             "fix the file or remove it to use labelloop's built-in prompt") from None
    if not isinstance(data, list) or not data:
        raise LabelloopError(f"prompt file {path}: expected a YAML list of {{role, content}} messages, got "
                             f"{type(data).__name__}; write it as Augmentoolkit does (`- role: system`)")
    messages, used = [], set()
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            raise LabelloopError(f"prompt file {path}: message {i} must have role ({', '.join(ROLES)}) and a "
                                 f"text content; got {item!r:.120}")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(item["content"]) if name is not None}
        except ValueError as exc:
            raise LabelloopError(f"prompt file {path}: message {i} is not a valid format string ({exc}); "
                                 "write a literal brace as {{ or }}") from None
        unknown = sorted(n for n in names if n not in allowed)
        if unknown:
            raise LabelloopError(f"prompt file {path}: message {i} uses {', '.join('{' + n + '}' for n in unknown)}; "
                                 f"this prompt can use {', '.join('{' + n + '}' for n in sorted(allowed))}")
        used |= names
        messages.append((item["role"], item["content"]))
    if path.name == LABELS_FILE and "text" not in used:
        raise LabelloopError(f"prompt file {path}: no message holds {{text}}, so the chunk would never reach the "
                             "model; put {text} in the last user message")
    return MessageTemplate(path, tuple(messages), frozenset(used))


def numbered(classes: Sequence[str]) -> str:
    """Augmentoolkit's class list: `0. first` ... one per line."""
    return "\n".join(f"{i}. {c}" for i, c in enumerate(classes))


def final_label_span(reply: str, classes: Sequence[str]) -> tuple[str, int, str] | None:
    """(class, offset of the answer, the answer's text) from the last `Final label:` line, or None.

    As Augmentoolkit reads it: the class name; else a 0-based index; else "1 ..." or "1. name".
    """
    matches = list(_FINAL.finditer(reply or ""))
    if not matches:
        return None
    m = matches[-1]
    value = m.group(1).strip()
    offset = m.start(1)
    bare = value.strip(" \t*`\"'").rstrip(".")
    by_name = {c.strip().lower(): c for c in classes}
    if bare.lower() in by_name:
        return by_name[bare.lower()], offset, bare
    index = re.fullmatch(r"(\d+)", bare) or re.match(r"(\d+)\s", bare)  # "1", "1 positive"
    dotted = re.match(r"(\d+)\.\s*(.+)", bare)  # "1. positive": the name must agree
    if index is None and dotted is not None and 0 <= int(dotted.group(1)) < len(classes):
        if classes[int(dotted.group(1))].strip().lower() == dotted.group(2).strip().rstrip(".").lower():
            index = dotted
    if index is not None and 0 <= int(index.group(1)) < len(classes):
        return classes[int(index.group(1))], offset, index.group(1)
    return None
