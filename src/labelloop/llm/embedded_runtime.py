"""The llama.cpp runtime: one loaded GGUF per (path, n_ctx), the one thread allowed to touch it, its KV cache.

llama.cpp is not thread-safe: every call on a model runs in that model's one worker thread, so
backends sharing a GGUF (small and large roles) share it too.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelloop.errors import ModelNotAvailableError
from labelloop.files import sha256_file, usable_cpus

SEED = 0

_LOAD_LOCK = threading.Lock()
_SLOTS: dict[tuple[str, int], "Slot"] = {}
_SHAS: dict[tuple[str, int, int], str] = {}


@dataclass
class Slot:
    """One loaded GGUF (per path and n_ctx) and the single thread allowed to touch it."""

    path: str
    n_ctx: int
    executor: ThreadPoolExecutor
    llm: Any = None
    calibration: dict = field(default_factory=dict)
    prefix_len: int = -1  # length of the prefix last evaluated from position 0
    chat: Any = None  # the GGUF's chat template as a callable(messages) -> str; None for a base model

    def model(self) -> Any:
        """Load on first use, in the worker thread."""
        if self.llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ModelNotAvailableError(
                    f"llama-cpp-python is not installed ({exc}); install it with "
                    "`pip install llama-cpp-python` or use an 'api' model instead of 'embedded'"
                ) from None
            try:
                self.llm = Llama(
                    model_path=self.path,
                    n_ctx=self.n_ctx,
                    n_threads=usable_cpus(),
                    logits_all=False,
                    verbose=False,
                    seed=SEED,
                    swa_full=True,  # Gemma 3 uses sliding-window attention; rolling back the KV needs it all
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelNotAvailableError(
                    f"cannot load GGUF {self.path!r}: {exc}; point small_model.model / "
                    "large_model.model at a valid GGUF file"
                ) from None
            self.chat = _chat_template(self.llm)
        return self.llm

    # ------------------------------------------------------------ tokens

    def tok(self, text: str) -> list[int]:
        return self.model().tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def detok(self, tokens: list[int]) -> str:
        return self.model().detokenize(tokens).decode("utf-8", errors="ignore")

    def tok_special(self, text: str) -> list[int]:
        return self.model().tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detok_special(self, tokens: list[int]) -> str:
        return self.model().detokenize(tokens, special=True).decode("utf-8", errors="ignore")

    def bos(self) -> list[int]:
        bos_id = self.model().token_bos()
        return [bos_id] if bos_id >= 0 else []

    # ------------------------------------------------------------ evaluation with a kept prefix

    def eval_chunk(self, prompt) -> int:
        """Evaluate prefix (kept in the KV cache across chunks) and the chunk; returns the position after it.

        The prefix is always evaluated alone from position 0 and the chunk as one batch
        after it: llama.cpp's numbers depend slightly on batch boundaries, so fixed
        boundaries keep a chunk's scores the same whatever was scored before it.
        """
        llm = self.model()
        n_prefix = len(prompt.prefix)
        cached = list(llm.input_ids[: llm.n_tokens]) if llm.n_tokens >= n_prefix else []
        if cached[:n_prefix] != prompt.prefix or self.prefix_len != n_prefix:
            llm.reset()
            llm.eval(prompt.prefix)
            self.prefix_len = n_prefix
        llm.n_tokens = n_prefix
        llm.eval(prompt.doc)
        return llm.n_tokens

    def continuations(self, base: int, sequences: list[list[int]]) -> np.ndarray:
        """Summed log-probs of each token sequence after position `base` (rolled back to it after each)."""
        llm = self.model()
        first = log_softmax(self.last_logits())
        scores = []
        for toks in sequences:
            total = float(first[toks[0]])
            for j in range(len(toks) - 1):
                llm.eval([toks[j]])
                total += float(log_softmax(self.last_logits())[toks[j + 1]])
            llm.n_tokens = base
            scores.append(total)
        return np.array(scores)

    def last_logits(self) -> np.ndarray:
        llm = self.model()
        ptr = llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _chat_template(llm: Any):
    """The model's chat template (from the GGUF) as messages -> prompt text, or None if it has none."""
    template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def piece(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

    formatter = Jinja2ChatFormatter(template=template, eos_token=piece(llm.token_eos()),
                                    bos_token=piece(llm.token_bos()), add_generation_prompt=True)
    return lambda messages: formatter(messages=messages).prompt


def slot(path: str, n_ctx: int) -> Slot:
    """The shared slot of a GGUF and window size (made on first use; the model loads on first call)."""
    key = (path, n_ctx)
    with _LOAD_LOCK:
        if key not in _SLOTS:
            _SLOTS[key] = Slot(path, n_ctx, ThreadPoolExecutor(1, thread_name_prefix="llama"))
        return _SLOTS[key]


def file_fingerprint(path: str) -> str:
    """First 12 hex digits of the file's sha256 (cached per path, size, mtime)."""
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _SHAS:
        _SHAS[key] = sha256_file(path)[:12]
    return _SHAS[key]
