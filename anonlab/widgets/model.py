"""Old import path of the workbench's model, kept so that notebooks written against earlier releases run.

``anonlab.widgets.model`` used to hold the viewport maths, the frame cache, the editing model and the
background jobs in one file. They now live in one module each: `anonlab.widgets.viewport`,
`anonlab.widgets.frames`, `anonlab.widgets.boxes`, `anonlab.widgets.editor` (with its key bindings in
`anonlab.widgets.keymap`) and `anonlab.widgets.jobs`.
This module only re-exports the old names (the same objects, so ``model.EditorModel is
editor.EditorModel``). It is not an entry of `anonlab._aliases.MOVED`, which hands out one module under an
old name: the old module maps to five. New code imports from the modules above.

The widgets now spell ``color`` (``track_color``, ``EXCLUDED_COLOR``, ``BoxView.color``); the old spellings
``track_colour`` and ``EXCLUDED_COLOUR`` are kept here, as the same objects.
"""

from __future__ import annotations

from anonlab.widgets.boxes import (EXCLUDED_COLOR, HANDLES, PALETTE, BoxView, TrackSummary, handle_points, hex_to_bgr,
                                   track_color)
from anonlab.widgets.editor import DRAG_PX, FOLLOW_FRAMES, FOLLOW_MAX_SIDE, HANDLE_PX, MIN_BOX, Drag, EditorModel
from anonlab.widgets.frames import PROXY_BYTES_PER_PIXEL, FrameSource
from anonlab.widgets.jobs import AnalysisJob, BackgroundJob, Cancelled
from anonlab.widgets.keymap import SHORTCUTS
from anonlab.widgets.viewport import MAX_ZOOM, Viewport, _paste, render_view  # noqa: F401 (_paste: old private name)

track_colour = track_color
EXCLUDED_COLOUR = EXCLUDED_COLOR

__all__ = [
    "DRAG_PX", "EXCLUDED_COLOUR", "FOLLOW_FRAMES", "FOLLOW_MAX_SIDE", "HANDLES", "HANDLE_PX", "MAX_ZOOM", "MIN_BOX",
    "PALETTE", "PROXY_BYTES_PER_PIXEL", "SHORTCUTS", "AnalysisJob", "BackgroundJob", "BoxView", "Cancelled", "Drag",
    "EditorModel", "FrameSource", "TrackSummary", "Viewport", "handle_points", "hex_to_bgr", "render_view",
    "track_colour",
]
