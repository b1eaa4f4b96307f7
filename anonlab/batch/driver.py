"""The batch driver: plans a folder's jobs, feeds them to an executor, and records every outcome in the ledger.

``run_batch(IN, OUT, settings)`` mirrors ``IN``'s tree into ``OUT`` (names: `anonlab.batch.tree`): every photo
and video becomes one job that writes ``OUT/<same relative path>`` and, beside it, the audit report
``<output>.report.json``; other files are ignored and counted. Files whose ledger row is ``done`` with the same
input and settings are skipped (`anonlab.batch.ledger`), so a killed batch resumes where it stopped.

`_Driver` is the one loop every batch runs (`anonlab.batch.cases.queue_cases` too): it keeps a bounded number of
files in flight (twice the workers, so a worker never waits for the next file), moves a chunked file through its
stages (``plan``, one ``chunk`` task per chunk, ``finish``; a file that is not chunked is one ``file`` task),
and is the only writer of the ledger. **Failures are isolated**: a file that cannot be processed is marked
``failed`` with its one line (`anonlab.batch.processors.error_line`) and the batch goes on. With a process pool a
worker that dies (a decoder crash) takes only its own file down: the files that were in flight with it are
rerun one at a time, and the one that kills a worker alone is marked failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from anonlab.batch.display import _Display
from anonlab.batch.executors import _Failed, _make_executor
from anonlab.batch.ledger import LEDGER_NAME, Ledger, _folder_lock
from anonlab.batch.processors import Anonymizer, Job, ProgressFn, error_line
from anonlab.batch.tree import REPORT_SUFFIX, _remove_stale_temps, animated_image, plan_outputs, scan_tree
from anonlab.errors import AnonlabError, OutputError
from anonlab.media import sha256_file
from anonlab.settings import Settings


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
        #: Per file checked by the red team (`Job.red_team`): ``{"file", "exposed", "weak_mask", "doubtful",
        #: "findings"}``, counts and one-line findings only.
        self.red_team: list[dict] = []

    # --- bookkeeping ---
    def skip(self, rel: str, red_team: dict | None = None) -> None:
        self.counts["skipped"] += 1
        self._checked(rel, red_team)
        self.display.finished(rel, "skipped", self.counts)

    def fail_now(self, rel: str, error: str) -> None:
        self.ledger.failed(rel, error)
        self.counts["failed"] += 1
        self.failures.append({"file": rel, "error": error})
        self.display.finished(rel, "failed", self.counts)

    def _checked(self, rel: str, found: dict | None) -> None:
        if found is not None:
            self.red_team.append({"file": rel, **{k: found.get(k, 0) for k in ("exposed", "weak_mask", "doubtful")},
                                  "findings": list(found.get("findings", ()))})

    def _submit(self, fs: _FileState, stage: str, arg=None) -> None:
        fut = self.ex.submit(self.processor, stage, fs.job, arg)
        fs.futures.add(fut)
        # Only a chunk's argument is read back (its index, in `handle`). The finish task's argument is every
        # chunk's regions, the whole video's: once handed to the executor it is not kept here too, so the
        # driver holds no copy of them while the render runs (with Dask, the scheduler in this process
        # already keeps the task's own serialized copy until it ends).
        self.futures[fut] = (fs, stage, arg if stage == "chunk" else None)

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
                result["output_sha256"] = sha256_file(fs.job.dst)
                result["output_size"] = os.path.getsize(fs.job.dst)
            missing = [p for p in (fs.job.dst, fs.job.report) if p and not Path(p).exists()]
            if missing:
                error = f"{Path(missing[0]).name}: the job ended without writing it"
            else:
                self.ledger.done(rel, result)
                self.counts["done"] += 1
                self._checked(rel, result.get("red_team"))
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


def _check_folders(input_dir: Path, output_dir: Path) -> tuple[list[str], list[str]]:
    """Refuse unusable folders before anything is written; returns `scan_tree`'s ``(files, ignored)``."""
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
    rels, ignored = scan_tree(input_dir, output_dir)
    if not rels:  # say so, and leave no output folder or ledger behind for nothing
        raise AnonlabError(f"{input_dir}: no videos or photos in this folder ({len(ignored)} other file(s)); "
                           "nothing to anonymize")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot create the output folder ({exc.strerror})") from None
    return rels, ignored


