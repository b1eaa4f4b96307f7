"""Canvas <-> image coordinates for the workbench, and the canvas-sized picture of a frame.

`Viewport` fits the image inside the canvas (letterboxed, at its display aspect ratio: the pixels of anamorphic
video are not square), then zooms about a point and pans, clamped so
that no more than the letterbox margin shows; `render_view` draws a frame through it (``cv2.resize`` at
zoom 1, one ``cv2.warpAffine`` when zoomed). Both are plain maths on numbers and arrays, without a case or
widgets, so the editing model, the frame cache (`anonlab.widgets.frames`) and the view share them and the
tests check them on their own (round trips, zoom about the pointer, clamped pan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

MAX_ZOOM = 16.0


@dataclass
class Viewport:
    """Maps image pixels to canvas pixels: fit inside the canvas (letterboxed), then zoom about a point.

    ``cx, cy`` is the image point shown at the canvas centre. At zoom 1 the whole image is visible and
    centred; when zoomed the centre is kept so that no more than the letterbox margin shows. ``aspect`` is the
    pixel aspect ratio (an image pixel's displayed width over its height: a video's SAR, 64/45 for widescreen
    PAL DV; 1 for square pixels): an image pixel spans ``sx`` canvas pixels across and ``sy`` down.

    Example:
        >>> vp = Viewport(1920, 1080, 960, 600)
        >>> vp.to_canvas(0, 0), vp.to_image(480, 300)
        ((0.0, 30.0), (960.0, 540.0))
    """

    image_w: int
    image_h: int
    canvas_w: int
    canvas_h: int
    zoom: float = 1.0
    cx: float = field(default=float("nan"))
    cy: float = field(default=float("nan"))
    aspect: float = 1.0

    def __post_init__(self) -> None:
        if min(self.image_w, self.image_h, self.canvas_w, self.canvas_h) <= 0:
            raise ValueError("viewport sizes must be positive")
        if not self.aspect > 0 or not math.isfinite(self.aspect):
            raise ValueError(f"pixel aspect ratio must be positive, not {self.aspect!r}")
        self.aspect = float(self.aspect)
        if math.isnan(self.cx) or math.isnan(self.cy):
            self.cx, self.cy = self.image_w / 2, self.image_h / 2
        self._clamp()

    @property
    def fit(self) -> float:
        """Canvas pixels per image pixel down (across: times ``aspect``) at zoom 1."""
        return min(self.canvas_w / (self.image_w * self.aspect), self.canvas_h / self.image_h)

    @property
    def scale(self) -> float:
        """Canvas pixels per image pixel down (the same across for square pixels; see `sx`)."""
        return self.fit * self.zoom

    @property
    def sx(self) -> float:
        """Canvas pixels per image pixel across."""
        return self.scale * self.aspect

    @property
    def sy(self) -> float:
        """Canvas pixels per image pixel down."""
        return self.scale

    @property
    def offset(self) -> tuple[float, float]:
        """Canvas position of the image's origin."""
        return self.canvas_w / 2 - self.cx * self.sx, self.canvas_h / 2 - self.cy * self.sy

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        ox, oy = self.offset
        return (x - ox) / self.sx, (y - oy) / self.sy

    def to_canvas(self, ix: float, iy: float) -> tuple[float, float]:
        ox, oy = self.offset
        return ix * self.sx + ox, iy * self.sy + oy

    def box_to_canvas(self, box: Iterable[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        return (*self.to_canvas(x1, y1), *self.to_canvas(x2, y2))

    def box_to_image(self, box: Iterable[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        return (*self.to_image(x1, y1), *self.to_image(x2, y2))

    def affine(self) -> np.ndarray:
        """2x3 matrix image -> canvas (for ``cv2.warpAffine``)."""
        ox, oy = self.offset
        return np.array([[self.sx, 0.0, ox], [0.0, self.sy, oy]], np.float64)

    def _clamp(self) -> None:
        self.zoom = float(min(max(self.zoom, 1.0), MAX_ZOOM))
        for attr, size, canvas, s in (("cx", self.image_w, self.canvas_w, self.sx),
                                      ("cy", self.image_h, self.canvas_h, self.sy)):
            half = canvas / 2 / s  # half the visible extent, image px
            v = getattr(self, attr)
            setattr(self, attr, size / 2 if half >= size / 2 else min(max(v, half), size - half))

    def zoom_at(self, factor: float, x: float, y: float) -> None:
        """Zoom by ``factor`` keeping the image point under canvas ``(x, y)`` in place (where possible)."""
        ix, iy = self.to_image(x, y)
        self.zoom = float(min(max(self.zoom * factor, 1.0), MAX_ZOOM))
        self.cx = ix - (x - self.canvas_w / 2) / self.sx
        self.cy = iy - (y - self.canvas_h / 2) / self.sy
        self._clamp()

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by ``dx, dy`` canvas pixels."""
        self.cx -= dx / self.sx
        self.cy -= dy / self.sy
        self._clamp()

    def reset(self) -> None:
        self.zoom, self.cx, self.cy = 1.0, self.image_w / 2, self.image_h / 2

    def image_rect(self) -> tuple[int, int, int, int]:
        """Where the whole image lands on the canvas at this zoom (rounded): x, y, w, h."""
        ox, oy = self.offset
        return round(ox), round(oy), max(1, round(self.image_w * self.sx)), max(1, round(self.image_h * self.sy))


def render_view(frame: np.ndarray, vp: Viewport) -> np.ndarray:
    """The canvas-sized picture of ``frame`` (BGR) through ``vp``; black letterbox."""
    h, w = frame.shape[:2]
    out = np.zeros((vp.canvas_h, vp.canvas_w, 3), np.uint8)
    if vp.zoom == 1.0:
        x, y, rw, rh = vp.image_rect()
        small = frame if (rw, rh) == (w, h) else cv2.resize(
            frame, (rw, rh), interpolation=cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR)
        _paste(out, small, x, y)
        return out
    m = vp.affine()
    if (w, h) != (vp.image_w, vp.image_h):  # a smaller copy: its pixels are bigger than the image's
        m[0, 0] *= vp.image_w / w
        m[1, 1] *= vp.image_h / h
    cv2.warpAffine(frame, m, (vp.canvas_w, vp.canvas_h), dst=out, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out


def _paste(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    H, W = dst.shape[:2]
    h, w = src.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        dst[y0:y1, x0:x1] = src[y0 - y : y1 - y, x0 - x : x1 - x]
