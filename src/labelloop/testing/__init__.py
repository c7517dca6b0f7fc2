"""Test helpers that ship with the package (used by tests, benches and end-to-end runs)."""

from labelloop.testing.fake_openai import FAULTS, FakeOpenAI, request_hash

__all__ = ["FAULTS", "FakeOpenAI", "request_hash"]