def _show_dashboard(link: str | None, echo: bool) -> None:
    if not link:
        return
    if echo:
        print(f"anonlab: Dask dashboard at {link}", file=sys.stderr)
    with contextlib.suppress(Exception):  # IPython: present only in a notebook install (anonlab[jupyter])
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
    red_team: bool = False,
    overwrite: bool = False,
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
        red_team: check every output again (`Job.red_team`); a file already done is skipped only if its report
            holds that check (it is redone otherwise), and its findings are read back from the report.
        overwrite: replace files in ``output_dir`` that this batch did not write. Without it such a file is not
            touched and its input is recorded as failed (a folder run wrote over an unrelated file of that name).

    Returns:
        ``{"total", "done", "skipped", "failed", "ignored", "ignored_files" (the first few names), "failures":
        [{"file", "error"}], "red_team": [{"file", "exposed", "weak_mask", "doubtful", "findings"}], "seconds",
        "output_dir", "ledger", "dashboard"}``;
        ``failed`` is a count, ``skipped`` counts files already done; ``red_team`` lists the files checked.

    Raises:
        AnonlabError: for unusable folders or settings, or another batch writing into ``output_dir``; a bad
            *file* never raises, it is recorded as failed. So are, before any work and on every run, the inputs
            whose outputs clash (`anonlab.batch.tree.plan_outputs`) and animated images
            (`anonlab.batch.tree.animated_image`).
        ValueError: ``workers`` is not a number (a programming error; the CLI parses it as one).
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    workers = int(workers)
    if workers < 1:
        raise AnonlabError(f"--workers must be 1 or more; got {workers}")
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise AnonlabError(f"--chunk-seconds must be more than 0; got {chunk_seconds}")
    rels, ignored = _check_folders(input_dir, output_dir)  # the folder is walked once
    processor = process_file if process_file is not None else Anonymizer()
    can_chunk = all(hasattr(processor, m) for m in ("plan", "analyse", "finish"))
    digest = settings.digest
    with _folder_lock(output_dir), Ledger(output_dir / LEDGER_NAME) as ledger:
        ledger.save_settings(settings)
        # Decided before any work: an input whose output another input would also write must not run at all,
        # or the second would silently replace the first (or be refused as a stranger's file).
        out_rel, clashes = plan_outputs(rels)
        display = _Display(len(rels), progress)
        ex = None
        try:
            ex = _make_executor(executor, workers, scheduler, display.message)
            _show_dashboard(ex.dashboard, echo)
            driver = _Driver(ex, ledger, processor, display, 1 if not ex.parallel else 2 * workers)

            for rel, error in clashes.items():  # failed, never done: a rerun refuses them again
                ledger.pending(rel, out_rel[rel], "", 0, 0, digest)
                driver.fail_now(rel, error)

            def jobs() -> Iterator[tuple[Job, bool]]:
                for rel in rels:
                    if rel in clashes:
                        continue
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
                    refused = animated_image(src)  # src: the path as given, for the command it names
                    if refused is not None:
                        ledger.pending(rel, out_rel[rel], sha, st.st_size, st.st_mtime_ns, digest)
                        driver.fail_now(rel, refused)
                        continue
                    checked = _red_team_of(report) if red_team and report is not None else None
                    if (row and row["status"] == "done" and row["input_sha256"] == sha
                            and row["settings_digest"] == digest and row["output"] == out_rel[rel]
                            and dst.is_file() and dst.stat().st_size == row["output_size"]
                            and (report is None or report.is_file()) and (not red_team or checked is not None)):
                        driver.skip(rel, checked)
                        continue
                    if not overwrite and _foreign(dst, report, row):
                        ledger.pending(rel, out_rel[rel], sha, st.st_size, st.st_mtime_ns, digest)
                        driver.fail_now(rel, f"{out_rel[rel]}: a file of that name is in the output folder already and "
                                             "this batch did not write it; move it away, or pass --overwrite")
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
                              chunk_seconds=chunk_seconds, red_team=red_team)
                    yield job, bool(chunk_seconds) and can_chunk

            driver.run(jobs())
        finally:
            if ex is not None:
                ex.close()
            display.close()
        summary = {
            "total": len(rels), **driver.counts, "ignored": len(ignored), "ignored_files": ignored[:IGNORED_NAMED],
            "failures": driver.failures,
            **({"red_team": driver.red_team} if red_team else {}),
            "seconds": round(time.perf_counter() - t0, 2), "output_dir": str(output_dir),
            "ledger": str(output_dir / LEDGER_NAME), "dashboard": ex.dashboard if ex is not None else None,
        }
    if echo:
        print(format_summary(summary))
    return summary


#: Ignored files named in a batch's summary (a newcomer's "1 other file(s) ignored" did not say which).
IGNORED_NAMED = 5


def _named(summary: dict) -> str:
    names = summary.get("ignored_files") or []
    more = summary.get("ignored", 0) - len(names)
    return f" ({', '.join(names)}{f' and {more} more' if more > 0 else ''})" if names else ""


def format_summary(summary: dict) -> str:
    """The closing lines of a batch: counts, then each failed file with its reason."""
    lines = [f"anonlab batch: {summary['total']} file(s): {summary['done']} done, {summary['skipped']} already done, "
             f"{summary['failed']} failed; {summary.get('ignored', 0)} other file(s) ignored{_named(summary)} "
             f"({summary.get('seconds', 0):.1f} s)"]
    if summary.get("failures"):
        lines.append("failed:")
        for f in summary["failures"]:
            error = f["error"]
            name = f"{Path(f['file']).name}: "
            lines.append(f"  {f['file']}: {error[len(name):] if error.startswith(name) else error}")
    if "red_team" in summary:
        checked = summary["red_team"]
        sure = [f for f in checked if f["exposed"] or f["weak_mask"]]
        lines.append(f"red team: {len(checked)} output(s) checked; {len(sure)} with sure findings: "
                     f"{sum(f['exposed'] for f in checked)} exposed, {sum(f['weak_mask'] for f in checked)} weak "
                     "mask(s) (one per object)")
        for f in sure:
            lines.append(f"  {f['file']}: {f['exposed']} exposed, {f['weak_mask']} weak mask(s)")
            lines.extend(f"    {line}" for line in f["findings"][:5])
    lines.append(f"ledger: {summary.get('ledger')}")
    return "\n".join(lines)


def _foreign(dst: Path, report: Path | None, row: dict | None) -> bool:
    """Whether a file stands where this job writes that this batch did not write (its bytes are not the ones the
    ledger recorded): a folder run wrote over an unrelated file of the same name."""
    if dst.exists() or dst.is_symlink():
        return not (row and row["output_sha256"] and dst.is_file() and sha256_file(dst) == row["output_sha256"])
    return report is not None and report.exists() and not (row and row["output_sha256"])


def _red_team_of(report: Path) -> dict | None:
    """The red-team findings an earlier run wrote into ``report`` (None: not checked, or no readable report)."""
    try:
        found = json.loads(report.read_text(encoding="utf-8")).get("red_team") if report.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None
