"""Load config.yaml: read the YAML, validate it, resolve paths, and render every problem at once."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from labelloop.config.augmentoolkit import PLACEHOLDER, check_api_modes, resolve_llm
from labelloop.config.schema import Config
from labelloop.errors import ConfigError


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve a config file; raise ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            [f"{path}: no such file; create one with `labelloop init DIR`"], source=str(path)
        )
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {' '.join(str(exc).split())}"], source=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"top level must be a mapping of sections, got {type(raw).__name__}"], source=str(path)
        )
    problems = [f"{where}: still {PLACEHOLDER}; replace it with your value" for where in _placeholders(raw)]
    problems += [f"{where}: unknown YAML tag {tag!r}; write the value without the tag (quote it if it starts "
                 "with !)" for where, tag in _unknown_tags(raw)]
    if problems:
        raise ConfigError(problems, source=str(path))
    return parse_config(raw, base_dir=path.parent, source=str(path))


class _Tagged(str):
    """A scalar with a YAML tag nothing here knows; the loader keeps the tag to report it."""

    tag: str = ""


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps values with unknown tags (Augmentoolkit writes `key: !!PLACEHOLDER!!`)."""


def _unknown(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if node.tag == f"tag:yaml.org,2002:{PLACEHOLDER.strip('!')}!!":
        return PLACEHOLDER
    value = _Tagged(loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else "")
    value.tag = node.tag
    return value


_Loader.add_multi_constructor("tag:yaml.org,2002:", _unknown)
_Loader.add_multi_constructor("!", _unknown)


def _walk(value: Any, where: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]")
    else:
        yield where, value


def _placeholders(raw: dict) -> list[str]:
    """Dotted keys whose value still holds Augmentoolkit's !!PLACEHOLDER!! marker."""
    return [where for where, v in _walk(raw) if isinstance(v, str) and PLACEHOLDER in v]


def _unknown_tags(raw: dict) -> list[tuple[str, str]]:
    return [(where, v.tag) for where, v in _walk(raw) if isinstance(v, _Tagged)]


def parse_config(raw: dict, base_dir: Path, source: str = "config") -> Config:
    """Validate a config mapping (left unchanged); relative paths resolve against base_dir."""
    raw = copy.deepcopy(raw)
    problems: list[str] = []
    check_api_modes(raw, problems)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_render(err) for err in exc.errors())
        raise ConfigError(problems, source=source) from None
    for field in ("input_dir", "output_dir", "prompts", "default_prompts"):
        value = getattr(config.path, field)
        if value is not None and not value.is_absolute():
            setattr(config.path, field, (base_dir / value).resolve())
    if not config.path.input_dir.is_dir():
        problems.append(
            f"path.input_dir: {str(config.path.input_dir)!r} is not a folder; "
            "create it and put your documents there, or point path.input_dir at an existing folder"
        )
    for which in ("small", "large"):
        llm = resolve_llm(config, which)  # type: ignore[arg-type]
        if llm.mode == "api" and not llm.base_url:
            problems.append(
                f"{which}_model.base_url (or api.{which}_base_url): missing for mode 'api'; "
                "set it to your server, e.g. http://127.0.0.1:8000/v1"
            )
        if llm.mode == "api" and not llm.model:
            problems.append(
                f"{which}_model.model (or api.{which}_model): missing for mode 'api'; "
                "set it to a model name the server serves (its /v1/models lists them)"
            )
    if config.multi_label and config.student.type == "auto":
        problems.append(
            "student.type: 'auto' chooses among single-label students only; with classification.multi_label "
            "set student.type to embedding-head (the default), static, setfit or transformer"
        )
    if problems:
        raise ConfigError(problems, source=source)
    return config


def _model_for(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        if not isinstance(part, str):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def _render(err: dict) -> str:
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    value = err.get("input")
    kind = err["type"]
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    if kind == "extra_forbidden":
        model = _model_for(loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{dotted}: unknown key; {hint}known keys here: {', '.join(known)}"
    if kind == "missing":
        return f"{dotted}: required key is missing; add it (see `labelloop init` for an example)"
    if value is None:
        return f"{dotted}: is empty but needs a value; fill it in (see `labelloop init` for an example)"
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        return f"{dotted}: {shown}: {msg}"
    return f"{dotted}: {shown}: {err['msg'].lower()}; fix the value in the config"
