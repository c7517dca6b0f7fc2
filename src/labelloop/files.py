"""Writing files so that a reader never sees half of one: temp file or folder beside it, then rename.

Also the one file hash (sha256, via hashlib.file_digest) and the CPU count the process may use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator:
    """Open a temp file beside path; it replaces path only when the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write a whole text file atomically."""
    with atomic_file(Path(path)) as fh:
        fh.write(text)
    return Path(path)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """One JSON object per line, atomically; the number of rows written."""
    n = 0
    with atomic_file(Path(path)) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_yaml(path: Path, data, **dump_options) -> None:
    """A YAML file, atomically (safe_dump unless a Dumper is given)."""
    options = {"sort_keys": False, "allow_unicode": True, "width": 100, **dump_options}
    with atomic_file(Path(path)) as fh:
        if "Dumper" in options:
            yaml.dump(data, fh, **options)
        else:
            yaml.safe_dump(data, fh, **options)


def save_folder_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder into a temp sibling, then rename it into place: complete or absent."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
