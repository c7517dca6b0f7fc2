"""The embeddings cache: encoder vectors by text key, so later rounds embed only new chunks.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write(op)`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from labelloop.store.sql import member_of


class EmbeddingTable:
    """Store methods over the embeddings table (mixed into Store, which provides _rows and write)."""

    def get_embeddings(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        condition, param = member_of("key", keys)
        return {
            r["key"]: np.frombuffer(r["vector"], dtype=np.float32)
            for r in self._rows(f"SELECT key, vector FROM embeddings WHERE {condition}", (param,))
        }

    def put_embeddings(self, vectors: dict[str, np.ndarray]) -> None:
        def op(conn: sqlite3.Connection):
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(key, dim, vector) VALUES (?, ?, ?)",
                [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )
        return self.write(op)
