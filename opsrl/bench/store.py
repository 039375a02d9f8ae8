"""The results store: one SQLite file, one row per finished run.

A row is written in a single transaction once its run has finished, so an interrupted run or a crash
leaves every earlier row intact and no partial row behind. The schema carries a version; a store
written by a newer opsrl is refused rather than misread.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
DEFAULT_PATH = "opsrl-results.sqlite"


class StoreError(RuntimeError):
    pass


def default_path() -> Path:
    return Path(os.environ.get("OPSRL_STORE", DEFAULT_PATH))


_COLUMNS = ("created", "problem", "solver", "seed", "test_cost", "gap_pct", "train_seconds", "eval_seconds")


class ResultsStore:
    def __init__(self, path: str | Path | None = None, timeout: float = 10.0):
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout)
            version = con.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not an opsrl results store ({e})") from None
        if version > SCHEMA_VERSION:
            con.close()
            raise StoreError(f"{self.path}: written by a newer opsrl (schema {version}, this one reads "
                             f"up to {SCHEMA_VERSION}); upgrade opsrl or use another --store")
        if version == 0:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables:
                con.close()
                raise StoreError(f"{self.path}: not an opsrl results store (it holds other tables)")
            with con:
                con.execute("""CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    created TEXT NOT NULL, problem TEXT NOT NULL, solver TEXT NOT NULL, seed INTEGER NOT NULL,
                    test_cost REAL, gap_pct REAL, train_seconds REAL, eval_seconds REAL,
                    record TEXT NOT NULL)""")
                con.execute("CREATE INDEX runs_cell ON runs(problem, solver, seed)")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return con

    def append(self, record: dict[str, Any]) -> int:
        """Write one finished run; returns its id."""
        payload = json.dumps(record, default=_jsonable, allow_nan=True)
        with closing(self._connect()) as con:
            try:
                with con:
                    cur = con.execute(
                        f"INSERT INTO runs ({', '.join(_COLUMNS)}, record) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
                        [record.get(c) for c in _COLUMNS] + [payload])
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.path}: could not write ({e})") from None
            return int(cur.lastrowid)

    def records(self, **where: Any) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return iter(())
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT id, record FROM runs" + (f" WHERE {clause}" if clause else "") + " ORDER BY id"
        with closing(self._connect()) as con:
            rows = con.execute(sql, list(where.values())).fetchall()
        return iter([{"id": i, **json.loads(r)} for i, r in rows])


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)
