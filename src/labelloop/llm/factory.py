"""Make the backend a config asks for."""

from __future__ import annotations

from labelloop.config import LLMSection, SystemSection
from labelloop.llm.base import Backend
from labelloop.llm.prompts import PromptSet


def make_backend(settings: LLMSection, system: SystemSection, prompts: PromptSet | None = None) -> Backend:
    """mode 'api' -> OpenAIBackend; 'embedded'/'local' -> EmbeddedBackend (llama.cpp, loaded lazily)."""
    if settings.mode == "api":
        from labelloop.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(settings, system.concurrency_limit, completion_mode=system.completion_mode,
                             use_stop=system.use_stop, prompts=prompts, timeout_s=system.timeout_s,
                             probe_timeout_s=system.probe_timeout_s)
    from labelloop.llm.embedded import EmbeddedBackend

    return EmbeddedBackend(settings)
