"""The case file: one input, its analysis, everything the analyst changed, and the review state.

A case is what an analyst works on in the workbench and what a reviewer signs off. It is the **only**
artefact anonlab writes that holds region coordinates (logs, errors and reports carry counts only), so it
is saved with owner-only permissions (0600) and never logged.

Model (CVAT's track model):

* a **track** has a label and *keyframes* ``frame -> box`` (or an *outside* marker). Between two visible
  keyframes the box is linearly interpolated; an outside marker ends the track until the next keyframe.
  An analysis track becomes one keyframe per analysed frame (its source and score kept), with outside
  markers at the gaps temporal safety left open, so an unedited case masks exactly what the analysis found.
* the analyst's work is an ordered **edit log** of small JSON operations (`EDIT_OPS`) replayed on the
  analysis: add a track, set keyframes (draw, move, resize, follow), delete frames or a track,
  interpolate, merge, split, exclude ("leave unmasked", with a reason), include, relabel. Every operation
  stores its result (a followed track stores the boxes the tracker produced, not the request), so the
  same case file always gives the same regions and the same output frames. Undo/redo pop and push it.
* `Case.effective_regions` is what gets masked: every visible frame of every track that is not excluded,
  sorted by frame then track id. `render_case` passes it to `anonlab.pipeline.render`.

File format (JSON, ``format = "anonlab-case"``, ``version = 2``; version 1 files are read too)::

    {"format": "anonlab-case", "version": 2, "anonlab": "0.1.0", "created": ISO, "saved": ISO,
     "input": {"path", "name", "sha256", "size", "kind", "n_frames", "width", "height", "fps"},
     "settings": Settings.to_dict(), "models": [{...}, ...],
     "analysis": null | {"damaged": [frame, ...], "timings": {...}, "tracks": [
         {"id": 1, "label": "face", "frames": [3, 4, ...], "boxes": [[x1, y1, x2, y2], ...],
          "scores": [0.91, ...], "sources": "ddti..."}]},          # one letter per frame: SOURCES[i][0]
     "edits": [{"op": "set", "track": 1, "keys": [[frame, x1, y1, x2, y2]], "source": "analyst",
                "tool": "move", "at": ISO, "by": NAME}, ...],       # "exclude" always names its "by"
     "edit_count": 1,
     "review": {"status": "draft" | "reviewed" | "approved", "reviewer", "at",
                "decisions": {item_id: {"decision": "accepted" | "fixed" | "dismissed", "by", "at"}},
                "override": null | {"reason", "by", "at"}, "history": [{"status", "by", "at", "note"}],
                "without_analysis": {"mode": "whole_frames" | "manual_only", "reason", "by", "at"}}}

Export policy (`Case.export_check`, applied by `render_case` whatever gate is passed): a case that was never
analysed exports nothing unless the analyst chose to mask whole frames or to export their own boxes only
(with a reason); a track left unmasked must name who decided it.

Coordinates of the analyst's edits are stored rounded to 1/100 pixel (scores to 1e-4); the analysis' own
boxes keep their float32 values (so an unedited case renders exactly like `anonlab.pipeline.render`); either
way the case in memory and the case reloaded from disk are identical.

The loader is strict: unknown keys, wrong types, out-of-range frames, boxes without area, edits that refer
to a missing track: all raise `AnonlabError` naming the file and the field (never a coordinate).
Saving is atomic (temporary file in the same folder, fsync, ``os.replace``, fsync of the folder) under an
exclusive lock on a sidecar ``.NAME.lock`` file, so concurrent saves never interleave and a kill during a
save leaves the previous complete file.

Example:
    >>> from anonlab.settings import Settings
    >>> case = Case.blank("clip.mp4", n_frames=10, width=64, height=48, fps=25.0)
    >>> t = case.add_track("face", {0: (10, 10, 20, 20), 8: (30, 10, 40, 20)})
    >>> case.regions_at(4).xyxy.tolist()
    [[20.0, 10.0, 30.0, 20.0]]
    >>> case.exclude(t, "public official at a press event", by="A. Analyst")
    >>> len(case.effective_regions()), case.undo()["op"], len(case.effective_regions())
    (0, 'exclude', 9)
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from anonlab.errors import AnonlabError
from anonlab.media.facts import InputFacts
from anonlab.regions import LABELS, Regions
from anonlab.settings import Settings
from anonlab.case.fileformat import (
    CASE_FORMAT, CASE_SUFFIX, CASE_VERSION, DECISIONS, MAX_CASE_BYTES, MAX_COORD, READ_VERSIONS, STATUSES, TOOLS,  # noqa: F401
    WITHOUT_ANALYSIS, Review, _Checker, _name, _now, analysis_tracks_json, check_header, dump_case, parse_json,
    read_analysis, read_input, read_models, read_settings,
)
from anonlab.case.ops import EDIT_OPS, _apply_op, _check_op, _same_tracks
from anonlab.case.storage import default_case_path, read_case_text, write_case_text
from anonlab.case.model import Case
from anonlab.case.tracks import Key, Track, _key, tracks_from_regions

log = logging.getLogger(__name__)

# --- the case ---------------------------------------------------------------------------------------------
#: The case file's ``input`` record: the one record of an input's facts (`anonlab.media.facts.InputFacts`).
InputInfo = InputFacts


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
            with no choice recorded for it) or the gate does, or the input changed.

    Returns:
        `pipeline.render`'s counts plus ``"case"``: edits, excluded tracks (no coordinates), status, and
        ``"whole_frames"`` (frames masked edge to edge because the analyst chose so).
    """
    from anonlab.pipeline import render

    whole = case.export_check()  # first: no gate can waive it
    if gate is not None:
        gate(case)
    src = case.verify_input() if verify_input else case.locate_input()
    analysis = case.to_analysis(src)
    info = render(analysis, output, regions=analysis.regions, settings=case.settings, overwrite=overwrite,
                  progress=progress, mask_whole=whole or None)
    info["case"] = {"edits": case.edit_count, "excluded": case.exclusions(), "status": case.review.status,
                    "regions": len(analysis.regions), "whole_frames": len(whole)}
    return info


