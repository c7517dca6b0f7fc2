"""`labelloop init`: a commented starter project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from labelloop.errors import LabelloopError


def write_starter(directory: Path, *, force: bool = False) -> Path:
    """Write config.yaml and an input/ folder into directory; return the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "input").mkdir(exist_ok=True)
    path = directory / "config.yaml"
    if path.exists() and not force:
        raise LabelloopError(f"{path} already exists; pass --force to overwrite it, or pick another folder")
    path.write_text(resources.files("labelloop").joinpath("templates/config.yaml").read_text(encoding="utf-8"))
    return path
