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

import contextlib
import json
import logging
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from anonlab.batch.chunks import Chunk, ChunkResult, keyframe_indices, plan_chunks
from anonlab.batch.display import _Display
from anonlab.batch.executors import EXECUTORS, PROGRESS_TOPIC, THREADS_ENV, _Dask, _Failed, _make_executor  # noqa: F401
from anonlab.batch.ledger import LEDGER_NAME, LOCK_NAME, STATUSES, Ledger, _folder_lock, read_ledger  # noqa: F401
from anonlab.batch.processors import Anonymizer, Job, ProgressFn, error_line
from anonlab.batch.tree import REPORT_SUFFIX, _remove_stale_temps, output_name, scan_tree
from anonlab.errors import AnonlabError, OutputError
from anonlab.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "Anonymizer", "CaseRenderer", "Chunk", "ChunkResult", "Job", "Ledger", "LEDGER_NAME", "error_line",
    "format_summary", "keyframe_indices", "output_name", "plan_chunks", "queue_cases", "read_ledger", "run_batch",
    "scan_tree",
]


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class _FileState:
    job: Job
    chunked: bool
    stage: str = "file"
    chunks: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    futures: set = field(default_factory=set)
    crashes: int = 0


class _Driver:
    """Feeds jobs to an executor, keeps a bounded number of files in flight, records results in the ledger."""

    def __init__(self, executor, ledger: Ledger, processor, display: _Display, max_in_flight: int):
        self.ex = executor
        self.ledger = ledger
        self.processor = processor
        self.display = display
        self.max_in_flight = max(1, max_in_flight)
        self.futures: dict[Any, tuple[_FileState, str, Any]] = {}
        self.files: dict[str, _FileState] = {}
        self.retry: list[_FileState] = []  # files whose worker died; rerun one at a time
        self.isolated: _FileState | None = None
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.failures: list[dict] = []

    # --- bookkeeping ---
    def skip(self, rel: str) -> None:
        self.counts["skipped"] += 1
        self.display.finished(rel, "skipped", self.counts)

    def fail_now(self, rel: str, error: str) -> None:
        self.ledger.failed(rel, error)
        self.counts["failed"] += 1
        self.failures.append({"file": rel, "error": error})
        self.display.finished(rel, "failed", self.counts)

    def _submit(self, fs: _FileState, stage: str, arg=None) -> None:
        fut = self.ex.submit(self.processor, stage, fs.job, arg)
        fs.futures.add(fut)
        self.futures[fut] = (fs, stage, arg)

    def start(self, fs: _FileState) -> None:
        self.files[fs.job.rel] = fs
        fs.results, fs.futures, fs.stage = {}, set(), "file"
        self.ledger.running(fs.job.rel)
        self.display.started(fs.job.rel)
        if fs.chunked:
            fs.stage = "plan"
            self._submit(fs, "plan")
        else:
            self._submit(fs, "file")

    def _end(self, fs: _FileState, result: dict | None, error: str | None) -> None:
        rel = fs.job.rel
        for fut in fs.futures:
            self.futures.pop(fut, None)
            with contextlib.suppress(Exception):
                fut.cancel()
        fs.futures.clear()
        self.files.pop(rel, None)
        if self.isolated is fs:
            self.isolated = None
        if error is None:
            result = dict(result) if isinstance(result, dict) else {}
            if not result.get("output_sha256") and Path(fs.job.dst).exists():
                from anonlab.media import sha256_file

                result["output_sha256"] = sha256_file(fs.job.dst)
                result["output_size"] = os.path.getsize(fs.job.dst)
            missing = [p for p in (fs.job.dst, fs.job.report) if p and not Path(p).exists()]
            if missing:
                error = f"{Path(missing[0]).name}: the job ended without writing it"
            else:
                self.ledger.done(rel, result)
                self.counts["done"] += 1
                self.display.finished(rel, "done", self.counts)
                return
        self.fail_now(rel, error)

    def handle(self, fut) -> None:
        entry = self.futures.pop(fut, None)
        if entry is None:
            return
        fs, stage, arg = entry
        fs.futures.discard(fut)
        try:
            value = fut.result()
        except BrokenProcessPool:
            self._pool_broke()
            return
        except Exception as exc:
            self._end(fs, None, error_line(exc))
            return
        if isinstance(value, _Failed):
            self._end(fs, None, value.error)
            return
        if stage == "plan":
            fs.chunks = list(value)
            if len(fs.chunks) <= 1:
                fs.stage = "file"
                self._submit(fs, "file")
            else:
                fs.stage = "chunk"
                totals = {(f"chunk{c.index}", "analyse"): c.end - c.warm for c in fs.chunks}
                totals[("finish", "render")] = fs.chunks[-1].stop
                self.display.expect(fs.job.rel, totals)
                for chunk in fs.chunks:
                    self._submit(fs, "chunk", chunk)
        elif stage == "chunk":
            fs.results[arg.index] = value
            if len(fs.results) == len(fs.chunks):
                fs.stage = "finish"
                results = [fs.results[i] for i in sorted(fs.results)]
                fs.results = {}
                self._submit(fs, "finish", results)
        else:
            self._end(fs, value, None)

    def _pool_broke(self) -> None:
        """A pool worker died: every file in flight is rerun, one at a time, in a fresh pool."""
        victims = list(self.files.values())
        self.futures.clear()
        self.files.clear()
        self.ex.restart()
        for fs in victims:
            fs.futures.clear()
            fs.crashes += 1
            if self.isolated is fs or (fs.crashes >= 2 and len(victims) == 1):
                self.fail_now(fs.job.rel, error_line(BrokenProcessPool()))
            else:
                self.retry.append(fs)
        self.isolated = None

    # --- main loop ---
    def run(self, jobs: Iterator[tuple[Job, bool]]) -> None:
        jobs_left = True
        while True:
            while self.isolated is None and (self.retry or jobs_left) and len(self.files) < self.max_in_flight:
                if self.retry:
                    if self.files:  # a suspect runs alone
                        break
                    self.isolated = self.retry.pop(0)
                    self.start(self.isolated)
                    break
                item = next(jobs, None)
                if item is None:
                    jobs_left = False
                    break
                job, chunked = item
                self.start(_FileState(job, chunked))
            if not self.futures:
                if not self.retry and not jobs_left:
                    break
                continue
            done = self.ex.wait(list(self.futures), 0.2)
            for msg in self.ex.messages():
                self.display.message(msg)
            for fut in done:
                self.handle(fut)


