"""Shared bits of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    return {
        "date": date.today().isoformat(),
        "commit": commit,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        # other jobs on the machine slow every timing: the 1/5/15-minute load when the file was written
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def write_results(name: str, payload: dict, quiet: bool = False) -> Path:
    """Write bench/results/<date>-<name>.json (atomically: a killed run leaves the last good file)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{date.today().isoformat()}-{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
    if not quiet:
        print(f"wrote {path}")
    return path


class DictCache:
    """Embeddings by key, in memory: many students fitted on the same texts embed them once."""

    def __init__(self):
        self.vectors = {}

    def get(self, keys):
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def put(self, vectors):
        self.vectors.update(vectors)
