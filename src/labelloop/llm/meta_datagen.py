"""meta_datagen/meta_dataset.jsonl: every logged LLM call as a chat-format training record.

`meta_datagen_keys` picks which calls: "label_details" (labeling calls) and
"rules_creation_details" (rules writing); an empty list means both.

Each `meta_datagen_extras` entry is a Jinja2 template, given as a file path or inline.
Its output is added under record["extras"][name] (name: the file's stem, or extra_<i>).
Variables available to an extra:

- key:      "label_details" or "rules_creation_details"
- messages: the chat messages sent, ending with the assistant's reply
- reply:    the assistant's reply text
- call:     the logged call (id, purpose, backend, model, prompt_tokens, completion_tokens, cost, latency_s, attempts, faults)
- label:    for labeling calls: {chunk_id, chunk, label, source, confidence, status}; else None
- chunk:    the labeled text (as sent, possibly truncated); else None
- config:   the whole config as a dict
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from labelloop import labels as policy
from labelloop.config import Config
from labelloop.errors import LabelloopError
from labelloop.files import atomic_file
from labelloop.store import Label, LLMCall, Store

KEYS = {"label_details": "label", "rules_creation_details": "rules"}
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def _load_extras(extras: list[str]) -> list[tuple[str, jinja2.Template]]:
    out = []
    for i, extra in enumerate(extras):
        path = Path(extra).expanduser()
        is_file = "\n" not in extra and len(extra) < 1024 and path.is_file()
        source = path.read_text(encoding="utf-8") if is_file else extra
        name = path.stem if is_file else f"extra_{i}"
        try:
            out.append((name, _ENV.from_string(source)))
        except jinja2.TemplateSyntaxError as exc:
            raise LabelloopError(
                f"meta_datagen.meta_datagen_extras[{i}] ({extra[:60]!r}): Jinja2 syntax error on line "
                f"{exc.lineno}: {exc.message}; fix the template (variables are listed in labelloop/llm/meta_datagen.py)"
            ) from None
    return out


def _messages(call: LLMCall, reply: str) -> list[dict]:
    sent = (call.request or {}).get("sent") or {}
    messages = sent.get("messages") or (call.request or {}).get("inputs", {}).get("messages")
    if messages is None and "prompt" in sent:
        messages = [{"role": "user", "content": sent["prompt"]}]
    return [*(messages or []), {"role": "assistant", "content": reply}]


def _key(call: LLMCall, keys: list[str]) -> str | None:
    purpose = (call.purpose or "").split(":")[0]
    return next((k for k in keys if KEYS[k] == purpose), None)


def _label_record(call: LLMCall, lab: Label | None, chunk: str | None) -> dict:
    """The label a labeling call gave, as the store holds it (the one that counts); the log's answer if none."""
    if lab is not None:
        return {"chunk_id": lab.chunk_id, "chunk": chunk, "label": lab.label, "source": lab.source,
                "confidence": lab.confidence, "status": lab.status}
    answered = call.response.get("label")
    probs = call.response.get("probs") or {}
    return {"chunk_id": None, "chunk": chunk, "label": answered,
            "source": (call.purpose or "").partition(":")[2] or None,
            "confidence": probs.get(answered) if answered in probs else None,
            "status": policy.OK if answered is not None else policy.UNLABELED}


def write_meta_dataset(store: Store, config: Config, path: str | Path) -> int:
    """Write one chat record per logged call for the chosen keys; return how many (0 when off)."""
    meta = config.meta_datagen
    if not meta.do_meta_datagen:
        return 0
    keys = list(meta.meta_datagen_keys) or list(KEYS)
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise LabelloopError(
            f"meta_datagen.meta_datagen_keys: unknown key(s) {unknown}; use any of {sorted(KEYS)}"
        )
    extras = _load_extras(list(meta.meta_datagen_extras))
    labels = {lab.call_id: lab for lab in store.labels() if lab.call_id is not None}
    config_dict = config.model_dump(mode="json")
    n = 0
    with atomic_file(Path(path)) as out:
        for call in store.calls():
            key = _key(call, keys)
            if call.status != "ok" or key is None or not isinstance(call.response, dict):
                continue
            reply = call.response.get("raw") if "raw" in call.response else call.response.get("text")
            messages = _messages(call, reply or "")
            record: dict = {"key": key, "messages": messages, "model": call.model, "purpose": call.purpose,
                            "call_id": call.id}
            chunk = label = None
            if key == "label_details":
                chunk = ((call.request or {}).get("inputs", {}).get("task") or {}).get("text")
                label = _label_record(call, labels.get(call.id), chunk)
                record["label"] = label
            if extras:
                values = {"key": key, "messages": messages, "reply": reply, "label": label, "chunk": chunk,
                          "config": config_dict, "call": {
                              f: getattr(call, f) for f in ("id", "purpose", "backend", "model", "prompt_tokens",
                                                            "completion_tokens", "cost", "latency_s", "attempts",
                                                            "faults")}}
                record["extras"] = {}
                for name, template in extras:
                    try:
                        record["extras"][name] = template.render(**values)
                    except jinja2.UndefinedError as exc:
                        raise LabelloopError(
                            f"meta_datagen extra {name!r}: {exc.message}; the variables available are "
                            f"{sorted(values)}"
                        ) from None
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n
