"""The project store: one SQLite file shared by the loop, the CLI and the review app."""

from labelloop.store.db import Store
from labelloop.store.records import (
    Added,
    Chunk,
    Dropped,
    Iteration,
    Label,
    LLMCall,
    NewChunk,
    Review,
    Rules,
    text_hash,
)

__all__ = [
    "Added", "Chunk", "Dropped", "Iteration", "Label", "LLMCall", "NewChunk", "Review", "Rules", "Store", "text_hash",
]
