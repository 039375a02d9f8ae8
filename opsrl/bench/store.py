"""The results store: one SQLite file, one row per finished run.

A row is written in a single transaction once its run has finished, so an interrupted run or a crash
leaves every earlier row intact and no partial row behind. The schema carries a version
(``PRAGMA user_version``); a store written by a newer opsrl is refused rather than misread, and an
older one is migrated in one transaction the first time this opsrl writes to it (reading never
changes a store).

Schema 2 adds the cell of a run: ``cell_key`` (problem, solver, seed and config hash, see
:mod:`opsrl.bench.cells`), ``config_hash`` and ``sweep``. :meth:`ResultsStore.record_cell` writes a
cell at most once, whichever process asks, so a resumed or retried sweep never duplicates a row.
Runs recorded by ``opsrl run`` carry a cell key too but are appended unconditionally.

Another process holding a write lock makes every call here wait up to ``timeout`` seconds and then
fail with one :class:`StoreError` that says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from ..faults import point as fault_point

SCHEMA_VERSION = 2
DEFAULT_PATH = "opsrl-results.sqlite"


class StoreError(RuntimeError):
    pass


_deferring: list[list[Any]] = []  # the signals held by the active deferral (outermost first)


@contextlib.contextmanager
def deferred_interrupt(reraise: bool = True):
    """Hold Ctrl-C (SIGINT) for the duration of the block, so that a write is never cut in half.

    Yields a list that receives one entry per Ctrl-C held. On leaving the block the handler is restored and,
    with ``reraise``, a held Ctrl-C is raised as :class:`KeyboardInterrupt` (after the write, whose result
    the caller has seen). Nested blocks share the outermost one's list. Off the main thread (where
    Python delivers no signals) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    if _deferring:
        yield _deferring[-1]
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda sig, frame: caught.append(sig))
    _deferring.append(caught)
    try:
        yield caught
    finally:
        _deferring.pop()
        signal.signal(signal.SIGINT, previous)
    if caught and reraise:
        raise KeyboardInterrupt


def _damaged(path: Path, e: Exception | str) -> StoreError:
    e = " ".join(str(e).replace("*** in database main ***", "").split())
    return StoreError(
        f"{path}: the results store is damaged ({e}); nothing was read or written. Restore it "
        "from a backup, or move it away (a new store is created in its place) and keep the "
        "damaged copy for `sqlite3 <file> .recover`"
    )


def default_path() -> Path:
    return Path(os.environ.get("OPSRL_STORE", DEFAULT_PATH))


_COLUMNS = ("created", "problem", "solver", "seed", "test_cost", "gap_pct", "train_seconds", "eval_seconds")
_CELL_COLUMNS = ("config_hash", "cell_key", "sweep")

