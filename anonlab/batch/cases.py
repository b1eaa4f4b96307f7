"""Approved case files from the workbench, rendered as a batch: `queue_cases` and its job `CaseRenderer`.

A case file (`anonlab.case`) holds an analysis an analyst has edited and a reviewer has signed off. Rendering
approved cases is the same kind of work as a folder batch (one output per input, resumable, failures isolated,
any executor), so it goes through the same ledger, executors and driver (`anonlab.batch.driver._Driver`); only
the job differs: `CaseRenderer` renders exactly the case's effective regions, and refuses a case that is not
approved. The ledger key of a case is ``cases/<case file name>``; a case is redone when its file changes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from anonlab.batch.display import _Display
from anonlab.batch.driver import _Driver, _show_dashboard, format_summary
from anonlab.batch.executors import _make_executor
from anonlab.batch.ledger import LEDGER_NAME, Ledger, _folder_lock
from anonlab.batch.processors import Job, ProgressFn, error_line
from anonlab.batch.tree import REPORT_SUFFIX, _remove_stale_temps
from anonlab.errors import AnonlabError
from anonlab.media import sha256_file
from anonlab.report.audit import make_report, write_report
from anonlab.review import export_allowed
from anonlab.settings import Settings

try:  # the workbench's case model; without it folder batches still run, and each case fails with a line
    from anonlab.case import Case, render_case
except ImportError:
    Case = render_case = None


class CaseRenderer:
    """The job for a case file: render it with `anonlab.case.render_case` if its review status is approved.

    ``job.src`` is the case file. The input is checked against the case's sha256 (`render_case` refuses a
    changed input), exactly the case's effective regions are masked, and the report records the edits, the
    exclusions (with their reasons) and who approved it. A case that is not approved fails with a line saying so.

    Raises:
        AnonlabError: the case is not approved, cannot be loaded or rendered (`Case.load`, `render_case`: a changed
            or missing input, an export the case's policy refuses), or this install lacks `anonlab.case`; the driver
            records the line as the case's failure.
    """

    def __call__(self, job: Job, progress: ProgressFn | None = None) -> dict:
        if Case is None:
            raise AnonlabError("rendering case files needs anonlab.case (the workbench), which this install lacks")
        case = Case.load(job.src)
        status = _review_status(case)
        if status != "approved":
            raise AnonlabError(f"{Path(job.src).name}: review status is {status or 'not set'}, not approved; "
                               "approve the case in the workbench first")
        ok, why = export_allowed(case.review_queue(), case.review.decisions, case.review.override)
        if not ok:  # approved by an older anonlab, or the file edited by hand: "signed off" must mean decided
            raise AnonlabError(f"{Path(job.src).name}: approved, but {why}; open it in the workbench")
        info = render_case(case, job.dst, overwrite=True, progress=False)
        out_sha = sha256_file(job.dst)
        n_in = int(getattr(case.input, "n_frames", info.get("frames", 0)) or 0)
        if job.report:
            review = getattr(case, "review", None)
            rep = make_report(
                settings=case.export_settings(), models=list(getattr(case, "models", [])),
                input_path=Path(case.locate_input()), output_path=Path(job.dst),
                input_sha256=getattr(case.input, "sha256", None) or sha256_file(case.locate_input()),
                output_sha256=out_sha, n_frames_in=n_in, n_frames_out=info["frames"],
                regions=case.effective_regions(), timings={"render_s": info.get("render_s", 0.0)},
                edits=int(getattr(case, "edit_count", 0)),
                review={"status": status, "signed_off_by": getattr(review, "reviewer", None),
                        "signed_off_at": getattr(review, "at", None)},
                exclusions=case.exclusions(), extra={"kind": getattr(case.input, "kind", None),
                                                     "case_file": Path(job.src).name,
                                                     **({"audio": info["audio"]} if info.get("audio") else {})},
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

    Raises:
        AnonlabError: another batch is writing into ``output_dir``, its ledger is unreadable, or the executor or
            scheduler cannot be used; a bad *case* never raises, it is recorded as failed.
        OSError: ``output_dir`` cannot be created.
    """
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
        # the ledger keys cases as "cases/NAME"; the analyst is told the path they gave, which exists
        given = {f"cases/{p.name}": str(p) for p in cases}
        failures = [{**f, "file": given.get(f.get("file"), f.get("file"))} for f in driver.failures]
        summary = {"total": len(cases), **driver.counts, "ignored": 0, "failures": failures,
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
