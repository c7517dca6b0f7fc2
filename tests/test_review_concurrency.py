"""The review app and a second process write the same project file at once: nothing lost, never "locked"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from labelloop.review.app import create_app
from tests.helpers.review_project import CLASSES, live_server, make_project

pytestmark = pytest.mark.unit

WRITER = r"""
import json, sys, time
from pathlib import Path
from labelloop.store import Store


store = Store(sys.argv[1], create=False)
stop = Path(sys.argv[2])
ids = [c.id for c in store.chunks()]
last, k = {}, 0
while not stop.exists() or k < 150:
    cid = ids[k % len(ids)]
    store.set_label(cid, "student", "tech", confidence=0.5, iteration=k, probs={"tech": 0.5, "sports": 0.5})
    if k % 10 == 0:
        store.set_meta("writer_round", k)
    last[cid] = k
    k += 1
    time.sleep(0.002)  # the loop writes in bursts, not in a busy spin
print(json.dumps({"writes": k, "last": last}))
"""


def test_loop_process_and_two_reviewers_write_together(tmp_path):
    project = make_project(tmp_path)
    store, ids = project.store, sorted(project.truth)
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project.path), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    app = create_app(store)
    statuses: list[int] = []
    saved: list[tuple[str, int, str]] = []

    def reviewer(name: str, label: str, url: str) -> None:
        with httpx.Client(base_url=url, headers={"X-CSRF-Token": app.state.csrf_token}, timeout=60) as client:
            for cid in ids:  # both reviewers save every record: the same records, at the same time
                r = client.post("/api/label", json={"chunk_id": cid, "action": "correct", "label": label,
                                                    "reviewer": name})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    saved.append((name, cid, label))
                client.get("/api/counts")

    try:
        with live_server(app) as url:
            pairs = zip("ab", CLASSES[:2], strict=True)
            threads = [threading.Thread(target=reviewer, args=(n, c, url)) for n, c in pairs]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert "locked" not in err.lower()
    assert set(statuses) == {200} and len(saved) == 2 * len(ids)
    result = json.loads(out)
    assert result["writes"] >= 150
    students = store.labels_by_chunk("student")
    for cid, k in result["last"].items():
        assert students[int(cid)].iteration == k  # every write of the other process is there
    reviews = [r for r in store.reviews() if r.action == "correct"]
    assert len(reviews) == len(saved)  # every save is logged
    last_review = {r.chunk_id: r.label for r in reviews}  # in id (commit) order: the later save wins
    humans = store.labels_by_chunk("human")
    assert {cid: humans[cid].label for cid in ids} == last_review
    assert store.integrity_check() == "ok"
