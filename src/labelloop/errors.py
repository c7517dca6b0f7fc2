"""The project's exception types. The CLI turns these into messages; nothing else does."""


class LabelloopError(Exception):
    """Base class: a problem the user can fix. Its message says what and how."""


class ConfigError(LabelloopError):
    """config.yaml is invalid; the message lists every problem at once."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in {source}:\n{lines}")


class StoreError(LabelloopError):
    """The project file cannot be opened or is from a newer labelloop."""


class IngestError(LabelloopError):
    """No usable input at all (single bad files are reported, not raised)."""


class LLMError(LabelloopError):
    """An LLM backend cannot be reached or used after retries."""


class ModelNotAvailableError(LabelloopError):
    """A model (GGUF, encoder, transformer) is not available offline."""


class NotFittedError(LabelloopError, ValueError):
    """A student was used before fit."""
