"""Batch jobs: a folder tree of photos and videos, resumable, on local processes or a Dask cluster.

``run_batch(IN, OUT, settings)`` anonymises every photo and video under ``IN`` into the same tree under ``OUT``,
each with its audit report beside it. A SQLite ledger in ``OUT`` makes a batch resumable after a kill at any
moment, a file that fails is recorded with one line while the batch goes on, long videos can be cut at
keyframes into chunks analysed in parallel and rendered in one pass, and the work runs in this process, a pool
of processes or on a Dask cluster. ``queue_cases`` renders approved workbench case files the same way.

The package, one module per job:

- `anonlab.batch.tree`: which files a batch reads (`scan_tree`), the output name of each (`output_name`) and the
  inputs whose outputs clash (`plan_outputs`).
- `anonlab.batch.ledger`: the SQLite ledger (`Ledger`, `read_ledger`) and the one-batch-per-folder lock.
- `anonlab.batch.chunks`: long videos cut at keyframes (`plan_chunks`, `Chunk`, `ChunkResult`).
- `anonlab.batch.processors`: what runs for one file (`Job`, the default job `Anonymizer`, `error_line`).
- `anonlab.batch.executors`: where tasks run (inline, process pool, Dask) and how progress comes home.
- `anonlab.batch.display`: the progress bars.
- `anonlab.batch.driver`: `run_batch`, the loop that feeds the executor and writes the ledger, `format_summary`.
- `anonlab.batch.cases`: `queue_cases` and its job `CaseRenderer`.

Every name below is importable from ``anonlab.batch`` as before the package was split.

Example:
    >>> from anonlab.batch import run_batch
    >>> summary = run_batch("footage/", "footage_anonymized/", workers=2)      # doctest: +SKIP
    >>> summary["done"], summary["failed"]                                    # doctest: +SKIP
    (12, 0)
"""

from __future__ import annotations

from anonlab.batch.cases import CaseRenderer, queue_cases
from anonlab.batch.chunks import Chunk, ChunkResult, keyframe_indices, plan_chunks
from anonlab.batch.driver import format_summary, run_batch
from anonlab.batch.executors import EXECUTORS, PROGRESS_TOPIC, THREADS_ENV, _Dask  # noqa: F401
from anonlab.batch.ledger import LEDGER_NAME, LOCK_NAME, STATUSES, Ledger, read_ledger  # noqa: F401
from anonlab.batch.processors import Anonymizer, Job, ProgressFn, error_line  # noqa: F401
from anonlab.batch.tree import REPORT_SUFFIX, output_name, plan_outputs, scan_tree  # noqa: F401

__all__ = [
    "Anonymizer", "CaseRenderer", "Chunk", "ChunkResult", "Job", "Ledger", "LEDGER_NAME", "error_line",
    "format_summary", "keyframe_indices", "output_name", "plan_chunks", "plan_outputs", "queue_cases", "read_ledger",
    "run_batch", "scan_tree",
]
# Also importable from here (noqa F401), not in __all__, as before the split: the constants EXECUTORS, LOCK_NAME,
# PROGRESS_TOPIC, REPORT_SUFFIX, STATUSES and THREADS_ENV, the type ProgressFn, and _Dask (tests build one).