_CREATE_V2 = (
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL, problem TEXT NOT NULL, solver TEXT NOT NULL, seed INTEGER NOT NULL,
        test_cost REAL, gap_pct REAL, train_seconds REAL, eval_seconds REAL,
        record TEXT NOT NULL,
        config_hash TEXT, cell_key TEXT, sweep TEXT)""",
    "CREATE INDEX runs_cell ON runs(problem, solver, seed)",
    "CREATE INDEX runs_key ON runs(cell_key)",
)

# schema n -> statements that bring a store from n to n + 1
_MIGRATIONS = {
    1: (
        "ALTER TABLE runs ADD COLUMN config_hash TEXT",
        "ALTER TABLE runs ADD COLUMN cell_key TEXT",
        "ALTER TABLE runs ADD COLUMN sweep TEXT",
        "CREATE INDEX runs_key ON runs(cell_key)",
    ),
}


class ResultsStore:
    """The SQLite results store at ``path`` (default ``$OPSRL_STORE`` or ``./opsrl-results.sqlite``).

    ``timeout`` is how long to wait for another process's lock before giving up with a
    :class:`StoreError`.
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 10.0):
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout

    # --- connections ---------------------------------------------------------------------------
    def _locked(self, e: Exception) -> StoreError:
        return StoreError(
            f"{self.path}: the store is locked by another process (waited {self.timeout:g} s; "
            f"{e}); try again when it has finished, or use another --store"
        )

    def _open(self) -> sqlite3.Connection:
        # autocommit: every transaction below is explicit (BEGIN IMMEDIATE ... COMMIT)
        return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)

    def _version(self, con: sqlite3.Connection) -> int:
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise self._locked(e) from None
            raise StoreError(f"{self.path}: not an opsrl results store ({e})") from None
        except sqlite3.DatabaseError as e:
            if "malformed" in str(e):
                raise _damaged(self.path, e) from None
            raise StoreError(f"{self.path}: not an opsrl results store ({e})") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer opsrl (schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade opsrl or use another --store"
            )
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise self._locked(e) from None
            raise _damaged(self.path, e) from None
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None
        if not getattr(self, "_checked", False) and tables:
            try:  # every page, once per store object: damage anywhere gets one clear message, not a wrong answer
                ok = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    raise self._locked(e) from None
                raise _damaged(self.path, e) from None
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from None
            if ok != "ok":
                raise _damaged(self.path, ok)
            self._checked = True
        if version > 0 and "runs" not in tables:
            raise StoreError(f"{self.path}: not an opsrl results store (schema {version} but no table of runs)")
        if version == 0:
            if tables:
                raise StoreError(f"{self.path}: not an opsrl results store (it holds other tables)")
        return version

    def _connect(self) -> sqlite3.Connection:
        """A connection for writing: creates or migrates the store in one transaction if needed."""
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = self._open()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open ({e})") from None
        try:
            if self._version(con) < SCHEMA_VERSION:
                self._upgrade(con)
        except BaseException:
            con.close()
            raise
        return con

    def _upgrade(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise self._locked(e) from None
        try:
            version = self._version(con)  # another process may have upgraded meanwhile
            if version == 0:
                for stmt in _CREATE_V2:
                    con.execute(stmt)
            else:
                for v in range(version, SCHEMA_VERSION):
                    for stmt in _MIGRATIONS[v]:
                        con.execute(stmt)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    def _read(self) -> sqlite3.Connection | None:
        """A connection for reading, or None if there is no store yet; never changes the file."""
        if not self.path.exists():
            return None
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a results store; give a file with --store")
        self._recover()
        try:
            con = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=self.timeout)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open ({e})") from None
        try:
            if self._version(con) == 0:
                con.close()
                return None
        except BaseException:
            con.close()
            raise
        return con

    def _recover(self) -> None:
        """Roll back the write a killed process left half done (a hot ``-journal`` beside the store).

        SQLite does this on the next connection that may write; a read-only connection cannot, and
        would call a healthy store unreadable. Rolling back restores the store as it was before the
        unfinished transaction: every committed row stays, the unfinished one was never there.
        """
        journal = self.path.with_name(self.path.name + "-journal")
        if not journal.exists() or journal.stat().st_size == 0:
            return
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise StoreError(
                f"{self.path}: an interrupted write left {journal.name} beside it, and this user "
                "may not write there to roll it back; run opsrl once with write access"
            )
        try:
            with closing(sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)) as con:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # rolls the journal back
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise self._locked(e) from None
            raise StoreError(f"{self.path}: cannot recover from the interrupted write ({e})") from None
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None

    # --- writing -------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Create or migrate the store and take (then release) its write lock, or fail clearly.

        A sweep calls this before running anything, so that a locked, foreign or newer store stops
        it before hours of work rather than after.
        """
        with closing(self._connect()) as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            except sqlite3.OperationalError as e:
                raise self._locked(e) from None

    def _insert(self, con: sqlite3.Connection, record: dict[str, Any]) -> int:
        payload = json.dumps(record, default=_jsonable, allow_nan=True)
        cell = record.get("cell") or {}
        values = [record.get(c) for c in _COLUMNS] + [
            cell.get("config_hash"),
            cell.get("key"),
            record.get("sweep"),
            payload,
        ]
        cur = con.execute(
            f"INSERT INTO runs ({', '.join(_COLUMNS + _CELL_COLUMNS)}, record) "
            f"VALUES ({', '.join('?' * (len(_COLUMNS) + len(_CELL_COLUMNS) + 1))})",
            values,
        )
        fault_point("insert")
        return int(cur.lastrowid)

    def _write(self, fn):
        with closing(self._connect()) as con:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise self._locked(e) from None
            try:
                out = fn(con)
                con.execute("COMMIT")
                return out
            except sqlite3.OperationalError as e:
                _rollback(con)
                if "locked" in str(e) or "busy" in str(e):
                    raise self._locked(e) from None
                raise StoreError(f"{self.path}: could not write ({e})") from None
            except sqlite3.DatabaseError as e:
                _rollback(con)
                raise _damaged(self.path, e) from None
            except BaseException:
                _rollback(con)
                raise

    def append(self, record: dict[str, Any]) -> int:
        """Write one finished run; returns its id."""
        return self._write(lambda con: self._insert(con, record))

    def record(self, record: dict[str, Any], *, once: bool = False) -> tuple[int, bool, bool]:
        """The one way a finished run is committed: ``(row id, written?, interrupted?)``.

        Ctrl-C is held during the transaction: the row is either committed whole (and the caller is told,
        through ``interrupted``, that the user asked to stop meanwhile) or not at all. With ``once`` the
        row is written only if its cell is not recorded yet (:meth:`record_cell`).
        """
        with deferred_interrupt(reraise=False) as caught:
            if once:
                row, written = self.record_cell(record)
            else:
                row, written = self.append(record), True
        return row, written, bool(caught)

    def record_cell(self, record: dict[str, Any]) -> tuple[int, bool]:
        """Write a sweep cell's run unless its cell is already recorded: ``(row id, written?)``.

        The check and the insert are one transaction under the write lock, so two processes (or a
        retried task) can never record the same cell twice.
        """
        key = (record.get("cell") or {}).get("key")
        if not key:
            raise ValueError("record_cell needs a record with a cell key (record['cell']['key'])")

        def fn(con):
            row = con.execute("SELECT id FROM runs WHERE cell_key = ? ORDER BY id LIMIT 1", (key,)).fetchone()
            if row is not None:
                return int(row[0]), False
            return self._insert(con, record), True

        return self._write(fn)

    # --- reading -------------------------------------------------------------------------------
    def finished(self, keys: Iterable[str] | None = None) -> set[str]:
        """The cell keys already recorded (of ``keys``, or all)."""
        con = self._read()
        if con is None:
            return set()
        with closing(con), self._reading():
            if self._has_cell_column(con):
                found = {r[0] for r in con.execute("SELECT DISTINCT cell_key FROM runs WHERE cell_key IS NOT NULL")}
            else:  # schema 1: no cells recorded yet
                found = set()
        return found if keys is None else found & set(keys)

    @staticmethod
    def _has_cell_column(con: sqlite3.Connection) -> bool:
        return any(r[1] == "cell_key" for r in con.execute("PRAGMA table_info(runs)"))

    def records(self, **where: Any) -> Iterator[dict[str, Any]]:
        """Every row's record (with its ``id``), oldest first; ``where`` filters on columns."""
        con = self._read()
        if con is None:
            return iter(())
        bad = sorted(set(where) - set(_COLUMNS + _CELL_COLUMNS))
        if bad:
            con.close()
            raise ValueError(f"cannot filter runs on {', '.join(bad)}; columns: {', '.join(_COLUMNS + _CELL_COLUMNS)}")
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT id, record FROM runs" + (f" WHERE {clause}" if clause else "") + " ORDER BY id"
        with closing(con), self._reading():
            rows = con.execute(sql, list(where.values())).fetchall()
        try:
            return iter([{"id": i, **json.loads(r)} for i, r in rows])
        except (TypeError, ValueError) as e:
            raise _damaged(self.path, e) from None

    def count(self) -> int:
        con = self._read()
        if con is None:
            return 0
        with closing(con), self._reading():
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    @contextlib.contextmanager
    def _reading(self):
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise self._locked(e) from None
            raise StoreError(f"{self.path}: could not read ({e})") from None
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back the open transaction, if there still is one (a COMMIT that went through leaves none)."""
    if con.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)
