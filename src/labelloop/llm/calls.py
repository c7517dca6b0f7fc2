"""The call log is the cache: every LLM call is written to the store before its result is used.

The key is sha256(backend identity + canonical JSON of the request inputs); a key that
is already logged as 'ok' is answered from the log with zero network. Writes go to the
store's writer thread and are awaited (reads stay direct), so the event loop never waits
on SQLite while a result is committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from labelloop.errors import LabelloopError
from labelloop.llm.base import Backend, Classification, Generation, LabelTask
from labelloop.store import Store


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def call_key(identity: str, inputs: dict) -> str:
    """The cache key of a request: which backend, and everything that shapes the answer."""
    return hashlib.sha256(f"{identity}\n{canonical(inputs)}".encode()).hexdigest()


def task_inputs(task: LabelTask) -> dict:
    inputs = {
        "text": task.text, "classes": list(task.classes), "rules": task.rules,
        "description": task.description, "examples": [[e.text, e.label] for e in task.examples],
    }
    if task.multi_label:  # its own key: never the answer of a single-label request (whose keys stay as they were)
        inputs["multi_label"] = True
    return inputs


def jsonable(value: Any) -> Any:
    """A JSON-safe copy (numpy scalars/arrays become numbers/lists) so any backend's answer can be logged."""
    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "model_dump"):
            return obj.model_dump(mode="json")
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def call_cost(backend: Backend, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """Cost from the backend settings' prices per 1k tokens; None when no price is set."""
    settings = getattr(backend, "settings", None)
    p_in = getattr(settings, "price_per_1k_input", None)
    p_out = getattr(settings, "price_per_1k_output", None)
    if p_in is None and p_out is None:
        return None
    return (prompt_tokens or 0) / 1000 * (p_in or 0.0) + (completion_tokens or 0) / 1000 * (p_out or 0.0)


class CallLog:
    """Wraps backends so every call is logged (and answered from the log when seen before)."""

    def __init__(self, store: Store):
        self.store = store
        self._inflight: dict[str, asyncio.Task] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def classify_key(backend: Backend, task: LabelTask) -> tuple[str, dict]:
        """(key, inputs) of a labeling request: the backend, the task, and what else shapes the answer."""
        params_for = getattr(backend, "cache_params_for", None)  # backends whose params depend on the task
        params = params_for(task) if params_for is not None else getattr(backend, "cache_params", {})
        inputs = {"kind": "classify", "task": task_inputs(task), "params": params}
        return call_key(backend.identity, inputs), inputs

    @staticmethod
    def generate_key(backend: Backend, messages: list[dict], max_tokens: int, temperature: float) -> tuple[str, dict]:
        """(key, inputs) of a free-text request, keyed by the model that writes it."""
        inputs = {"kind": "generate", "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        params = getattr(backend, "generate_params", None)
        if params:  # only backends whose text depends on more than the request (embedded: n_ctx)
            inputs["params"] = params
        return call_key(getattr(backend, "generate_identity", backend.identity), inputs), inputs

    async def classify(self, backend: Backend, task: LabelTask, purpose: str = "label") -> Classification:
        """backend.classify(task), logged; a logged identical request is rebuilt instead of sent."""
        key, inputs = self.classify_key(backend, task)
        return await self._once(key, lambda key: self._classify(backend, task, purpose, key, inputs))

    async def generate(self, backend: Backend, messages: list[dict], purpose: str = "generate", *,
                       max_tokens: int = 1024, temperature: float = 0.0) -> Generation:
        """backend.generate(messages), logged; a logged identical request is rebuilt instead of sent."""
        key, inputs = self.generate_key(backend, messages, max_tokens, temperature)
        return await self._once(key, lambda key: self._generate(
            backend, messages, purpose, key, inputs, max_tokens, temperature))

    async def _once(self, key: str, make):
        """Identical requests in flight at the same time share one call."""
        task = self._inflight.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(make(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))
        return await asyncio.shield(task)

    async def _classify(self, backend: Backend, task: LabelTask, purpose: str, key: str,
                        inputs: dict) -> Classification:
        logged = self.store.cached_call(key)
        if logged is not None and isinstance(logged.response, dict) and "raw" in logged.response:
            self.hits += 1
            await self.store.write_async(self.store.count_cache_hit)
            r = logged.response
            return Classification(
                label=r.get("label"), probs=r.get("probs"), raw=r.get("raw") or "",
                request=(logged.request or {}).get("sent", {}), response=r.get("server"), reason=r.get("reason"),
                prompt_tokens=logged.prompt_tokens, completion_tokens=logged.completion_tokens,
                attempts=logged.attempts, faults=logged.faults, call_id=logged.id, cached=True,
                multi_label=task.multi_label,
            )
        self.misses += 1
        start = time.perf_counter()
        result = await self._guard(backend, key, purpose, inputs, start, backend.classify(task))
        result.multi_label = task.multi_label
        response = {"label": result.label, "probs": result.probs, "raw": result.raw, "reason": result.reason,
                    "server": result.response}
        # The backend may have found, on this very call, that its server takes another request shape:
        # log the answer under the key of the shape it was asked in, the key a resumed run looks up.
        key, inputs = self.classify_key(backend, task)
        result.call_id = await self._log(backend, key, purpose, inputs, result, response, start)
        return result

    async def _generate(self, backend: Backend, messages: list[dict], purpose: str, key: str, inputs: dict,
                        max_tokens: int, temperature: float) -> Generation:
        logged = self.store.cached_call(key)
        if logged is not None and isinstance(logged.response, dict) and "text" in logged.response:
            self.hits += 1
            await self.store.write_async(self.store.count_cache_hit)
            return Generation(
                text=logged.response["text"], request=(logged.request or {}).get("sent", {}),
                response=logged.response.get("server"), prompt_tokens=logged.prompt_tokens,
                completion_tokens=logged.completion_tokens, attempts=logged.attempts, faults=logged.faults,
                call_id=logged.id, cached=True,
            )
        self.misses += 1
        start = time.perf_counter()
        result = await self._guard(backend, key, purpose, inputs, start,
                                   backend.generate(messages, max_tokens=max_tokens, temperature=temperature))
        response = {"text": result.text, "server": result.response}
        result.call_id = await self._log(backend, key, purpose, inputs, result, response, start, writer=True)
        return result

    async def _guard(self, backend: Backend, key: str, purpose: str, inputs: dict, start: float, coro):
        """Await a backend call; log a failure the backend reported (a LabelloopError) with status 'error'.

        Anything else is a bug in labelloop or a library, not a failed call: it propagates as it is.
        """
        try:
            return await coro
        except LabelloopError as exc:
            await self.store.write_async(
                self.store.log_call, key, backend.identity, jsonable({"inputs": inputs}), None, status="error",
                model=backend.model, purpose=purpose, error=str(exc), latency_s=time.perf_counter() - start,
                attempts=getattr(exc, "attempts", 1), faults=jsonable(getattr(exc, "faults", None)),
            )
            raise

    async def _log(self, backend: Backend, key: str, purpose: str, inputs: dict,
                   result: Classification | Generation, response: dict, start: float, writer: bool = False) -> int:
        identity = getattr(backend, "generate_identity", backend.identity) if writer else backend.identity
        model = getattr(backend, "generate_model", backend.model) if writer else backend.model
        return await self.store.write_async(
            self.store.log_call, key, identity, jsonable({"inputs": inputs, "sent": result.request}),
            jsonable(response), status="ok", model=model, purpose=purpose, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=call_cost(backend, result.prompt_tokens, result.completion_tokens),
            latency_s=time.perf_counter() - start, attempts=result.attempts, faults=result.faults,
        )
