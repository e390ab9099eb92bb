"""Numbered, forward-only schema migrations of the state store."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, events, attempts, materializations
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        command TEXT NOT NULL,
        selection TEXT NOT NULL DEFAULT '',
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        pid INTEGER
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        asset TEXT,
        partition TEXT,
        level TEXT NOT NULL DEFAULT 'info',
        message TEXT NOT NULL DEFAULT '',
        data TEXT
    );
    CREATE INDEX events_run ON events (run_id, id);
    CREATE TABLE attempts (
        run_id TEXT NOT NULL,
        asset TEXT NOT NULL,
        partition TEXT,
        status TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX attempts_asset ON attempts (asset, finished_at);
    CREATE TABLE materializations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        asset TEXT NOT NULL,
        partition TEXT,
        run_id TEXT NOT NULL,
        materialized_at TEXT NOT NULL,
        rows INTEGER,
        duration_s REAL,
        code_version TEXT,
        metadata TEXT
    );
    CREATE INDEX materializations_asset ON materializations (asset, materialized_at);
    """,
    # 2 (issue 6): columns and types of each materialization; check results per asset
    """
    ALTER TABLE materializations ADD COLUMN columns TEXT;
    CREATE TABLE check_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        check_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        asset TEXT NOT NULL,
        partition TEXT,
        status TEXT NOT NULL,
        blocking INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        metadata TEXT,
        checked_at TEXT NOT NULL
    );
    CREATE INDEX check_results_asset ON check_results (asset, check_id, id);
    CREATE INDEX check_results_run ON check_results (run_id, id)
    """,
    # 3 (issue 4): the named parts of each code version ("what changed")
    """
    CREATE TABLE code_versions (
        asset TEXT NOT NULL,
        code_version TEXT NOT NULL,
        parts TEXT NOT NULL,
        PRIMARY KEY (asset, code_version)
    );
    """,
    # 4 (issue 3): the partition ledger: compacted ranges of partitions per asset, each the
    # latest record of those partitions (done or failed), written only after the data commits
    """
    CREATE TABLE partition_ledger (
        asset TEXT NOT NULL,
        prefix TEXT NOT NULL DEFAULT '',
        lo TEXT NOT NULL,
        hi TEXT NOT NULL,
        status TEXT NOT NULL,
        run_id TEXT NOT NULL,
        at TEXT NOT NULL,
        code_version TEXT
    );
    CREATE INDEX partition_ledger_asset ON partition_ledger (asset);
    """,
    # 5 (issue 13): automation: tick history, the run queue, run keys, cursors, pauses and the
    # daemon's lease (portable SQL: TEXT/INTEGER/REAL, no AUTOINCREMENT)
    """
    CREATE TABLE automation_ticks (
        tick_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        assets TEXT NOT NULL DEFAULT '[]',
        reasons TEXT NOT NULL DEFAULT '[]',
        request_id TEXT,
        run_key TEXT,
        error TEXT
    );
    CREATE INDEX automation_ticks_source ON automation_ticks (source, at);
    CREATE TABLE automation_requests (
        request_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        reasons TEXT NOT NULL DEFAULT '[]',
        token TEXT,
        pid INTEGER,
        run_id TEXT,
        launched_at REAL,
        finished_at TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        error TEXT
    );
    CREATE INDEX automation_requests_status ON automation_requests (status, created_at);
    CREATE TABLE automation_run_keys (
        source TEXT NOT NULL,
        run_key TEXT NOT NULL,
        request_id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (source, run_key)
    );
    CREATE TABLE automation_cursors (
        source TEXT PRIMARY KEY,
        cursor TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE automation_pauses (
        source TEXT PRIMARY KEY,
        paused_at TEXT NOT NULL
    );
    CREATE TABLE automation_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        acquired_at TEXT NOT NULL,
        heartbeat REAL NOT NULL
    )
    """,
)
