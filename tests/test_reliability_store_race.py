"""Issue 7: two processes opening a brand-new project file at once (a run and `status`/the review
app, or a test polling a starting run) must both succeed: migrations are serialized across processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

OPEN = """
import sys, time

from labelloop.store import Store

start = float(sys.argv[2])
while time.time() < start:
    pass
store = Store(sys.argv[1])
assert store.integrity_check() == "ok"
print(store.schema_version)
"""


def test_concurrent_first_open_of_a_new_project_file(tmp_path: Path):
    failures = []
    for round_ in range(4):
        db = tmp_path / f"p{round_}" / "labelloop.db"
        start = time.time() + 2.0  # every process imports first, then all open the file together
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(db), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            if p.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert not failures, f"{len(failures)} of 16 opens failed: {failures[:3]}"
