"""Test helpers that ship with the package (used by tests, benches and end-to-end runs).

They import nothing from the rest of labelloop: the fake server sees labelloop as any server would.
"""

from labelloop.testing.fake_openai import FAULTS, FakeOpenAI, request_hash
from labelloop.testing.teacher import Teacher

__all__ = ["FAULTS", "FakeOpenAI", "Teacher", "request_hash"]
