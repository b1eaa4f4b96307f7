"""The case file: one input, its analysis, everything the analyst changed, and the review state.

A case is what an analyst works on in the workbench and what a reviewer signs off. It is the **only**
artefact anonlab writes that holds region coordinates (logs, errors and reports carry counts only), so it
is saved with owner-only permissions (0600) and never logged.

The package, one job per module:

* `anonlab.case.tracks`: the track model (CVAT's): a track is a label and keyframes ``frame -> Key``, linearly
  interpolated between keyframes; an analysis becomes tracks with `tracks_from_regions`, so an unedited
  case masks exactly what the analysis found.
* `anonlab.case.ops`: the edit log's operations (`EDIT_OPS`: add a track, set keyframes, delete, interpolate,
  merge, split, exclude with a reason and a name, include, relabel), each stored with its result so the
  same case file always gives the same regions; checking and applying one (undo/redo replay them).
* `anonlab.case.fileformat`: the JSON file format (``format = "anonlab-case"``, ``version = 2``; version 1
  is read too), the strict reader's checks (`AnonlabError` naming the file and the field, never a
  coordinate), the `Review` record and the writer.
* `anonlab.case.storage`: atomic saves under an exclusive lock (a kill during a save leaves the previous
  complete file), the bounded read, `default_case_path`.
* `anonlab.case.model`: the `Case` class: edits, undo/redo, `Case.effective_regions` (what gets masked:
  every visible frame of every track not left unmasked, by frame then track id), review state (who decided
  what, when) and the export policy (`Case.export_check`).
* `anonlab.case.render`: `render_case` (passes the effective regions to `anonlab.pipeline.render`) and
  `case_report`; the only module here that imports the pipeline.

The input's facts (path, hash, size, geometry) are `anonlab.media.facts.InputFacts`, importable here under
its case-file name `InputInfo`.

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

# The names not in __all__ are re-exported for code written against the one-module case (the reader's limits,
# the format's other constants, and the strict checker, which tests build a `Review` with).
from anonlab.case.fileformat import (  # noqa: F401
    CASE_FORMAT, CASE_SUFFIX, CASE_VERSION, DECISIONS, MAX_CASE_BYTES, MAX_COORD, READ_VERSIONS, STATUSES, TOOLS,
    WITHOUT_ANALYSIS, Review, _Checker,
)
from anonlab.case.model import Case
from anonlab.case.ops import EDIT_OPS
from anonlab.case.render import case_analysis, case_report, render_case
from anonlab.case.storage import default_case_path
from anonlab.case.tracks import Key, Track, tracks_from_regions
from anonlab.media.facts import InputFacts

#: The case file's ``input`` record: the one record of an input's facts.
InputInfo = InputFacts

__all__ = [
    "CASE_FORMAT", "CASE_SUFFIX", "CASE_VERSION", "Case", "DECISIONS", "EDIT_OPS", "InputInfo", "Key", "Review",
    "STATUSES", "Track", "case_analysis", "case_report", "default_case_path", "render_case", "tracks_from_regions",
]
