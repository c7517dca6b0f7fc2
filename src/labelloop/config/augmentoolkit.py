"""Augmentoolkit compatibility: its `api.*` keys and its `!!PLACEHOLDER!!` marker.

`resolve_llm` is the one place that maps Augmentoolkit's `api.*` keys onto labelloop's
LLM sections (`small_model`, `large_model`); a section of labelloop's own wins.
"""

from __future__ import annotations

from typing import Literal

from labelloop.config.schema import Config, LLMSection

PLACEHOLDER = "!!PLACEHOLDER!!"

_MODE_ALIASES = {"api": "api", "local": "local", "embedded": "embedded"}


def resolve_llm(config: Config, which: Literal["small", "large"]) -> LLMSection:
    """The LLM settings for one role: our section if given, else Augmentoolkit's api.* keys."""
    own = config.small_model if which == "small" else config.large_model
    if own is not None:
        return own
    api = config.api
    if api is None:
        return LLMSection()
    mode = getattr(api, f"{which}_mode") or ("api" if getattr(api, f"{which}_base_url") else "embedded")
    return LLMSection(
        mode=_MODE_ALIASES[mode],
        model=getattr(api, f"{which}_model"),
        base_url=getattr(api, f"{which}_base_url"),
        api_key=getattr(api, f"{which}_api_key"),
    )


def check_api_modes(raw: dict, problems: list[str]) -> None:
    """Report (and drop, so validation goes on) an api.*_mode that is not a known mode."""
    api = raw.get("api")
    if not isinstance(api, dict):
        return
    for which in ("large", "small"):
        mode = api.get(f"{which}_mode")
        if mode is not None and mode not in _MODE_ALIASES:
            problems.append(
                f"api.{which}_mode: {mode!r} is not a known mode; use one of {sorted(_MODE_ALIASES)}"
            )
            api.pop(f"{which}_mode")
