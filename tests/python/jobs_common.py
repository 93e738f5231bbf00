"""Shared by the Celery and RQ job modules: the database they write to.

Configuration comes from the environment, so that the test process and the worker
processes it starts import the same modules with the same settings:
  AJ_JOBS_DB      database URL (sqlite:PATH or postgresql://...)
  AJ_JOBS_BROKER  redis://... URL
  AJ_JOBS_QUEUE   queue name
  AJ_JOBS_DIR     a scratch folder (marker files of the kill test)
"""
from __future__ import annotations

import os
import time
from typing import Any, List, Sequence, Tuple

def settings() -> Tuple[str, str, str]:
    """(database URL, broker URL, queue) from the environment, read at call time."""
    return (os.environ.get("AJ_JOBS_DB", ""), os.environ.get("AJ_JOBS_BROKER", ""),
            os.environ.get("AJ_JOBS_QUEUE", "acidic-test"))


def connect(db: str) -> Any:
    if db.startswith("sqlite:"):
        import sqlite3
        conn = sqlite3.connect(db[len("sqlite:"):], isolation_level=None, timeout=30)
        return conn
    import psycopg
    return psycopg.connect(db, autocommit=True)


def sql(db: str, text: str, params: Sequence[Any] = ()) -> List[tuple]:
    """Autocommitted SQL with `?` placeholders, outside any workflow."""
    conn = connect(db)
    try:
        if not db.startswith("sqlite:"):
            text = text.replace("?", "%s")
            cur = conn.execute(text, params or None)
            return cur.fetchall() if cur.description else []
        return conn.execute(text, params).fetchall()
    finally:
        conn.close()


def create_tables(db: str) -> None:
    sql(db, "CREATE TABLE performed (label TEXT, pid INTEGER)")
    sql(db, "CREATE TABLE step_rows (label TEXT, step TEXT)")


def performed(label: str) -> None:
    """Record that a job ran (in the worker: AJ_JOBS_DB)."""
    sql(settings()[0], "INSERT INTO performed (label, pid) VALUES (?, ?)", (label, os.getpid()))


def block_once(label: str) -> None:
    """The first time for `label`: leave a marker and block until killed."""
    marker = os.path.join(os.environ.get("AJ_JOBS_DIR", "/tmp"), f"{label}.in_step")
    if os.path.exists(marker):
        return
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(marker + ".tmp", marker)  # the pid is there once the marker exists
    while True:
        time.sleep(0.2)