def case_report(case: Case, output: str | Path, render_info: dict, *, review: dict | None = None) -> dict:
    """The audit report of a case's export: counts, hashes, edits, exclusions (reasons), review sign-off."""
    from anonlab.media import sha256_file
    from anonlab.pipeline import stream_fields
    from anonlab.report.audit import make_report

    regions = case.effective_regions()
    extra = {"damaged_frames": len(render_info.get("damaged", ())), **stream_fields(render_info)}
    without = case.review.without_analysis
    if not case.analysed and without is not None:
        extra["exported_without_analysis"] = (
            f"{'every frame masked whole' if without['mode'] == 'whole_frames' else 'analyst boxes only'}, "
            f"chosen by {without['by']} at {without['at']}" + (f": {without['reason']}" if without.get("reason") else ""))
    return make_report(
        settings=case.settings, models=case.models, input_path=case.input.path, output_path=output,
        input_sha256=case.input.sha256 or sha256_file(case.locate_input()), output_sha256=sha256_file(output),
        n_frames_in=case.input.n_frames, n_frames_out=render_info.get("frames", 0), regions=regions,
        timings={"render_s": render_info.get("render_s", 0.0)}, edits=case.edit_count, review=review,
        exclusions=case.exclusions() + case.dismissals(), extra=extra,
    )


__all__ = [
    "CASE_FORMAT", "CASE_SUFFIX", "CASE_VERSION", "Case", "DECISIONS", "EDIT_OPS", "InputInfo", "Review", "STATUSES",
    "Track", "case_report", "default_case_path", "render_case", "tracks_from_regions",
]