# --- public entry points ------------------------------------------------------------------------------


def _check_folders(input_dir: Path, output_dir: Path) -> None:
    if not input_dir.exists():
        raise AnonlabError(f"{input_dir}: no such folder")
    if not input_dir.is_dir():
        raise AnonlabError(f"{input_dir}: not a folder; use 'anonlab anonymize' for a single file")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if src == dst:
        raise OutputError(f"{output_dir}: the output folder is the input folder; choose another output folder")
    if src.is_relative_to(dst):
        raise OutputError(f"{input_dir}: the input folder lies inside the output folder {output_dir}; "
                          "choose an output folder outside it")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: exists and is not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot create the output folder ({exc.strerror})") from None


def _show_dashboard(link: str | None, echo: bool) -> None:
    if not link:
        return
    if echo:
        print(f"anonlab: Dask dashboard at {link}", file=sys.stderr)
    with contextlib.suppress(Exception):
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            from IPython.display import HTML, display

            display(HTML(f'<a href="{link}" target="_blank">Dask dashboard</a>'))


def run_batch(
    input_dir: str | Path,
    output_dir: str | Path,
    settings: Settings | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    scheduler=None,
    chunk_seconds: float | None = None,
    progress: bool = True,
    process_file: Callable[[Job, ProgressFn], dict] | None = None,
    reports: bool = True,
    echo: bool = True,
    rehash: bool = False,
) -> dict:
    """Anonymise every photo and video under ``input_dir`` into the same tree under ``output_dir``.

    Args:
        input_dir: folder to read (never written).
        output_dir: folder to write (created); holds the outputs, their reports and the ledger.
        settings: one `Settings` for every file (default `Settings()`).
        workers: processes (``local``) or Dask workers of the LocalCluster (``dask``).
        executor: ``"local"`` or ``"dask"``.
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``; default a
            LocalCluster on 127.0.0.1.
        chunk_seconds: split videos longer than 1.5x this into chunks analysed in parallel (None: never).
        progress: show tqdm bars (overall and per file) on stderr, or widgets in a notebook.
        process_file: the job run for each file, ``process_file(job, progress) -> dict`` (default
            `Anonymizer`). An object with ``plan``/``analyse``/``finish`` methods can also run in chunks.
        reports: write ``<output>.report.json`` (and its Markdown twin) beside each output.
        echo: print the Dask dashboard link and the closing summary.
        rehash: re-hash every input even when its size and mtime match the ledger.

    Returns:
        ``{"total", "done", "skipped", "failed", "ignored", "failures": [{"file", "error"}], "seconds",
        "output_dir", "ledger", "dashboard"}``; ``failed`` is a count, ``skipped`` counts files already done.

    Raises:
        AnonlabError: for unusable folders or settings, or another batch writing into ``output_dir``; a bad
            *file* never raises, it is recorded as failed.
    """
    from anonlab.media import sha256_file

    t0 = time.perf_counter()
    settings = settings or Settings()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    workers = int(workers)
    if workers < 1:
        raise AnonlabError(f"--workers must be 1 or more; got {workers}")
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise AnonlabError(f"--chunk-seconds must be more than 0; got {chunk_seconds}")
    _check_folders(input_dir, output_dir)
    processor = process_file if process_file is not None else Anonymizer()
    can_chunk = all(hasattr(processor, m) for m in ("plan", "analyse", "finish"))
    digest = settings.digest
    with _folder_lock(output_dir), Ledger(output_dir / LEDGER_NAME) as ledger:
        ledger.save_settings(settings)
        rels, ignored = scan_tree(input_dir, output_dir)
        outputs: set[str] = set()
        out_rel = {}
        for rel in rels:
            out_rel[rel] = output_name(rel, outputs)
            outputs.add(out_rel[rel])
        display = _Display(len(rels), progress)
        ex = None
        try:
            ex = _make_executor(executor, workers, scheduler, display.message)
            _show_dashboard(ex.dashboard, echo)
            driver = _Driver(ex, ledger, processor, display, 1 if not ex.parallel else 2 * workers)

            def jobs() -> Iterator[tuple[Job, bool]]:
                for rel in rels:
                    src = input_dir / rel
                    dst = output_dir / out_rel[rel]
                    report = dst.with_name(dst.name + REPORT_SUFFIX) if reports else None
                    row = ledger.get(rel)
                    try:
                        st = src.stat()
                        if (not rehash and row and row["input_sha256"] and row["input_size"] == st.st_size
                                and row["input_mtime_ns"] == st.st_mtime_ns):
                            sha = row["input_sha256"]
                        else:
                            sha = sha256_file(src)
                    except OSError as exc:
                        ledger.pending(rel, out_rel[rel], "", 0, 0, digest)
                        driver.fail_now(rel, f"{src.name}: cannot be read ({exc.strerror or type(exc).__name__})")
                        continue
                    if (row and row["status"] == "done" and row["input_sha256"] == sha
                            and row["settings_digest"] == digest and row["output"] == out_rel[rel]
                            and dst.is_file() and dst.stat().st_size == row["output_size"]
                            and (report is None or report.is_file())):
                        driver.skip(rel)
                        continue
                    try:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        ledger.pending(rel, out_rel[rel], sha, st.st_size, st.st_mtime_ns, digest)
                        driver.fail_now(rel, f"{dst.parent}: cannot create the output folder ({exc.strerror})")
                        continue
                    _remove_stale_temps(dst)
                    if report is not None:
                        _remove_stale_temps(report)
                        _remove_stale_temps(report.with_suffix(".md"))
                    ledger.pending(rel, out_rel[rel], sha, st.st_size, st.st_mtime_ns, digest)
                    job = Job(rel=rel, src=str(src.resolve()), dst=str(dst.resolve()),
                              report=str(report.resolve()) if report else None, input_sha256=sha, settings=settings,
                              chunk_seconds=chunk_seconds)
                    yield job, bool(chunk_seconds) and can_chunk

            driver.run(jobs())
        finally:
            if ex is not None:
                ex.close()
            display.close()
        summary = {
            "total": len(rels), **driver.counts, "ignored": ignored, "failures": driver.failures,
            "seconds": round(time.perf_counter() - t0, 2), "output_dir": str(output_dir),
            "ledger": str(output_dir / LEDGER_NAME), "dashboard": ex.dashboard if ex is not None else None,
        }
    if echo:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    """The closing lines of a batch: counts, then each failed file with its reason."""
    lines = [f"anonlab batch: {summary['total']} file(s): {summary['done']} done, {summary['skipped']} already done, "
             f"{summary['failed']} failed; {summary.get('ignored', 0)} other file(s) ignored "
             f"({summary.get('seconds', 0):.1f} s)"]
    if summary.get("failures"):
        lines.append("failed:")
        for f in summary["failures"]:
            error = f["error"]
            name = f"{Path(f['file']).name}: "
            lines.append(f"  {f['file']}: {error[len(name):] if error.startswith(name) else error}")
    lines.append(f"ledger: {summary.get('ledger')}")
    return "\n".join(lines)


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
