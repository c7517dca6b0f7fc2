"""Numbered schema migrations. Each runs in its own transaction; never edit a shipped one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            size INTEGER,
            n_chunks INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            message TEXT,
            ingested_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            source TEXT NOT NULL,
            position INTEGER NOT NULL,
            n_tokens INTEGER,
            count INTEGER NOT NULL DEFAULT 1,
            metadata TEXT,
            split TEXT CHECK (split IN ('test', 'train')),
            split_iteration INTEGER,
            created_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE INDEX chunks_split ON chunks(split);
        CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            version INTEGER NOT NULL UNIQUE,
            text TEXT NOT NULL,
            author TEXT NOT NULL,
            model TEXT,
            call_id INTEGER,
            created_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            purpose TEXT,
            backend TEXT NOT NULL,
            model TEXT,
            request TEXT NOT NULL,
            response TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
            error TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost REAL,
            latency_s REAL,
            attempts INTEGER NOT NULL DEFAULT 1,
            faults TEXT,
            created_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE INDEX llm_calls_key ON llm_calls(key, status);
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            chunk_id INTEGER NOT NULL REFERENCES chunks(id),
            source TEXT NOT NULL CHECK (source IN ('llm-small', 'llm-large', 'human', 'student')),
            label TEXT,
            confidence REAL,
            status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'unlabeled', 'discarded')),
            iteration INTEGER,
            rules_version INTEGER,
            call_id INTEGER,
            raw TEXT,
            reason TEXT,
            probs TEXT,
            updated_at TEXT NOT NULL DEFAULT (datetime('now')),
            UNIQUE (chunk_id, source)
        );
        CREATE INDEX labels_source ON labels(source, label);
        CREATE TABLE iterations (
            n INTEGER PRIMARY KEY,
            train_size INTEGER NOT NULL,
            test_size INTEGER NOT NULL,
            accuracy REAL,
            accuracy_low REAL,
            accuracy_high REAL,
            macro_f1 REAL,
            gold_accuracy REAL,
            gold_size INTEGER,
            metrics TEXT,
            seconds REAL,
            llm_calls INTEGER,
            model_path TEXT,
            status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
            stop_reason TEXT,
            started_at TEXT NOT NULL DEFAULT (datetime('now')),
            finished_at TEXT
        );
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            chunk_id INTEGER NOT NULL REFERENCES chunks(id),
            action TEXT NOT NULL CHECK (action IN ('accept', 'correct', 'discard', 'undo')),
            label TEXT,
            previous TEXT,
            reviewer TEXT,
            created_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE TABLE embeddings (
            key TEXT PRIMARY KEY,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE TABLE ingest_problems (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
            message TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        """,
    ),
    (
        2,
        "runs: one row per `labelloop run` invocation, so resumes are visible",
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
            message TEXT,
            started_at TEXT NOT NULL DEFAULT (datetime('now')),
            finished_at TEXT
        );
        CREATE INDEX labels_chunk ON labels(chunk_id);
        """,
    ),
    (
        3,
        "chunk_files: which file holds each chunk how often, so a changed file's stale chunks can go",
        """
        CREATE TABLE chunk_files (
            file TEXT NOT NULL,
            chunk_id INTEGER NOT NULL REFERENCES chunks(id),
            n INTEGER NOT NULL,
            pass TEXT NOT NULL,
            PRIMARY KEY (file, chunk_id)
        );
        CREATE INDEX chunk_files_chunk ON chunk_files(chunk_id);
        INSERT OR IGNORE INTO chunk_files(file, chunk_id, n, pass)
            SELECT d.source, c.id, 1, d.sha256 FROM chunks c JOIN documents d
            ON c.source = d.source OR substr(c.source, 1, length(d.source) + 1) = d.source || '#'
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]


def current_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, target: int | None = None) -> list[int]:
    """Apply pending migrations up to target (default: latest); return the versions applied."""
    target = LATEST if target is None else target
    applied = []
    for version, _name, sql in MIGRATIONS:
        if version <= current_version(conn) or version > target:
            continue
        # executescript would COMMIT implicitly; run statement by statement in one transaction.
        conn.execute("BEGIN IMMEDIATE")
        if current_version(conn) >= version:  # another process migrated while we waited for the lock
            conn.execute("COMMIT")
            continue
        try:
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _split(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
