"""The job ledger of an output folder, and the lock that keeps one batch per folder.

``OUT/anonlab-ledger.sqlite`` records, per file: relative path, input sha256 (with size and mtime, so an
unchanged file is not re-hashed on every run), settings digest, status (``pending`` / ``running`` / ``done`` /
``failed``), the one-line error, output sha256 and size, timings. A rerun skips a file whose row is ``done``
with the same input sha256 and settings digest and whose output (and report) is still there; everything else
is (re)done. Outputs are renamed into place only when complete (`anonlab.media.atomic_output`), and a file is
marked ``done`` only after its output and report exist, so a batch killed at any moment resumes where it
stopped, never leaves a half-written output, and never redoes a finished file.

Why SQLite, one transaction per change: the ledger is the batch's only memory between runs, and it must
survive ``kill -9`` at any point; ``synchronous=FULL`` and autocommit make every recorded step durable
before the next one starts. Only the coordinating process writes it (workers return results; the driver
records them), so there is never a second writer inside one batch, and `_folder_lock` (``flock`` on a lock
file beside the ledger) keeps a second batch out of the folder. The lock file stays after the batch, on
purpose: removing it would let a batch waiting on the old file and one creating a new file both run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from anonlab.errors import AnonlabError, OutputError
from anonlab.settings import Settings

LEDGER_NAME = "anonlab-ledger.sqlite"
LOCK_NAME = ".anonlab-batch.lock"
STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (digest TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    path            TEXT PRIMARY KEY,
    output          TEXT,
    input_sha256    TEXT,
    input_size      INTEGER,
    input_mtime_ns  INTEGER,
    settings_digest TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error           TEXT,
    output_sha256   TEXT,
    output_size     INTEGER,
    kind            TEXT,
    frames          INTEGER,
    chunks          INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    queued_at       REAL,
    started_at      REAL,
    finished_at     REAL,
    seconds         REAL,
    timings         TEXT
);
"""
_SCHEMA_VERSION = "1"


class Ledger:
    """The SQLite job ledger of one output folder. Only the coordinating process writes it.

    Each change is its own transaction (``synchronous=FULL``), so a kill leaves the last committed state.
    Rows hold file names, hashes, counts and timings, never coordinates.

    Raises:
        AnonlabError: (on opening) the file is not a readable ledger, or one of another schema version.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
            elif version[0] != _SCHEMA_VERSION:
                raise AnonlabError(f"{self.path}: ledger schema {version[0]} is not {_SCHEMA_VERSION}; "
                                   "move it away to start the batch afresh")
        except sqlite3.DatabaseError as exc:
            raise AnonlabError(f"{self.path}: not a readable batch ledger ({exc}); move it away to start "
                               "the batch afresh") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, rel: str) -> dict | None:
        row = self.db.execute("SELECT * FROM jobs WHERE path=?", (rel,)).fetchone()
        return dict(row) if row else None

    def rows(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM jobs ORDER BY path")]

    def save_settings(self, settings: Settings) -> None:
        self.db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)",
                        (settings.digest, json.dumps(settings.to_dict(), sort_keys=True)))

    def pending(self, rel: str, output: str, sha: str, size: int, mtime_ns: int, digest: str) -> None:
        now = time.time()
        self.db.execute(
            """INSERT INTO jobs (path, output, input_sha256, input_size, input_mtime_ns, settings_digest, status,
                                 queued_at)
               VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)
               ON CONFLICT(path) DO UPDATE SET output=excluded.output, input_sha256=excluded.input_sha256,
                   input_size=excluded.input_size, input_mtime_ns=excluded.input_mtime_ns,
                   settings_digest=excluded.settings_digest, status='pending', error=NULL, output_sha256=NULL,
                   output_size=NULL, queued_at=excluded.queued_at, started_at=NULL, finished_at=NULL,
                   seconds=NULL""",
            (rel, output, sha, size, mtime_ns, digest, now),
        )

    def running(self, rel: str) -> None:
        self.db.execute("UPDATE jobs SET status='running', started_at=?, attempts=attempts+1 WHERE path=?",
                        (time.time(), rel))

    def done(self, rel: str, result: dict) -> None:
        now = time.time()
        self.db.execute(
            """UPDATE jobs SET status='done', error=NULL, output_sha256=?, output_size=?, kind=?, frames=?, chunks=?,
                   input_sha256=coalesce(?, input_sha256), finished_at=?,
                   seconds=round(? - coalesce(started_at, ?), 3), timings=? WHERE path=?""",
            (result.get("output_sha256"), result.get("output_size"), result.get("kind"), result.get("frames"),
             result.get("chunks"), result.get("input_sha256"), now, now, now,
             json.dumps(result.get("timings") or {}), rel),
        )

    def failed(self, rel: str, error: str) -> None:
        now = time.time()
        self.db.execute(
            """UPDATE jobs SET status='failed', error=?, finished_at=?, seconds=round(? - coalesce(started_at, ?), 3)
               WHERE path=?""",
            (error, now, now, now, rel),
        )


def read_ledger(output_dir: str | Path) -> list[dict]:
    """Every row of the ledger in ``output_dir`` (one dict per file), for notebooks and tests.

    Raises:
        AnonlabError: ``output_dir`` holds no ledger, or one that is unreadable or of another schema version.
    """
    path = Path(output_dir) / LEDGER_NAME
    if not path.exists():
        raise AnonlabError(f"{output_dir}: no batch ledger ({LEDGER_NAME}) in this folder")
    with Ledger(path) as ledger:
        return ledger.rows()


@contextlib.contextmanager
def _folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold ``output_dir``'s batch lock (``flock``, released when the process dies) for the ``with`` block.

    Raises:
        OutputError: the lock file cannot be created in ``output_dir``.
        AnonlabError: another batch holds the lock.
    """
    import fcntl  # POSIX only: imported here so that the package still imports where it is missing

    path = output_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot write into the output folder ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AnonlabError(f"{output_dir}: another anonlab batch is writing into this folder; wait for it to "
                               "finish or choose another output folder") from None
        yield
    finally:
        os.close(fd)
