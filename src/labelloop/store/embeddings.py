"""The embeddings cache: encoder vectors by text key, so later rounds embed only new chunks.

A part of `Store` (labelloop.store.db), kept in its own module; it writes only through `Store.write()`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class EmbeddingTable:
    """Store methods over the embeddings table (mixed into Store, which provides _rows and write)."""

    def get_embeddings(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            for r in self._rows(
                f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(part))})", part
            ):
                out[r["key"]] = np.frombuffer(r["vector"], dtype=np.float32)
        return out

    def put_embeddings(self, vectors: dict[str, np.ndarray]) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(key, dim, vector) VALUES (?, ?, ?)",
                [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )
