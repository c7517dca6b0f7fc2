"""The project store: one SQLite file shared by the loop, the CLI and the review app."""

from labelloop.store.db import Store
from labelloop.store.records import (
    Chunk,
    Iteration,
    Label,
    LLMCall,
    NewChunk,
    Review,
    Rules,
    text_hash,
)

__all__ = [
    "Chunk", "Iteration", "Label", "LLMCall", "NewChunk", "Review", "Rules", "Store", "text_hash",
]
