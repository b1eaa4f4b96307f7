"""Exporting a case: the masked output (`render_case`) and its audit report (`case_report`).

Rendering a case is rendering an analysis whose regions are the case's `Case.effective_regions`
(`case_analysis` builds that `anonlab.pipeline.Analysis`), after the case's own export check and the
caller's gate, so an unedited case gives the very bytes `anonlab.pipeline.render` gives for its analysis.
This is the only part of `anonlab.case` that imports the pipeline and the report: the model, the file
format, the edit operations and the storage do not depend on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from anonlab.case.model import Case
from anonlab.media import sha256_file
from anonlab.pipeline import Analysis, render, stream_fields
from anonlab.report.audit import make_report

__all__ = ["case_analysis", "case_report", "render_case"]


def case_analysis(case: Case, path: str | Path | None = None) -> Analysis:
    """An `anonlab.pipeline.Analysis` of ``case``'s input (at ``path``, default `Case.locate_input`) whose
    regions are the case's effective regions (for `anonlab.pipeline.render`).

    Raises:
        AnonlabError: no ``path`` given and the input is missing.
    """
    info = case.input
    times = np.arange(info.n_frames, dtype=np.float64) / (info.fps or 25.0)
    return Analysis(path=Path(path) if path is not None else case.locate_input(), kind=info.kind,
                    n_frames=info.n_frames, width=info.width, height=info.height, fps=info.fps, times=times,
                    regions=case.effective_regions(), settings=case.settings, models=list(case.models),
                    damaged=list(case.damaged), timings=dict(case.timings), scene_cuts=list(case.scene_cuts))


def render_case(
    case: Case,
    output: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    verify_input: bool = True,
    gate: Callable[[Case], None] | None = None,
) -> dict:
    """Render the case: mask exactly `Case.effective_regions` (frames damaged in analysis masked whole).

    Args:
        case: the case.
        output: output file (photo or video, like the input).
        overwrite: replace an existing output.
        progress: show a progress bar (tqdm; a widget inside Jupyter).
        verify_input: refuse if the input's sha256 differs from the case's.
        gate: called with the case before anything is written; raises `AnonlabError` to block the export
            (the review queue's export gate).

    Raises:
        AnonlabError: before anything is written, when `Case.export_check` refuses (a case never analysed,
            with no choice recorded for it) or the gate does, or the input changed; and whatever
            `anonlab.pipeline.render` raises (an existing output without ``overwrite``, an unreadable input).

    The sound track is redacted as the case's `Case.audio` says (its last ``audio`` edit).

    Returns:
        `pipeline.render`'s counts plus ``"case"``: edits, excluded tracks (no coordinates), status, and
        ``"whole_frames"`` (frames masked edge to edge because the analyst chose so).
    """
    whole = case.export_check()  # first: no gate can waive it
    if gate is not None:
        gate(case)
    src = case.verify_input() if verify_input else case.locate_input()
    analysis = case_analysis(case, src)
    info = render(analysis, output, regions=analysis.regions, settings=case.export_settings(), overwrite=overwrite,
                  progress=progress, mask_whole=whole or None)
    info["case"] = {"edits": case.edit_count, "excluded": case.exclusions(), "status": case.review.status,
                    "regions": len(analysis.regions), "whole_frames": len(whole)}
    return info


def case_report(case: Case, output: str | Path, render_info: dict, *, review: dict | None = None) -> dict:
    """The audit report of a case's export: counts, hashes, edits, exclusions (reasons), review sign-off.

    ``render_info`` is what `render_case` returned for ``output``; ``review`` the review fields for the
    report (`anonlab.review.report_review_fields`).

    Raises:
        AnonlabError: the input is needed for its sha256 (the case has none) and is missing; or
            (`anonlab.report.UnsafeReportError`) the report would carry a coordinate.
    """
    regions = case.effective_regions()
    extra = {"damaged_frames": len(render_info.get("damaged", ())), **stream_fields(render_info)}
    uncovered = case.uncovered_by_edits()
    if uncovered:  # a found box the analyst moved or shrank off itself: named in the edit log, counted here
        extra["edits_uncovering_found_objects"] = (f"{sum(uncovered.values())} frame(s) of {len(uncovered)} "
                                                   "track(s) where an edit left part of a found object unmasked")
    without = case.review.without_analysis
    if not case.analysed and without is not None:
        extra["exported_without_analysis"] = (
            f"{'every frame masked whole' if without['mode'] == 'whole_frames' else 'analyst boxes only'}, "
            f"chosen by {without['by']} at {without['at']}" + (f": {without['reason']}" if without.get("reason") else ""))
    return make_report(
        settings=case.export_settings(), models=case.models, input_path=case.input.path, output_path=output,
        input_sha256=case.input.sha256 or sha256_file(case.locate_input()), output_sha256=sha256_file(output),
        n_frames_in=case.input.n_frames, n_frames_out=render_info.get("frames", 0), regions=regions,
        timings={"render_s": render_info.get("render_s", 0.0)}, edits=case.edit_count, review=review,
        exclusions=case.exclusions() + case.dismissals(), extra=extra,
    )
