"""An OpenAIBackend on the fake server, and the texts it knows."""

from __future__ import annotations

import asyncio

from labelloop.config import LLMSection
from labelloop.llm.base import Example, LabelTask
from labelloop.llm.openai_backend import OpenAIBackend

GOLD = {
    "The striker scored twice as United beat City in the derby.": "sport",
    "The new chip doubles battery life in phones and laptops.": "tech",
    "MPs voted on the budget after a long debate in parliament.": "politics",
    "Shares in the bank rose after record quarterly profits.": "business",
}


CLASSES = ("business", "politics", "sport", "tech")


def backend(fake, concurrency: int = 4, **settings) -> OpenAIBackend:
    settings.setdefault("max_retries", 3)
    return OpenAIBackend(LLMSection(mode="api", base_url=fake.base_url, model=fake.model, **settings),
                         concurrency, backoff_s=0.01)


def task(text: str, examples: tuple[Example, ...] = ()) -> LabelTask:
    return LabelTask(text, CLASSES, "1. Label by main subject.", "News topics.", examples)


def classify(b: OpenAIBackend, text: str):
    return asyncio.run(b.classify(task(text)))


def classify_all(b: OpenAIBackend, texts):
    async def run():
        return await asyncio.gather(*(b.classify(task(t)) for t in texts))

    return asyncio.run(run())
