"""The call log tells a failed LLM call from a bug: only a backend's reported failure is logged as one."""

from __future__ import annotations

import asyncio

import pytest

from labelloop.errors import LLMError
from labelloop.llm.base import Classification, LabelTask
from labelloop.llm.calls import CallLog
from labelloop.store import Store

pytestmark = pytest.mark.unit

TASK = LabelTask("Shares rose.", ("business", "sport"), "", "News topics.")


class Failing:
    """A backend whose classify raises what it is given (a real backend cannot be made to have a bug)."""

    identity = "failing backend"
    model = "m"
    cache_params: dict = {}

    def __init__(self, exc: BaseException):
        self.exc = exc

    async def classify(self, task: LabelTask) -> Classification:
        raise self.exc


def test_a_bug_in_a_backend_surfaces_as_itself_and_is_not_logged(tmp_path):
    store = Store(tmp_path / "p.db")
    with pytest.raises(KeyError, match="choices"):
        asyncio.run(CallLog(store).classify(Failing(KeyError("choices")), TASK))
    assert store.calls() == []


def test_a_reported_failure_is_logged_and_raised(tmp_path):
    store = Store(tmp_path / "p.db")
    with pytest.raises(LLMError, match="server down"):
        asyncio.run(CallLog(store).classify(Failing(LLMError("server down")), TASK))
    [call] = store.calls()
    assert (call.status, call.error) == ("error", "server down")
