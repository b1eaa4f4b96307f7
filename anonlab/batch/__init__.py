"""Batch jobs: a folder tree of photos and videos, resumable, on local processes or a Dask cluster.

``run_batch(IN, OUT, settings)`` mirrors ``IN``'s tree into ``OUT``: every photo and video (by extension,
`anonlab.media.MEDIA_EXTENSIONS`) becomes one job that writes ``OUT/<same relative path>`` and, beside it, the
audit report ``<output>.report.json``; other files are ignored and counted.

**The ledger** (``OUT/anonlab-ledger.sqlite``) records, per file: relative path, input sha256 (with size and
mtime, so an unchanged file is not re-hashed on every run), settings digest, status
(``pending`` / ``running`` / ``done`` / ``failed``), the one-line error, output sha256 and size, timings. A
rerun skips a file whose row is ``done`` with the same input sha256 and settings digest and whose output (and
report) is still there; everything else is (re)done. Outputs are renamed into place only when complete
(`anonlab.media.atomic_output`), and a file is marked ``done`` only after its output and report exist, so a
batch killed at any moment resumes where it stopped, never leaves a half-written output, and never redoes a
finished file. A lock file keeps two batches from writing into one output folder at once.

**Failures are isolated**: a file that cannot be processed is marked ``failed`` with one line
(`AnonlabError`'s text; other exceptions by type name only, never a traceback or file contents) and the batch
goes on. With a process pool a worker that dies (a decoder crash) takes only its own file down: the files that
were in flight with it are rerun one at a time, and the one that kills a worker alone is marked failed.

**Executors**: ``local`` runs in this process (``workers=1``) or in a pool of ``workers`` processes;
``dask`` runs on ``dask.distributed``: a ``LocalCluster`` (``workers`` processes, one thread each, dashboard on
127.0.0.1 when bokeh is installed) or the scheduler at ``scheduler`` (an address or a ``Client``).

Privacy with Dask: chunk results (region coordinates) travel between the processes of the cluster in memory;
a LocalCluster's workers spill to a private temporary folder (0700) that is removed at the end. With a remote
scheduler the cluster's own configuration applies: keep it on-premise, with TLS between machines
(``distributed`` security settings) where the network is not trusted.

**Long videos** (``chunk_seconds``): a video longer than 1.5 chunks is cut at keyframes into chunks that are
analysed in parallel. Each chunk decodes about a second before its start (``warmup_seconds``, at least the
tracker's reach, `anonlab.track.analyse.seam_margin`) so its tracks and scene-cut detector are warm at the seam,
and as far past its stop so a track that appears just after the seam is followed back into it; those rows are
dropped, the chunks are joined with
`anonlab.track.analyse.stitch_chunks` (tracks continued across seams, temporal safety recomputed over the whole
video, so a gap across a seam is filled as in an unchunked run), and the stitched regions are rendered in **one
render pass** over the whole video. One pass is exact (no re-encoded seams, no timestamp splicing, audio copied
once) and rendering costs a fraction of analysis, so the parallel part is where the time goes.

Example:
    >>> from anonlab.batch import run_batch
    >>> summary = run_batch("footage/", "footage_anonymized/", workers=2)      # doctest: +SKIP
    >>> summary["done"], summary["failed"]                                    # doctest: +SKIP
    (12, 0)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from anonlab.batch.chunks import Chunk, ChunkResult, keyframe_indices, plan_chunks
from anonlab.batch.display import _Display
from anonlab.batch.driver import _Driver, _show_dashboard, format_summary, run_batch
from anonlab.batch.executors import EXECUTORS, PROGRESS_TOPIC, THREADS_ENV, _Dask, _Failed, _make_executor  # noqa: F401
from anonlab.batch.ledger import LEDGER_NAME, LOCK_NAME, STATUSES, Ledger, _folder_lock, read_ledger  # noqa: F401
from anonlab.batch.processors import Anonymizer, Job, ProgressFn, error_line
from anonlab.batch.tree import REPORT_SUFFIX, _remove_stale_temps, output_name, scan_tree
from anonlab.errors import AnonlabError
from anonlab.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "Anonymizer", "CaseRenderer", "Chunk", "ChunkResult", "Job", "Ledger", "LEDGER_NAME", "error_line",
    "format_summary", "keyframe_indices", "output_name", "plan_chunks", "queue_cases", "read_ledger", "run_batch",
    "scan_tree",
]


# --- approved case files ----------------------------------------------------------------------------------


class CaseRenderer:
    """The job for a case file: render it with `anonlab.case.render_case` if its review status is approved.

    ``job.src`` is the case file. The input is checked against the case's sha256 (`render_case` refuses a
    changed input), exactly the case's effective regions are masked, and the report records the edits, the
    exclusions (with their reasons) and who approved it. A case that is not approved fails with a line saying so.
    """

    def __call__(self, job: Job, progress: ProgressFn | None = None) -> dict:
        try:
            from anonlab.case import Case, render_case
        except ImportError:
            raise AnonlabError("rendering case files needs anonlab.case (the workbench), which this install lacks") \
                from None
        from anonlab.media import sha256_file

        case = Case.load(job.src)
        status = _review_status(case)
        if status != "approved":
            raise AnonlabError(f"{Path(job.src).name}: review status is {status or 'not set'}, not approved; "
                               "approve the case in the workbench first")
        info = render_case(case, job.dst, overwrite=True, progress=False)
        out_sha = sha256_file(job.dst)
        n_in = int(getattr(case.input, "n_frames", info.get("frames", 0)) or 0)
        if job.report:
            from anonlab.report.audit import make_report, write_report

            review = getattr(case, "review", None)
            rep = make_report(
                settings=case.settings, models=list(getattr(case, "models", [])),
                input_path=Path(case.locate_input()), output_path=Path(job.dst),
                input_sha256=getattr(case.input, "sha256", None) or sha256_file(case.locate_input()),
                output_sha256=out_sha, n_frames_in=n_in, n_frames_out=info["frames"],
                regions=case.effective_regions(), timings={"render_s": info.get("render_s", 0.0)},
                edits=int(getattr(case, "edit_count", 0)),
                review={"status": status, "signed_off_by": getattr(review, "reviewer", None),
                        "signed_off_at": getattr(review, "at", None)},
                exclusions=case.exclusions(), extra={"kind": getattr(case.input, "kind", None),
                                                     "case_file": Path(job.src).name},
            )
            write_report(rep, job.report)
        return {"output_sha256": out_sha, "output_size": os.path.getsize(job.dst), "frames": info["frames"],
                "kind": getattr(case.input, "kind", None), "chunks": 1,
                "timings": {"render_s": info.get("render_s", 0.0)}}


def _review_status(case) -> str | None:
    for attr in ("review_status", "status"):
        value = getattr(case, attr, None)
        if isinstance(value, str):
            return value
    review = getattr(case, "review", None)
    if isinstance(review, dict):
        return review.get("status")
    return getattr(review, "status", None)


def queue_cases(
    case_paths: Iterable[str | Path],
    output_dir: str | Path,
    *,
    workers: int = 1,
    executor: str = "local",
    scheduler=None,
    progress: bool = True,
    render_case: Callable[[Job, ProgressFn], dict] | None = None,
    reports: bool = True,
    echo: bool = True,
) -> dict:
    """Render approved case files from the workbench into ``output_dir``, through the same ledger and executors.

    Each case renders its own input (with the analyst's edits) to ``output_dir/<input name>``; the ledger key
    is the case file's name, and a case is redone when the case file changes. Cases not approved fail with a
    line saying so.

    Args:
        case_paths: case files (``*.anonlab-case.json`` or whatever `anonlab.case` saves).
        output_dir: folder for the outputs and the ledger.
        render_case: the job (default `CaseRenderer`, which uses `anonlab.case`).
        reports: write ``<output>.report.json`` (and its Markdown twin) beside each output.

    Returns:
        The same summary as `run_batch`.
    """
    from anonlab.media import sha256_file

    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    processor = render_case if render_case is not None else CaseRenderer()
    cases = [Path(p) for p in case_paths]
    with _folder_lock(output_dir), Ledger(output_dir / LEDGER_NAME) as ledger:
        display = _Display(len(cases), progress)
        ex = None
        try:
            ex = _make_executor(executor, int(workers), scheduler, display.message)
            _show_dashboard(ex.dashboard, echo)
            driver = _Driver(ex, ledger, processor, display, 1 if not ex.parallel else 2 * int(workers))

            def jobs():
                for path in cases:
                    rel = f"cases/{path.name}"
                    try:
                        sha = sha256_file(path)
                        st = path.stat()
                        target = _case_input_name(path)
                    except (OSError, AnonlabError) as exc:
                        ledger.pending(rel, "", "", 0, 0, "case")
                        driver.fail_now(rel, error_line(exc) if isinstance(exc, AnonlabError)
                                        else f"{path.name}: cannot be read ({exc.strerror})")
                        continue
                    dst = output_dir / target
                    report = dst.with_name(dst.name + REPORT_SUFFIX) if reports else None
                    row = ledger.get(rel)
                    if (row and row["status"] == "done" and row["input_sha256"] == sha and row["output"] == target
                            and dst.is_file() and dst.stat().st_size == row["output_size"]
                            and (report is None or report.is_file())):
                        driver.skip(rel)
                        continue
                    for stale in (dst, report, report.with_suffix(".md") if report else None):
                        if stale is not None:
                            _remove_stale_temps(stale)
                    ledger.pending(rel, target, sha, st.st_size, st.st_mtime_ns, "case")
                    yield Job(rel=rel, src=str(path.resolve()), dst=str(dst.resolve()),
                              report=str(report.resolve()) if report else None, input_sha256=sha,
                              settings=Settings()), False

            driver.run(jobs())
        finally:
            if ex is not None:
                ex.close()
            display.close()
        summary = {"total": len(cases), **driver.counts, "ignored": 0, "failures": driver.failures,
                   "seconds": round(time.perf_counter() - t0, 2), "output_dir": str(output_dir),
                   "ledger": str(output_dir / LEDGER_NAME), "dashboard": ex.dashboard if ex is not None else None}
    if echo:
        print(format_summary(summary))
    return summary


def _case_input_name(case_path: Path) -> str:
    """The output name of a case: its input file's name, read from the case file (JSON)."""
    try:
        data = json.loads(case_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise AnonlabError(f"{case_path.name}: not a readable case file (JSON)") from None
    for key in ("input", "input_path", "media", "path"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict):
            value = value.get("path") or value.get("name")
        if isinstance(value, str) and value:
            return Path(value).name
    raise AnonlabError(f"{case_path.name}: the case file names no input media")
