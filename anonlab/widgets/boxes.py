"""How boxes look in the workbench: a colour per track, and the records the editing model hands the view.

`BoxView` (one box on the canvas) and `TrackSummary` (one row of the track list) are frozen records with no
pixels and no widgets: the model (`anonlab.widgets.editor`) builds them from the case, the view
(`anonlab.widgets.workbench`) draws them, and the tests compare them. The palette, `hex_to_bgr` (the same
colour in an OpenCV thumbnail) and `handle_points` (where the resize handles sit, for hit testing in the
model and for drawing in the view) are here for the same reason: both sides need exactly the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Track colours (CSS hex), picked by track id; excluded tracks are drawn grey and dashed.
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
           "#bcf60c", "#fabebe", "#008080", "#e6beff")
EXCLUDED_COLOR = "#9e9e9e"


def track_color(track_id: int) -> str:
    return PALETTE[int(track_id) % len(PALETTE)]


def hex_to_bgr(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[4:6], 16), int(c[2:4], 16), int(c[0:2], 16)


@dataclass(frozen=True)
class BoxView:
    """One box on the canvas: image coordinates plus how to draw it."""

    track: int
    box: tuple[float, float, float, float]
    label: str
    source: str
    score: float
    color: str
    excluded: bool
    selected: bool
    keyframe: bool

    @property
    def colour(self) -> str:
        """The old spelling of `color` (tests and old notebooks read it)."""
        return self.color


@dataclass(frozen=True)
class TrackSummary:
    """One row of the track list (no pixels: the view crops the thumbnail from ``thumb_frame``)."""

    id: int
    label: str
    n_frames: int
    first: int
    last: int
    min_score: float
    excluded: str | None
    hidden: bool
    edited: bool
    color: str
    thumb_frame: int
    thumb_box: tuple[float, float, float, float]


HANDLES = ("nw", "n", "ne", "e", "se", "s", "sw", "w")


def handle_points(box: tuple[float, float, float, float]) -> dict[str, tuple[float, float]]:
    """Canvas (or image) positions of the 8 resize handles of ``box``."""
    x1, y1, x2, y2 = box
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return {"nw": (x1, y1), "n": (mx, y1), "ne": (x2, y1), "e": (x2, my), "se": (x2, y2), "s": (mx, y2),
            "sw": (x1, y2), "w": (x1, my)}
