"""LLM layer: backends, prompts, parsing, the call log (cache), the labeler, rules and planning.

Import from the submodules (e.g. `labelloop.llm.labeler`); this package stays light so that
importing it does not pull in the HTTP client or llama.cpp.
"""

from labelloop.llm.base import Backend, Classification, Example, Generation, LabelTask, RequestRejectedError

__all__ = ["Backend", "Classification", "Example", "Generation", "LabelTask", "RequestRejectedError"]
