"""Small objects: upscaling, overlapping tiles, several scales, and merging their boxes.

A detector misses objects smaller than its anchors/stride allow (CenterFace: faces under ~10 px). Two
remedies, composable around any `Detector` (they only need ``detector(crop) -> Regions``):

- `Tiled` resizes the frame by ``scale`` and/or cuts it into overlapping tiles, runs the detector on each
  piece and maps the boxes back. For a fully convolutional model (CenterFace) an upscaled whole frame and
  its tiles cost the same; tiles matter for fixed-input models and for memory.
- `Pyramid` runs several such views (e.g. native + 2× upscaled) and merges them, so large objects that an
  upscale pushes beyond the model's range are still found at native size.
- `AutoScale` picks the upscale per frame from its size: small images (where faces are few pixels and an
  upscale is cheap) are enlarged up to a pixel budget; large frames run as they are.

Boxes from several views / tiles / models are merged by `merge_regions`: greedy clustering by overlap,
fused by weighted box fusion (score-weighted mean), plain NMS, or the enclosing box.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import cv2
import numpy as np

from anonlab.detect.base import Detector
from anonlab.regions import Regions, merge_regions, overlap_matrix  # noqa: F401  (overlap_matrix: re-exported; it lived here)


def tile_grid(width: int, height: int, tile: tuple[int, int], overlap: float | int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles ``(x1, y1, x2, y2)`` covering a ``width × height`` image.

    Args:
        tile: ``(tile_w, tile_h)``; a side longer than the image is cut to the image.
        overlap: fraction of the tile (< 1) or pixels (>= 1) that neighbouring tiles share; it should
            exceed the largest object a tile has to see whole.

    Tiles are spread evenly, so the last one ends exactly at the image edge.
    """
    def starts(size: int, t: int) -> list[int]:
        t = min(t, size)
        ov = int(round(overlap * t)) if overlap < 1 else int(overlap)
        ov = min(max(ov, 0), t - 1)
        if size <= t:
            return [0]
        n = math.ceil((size - ov) / (t - ov))
        return [int(round(i * (size - t) / (n - 1))) for i in range(n)]

    tw, th = min(tile[0], width), min(tile[1], height)
    return [(x, y, x + tw, y + th) for y in starts(height, th) for x in starts(width, tw)]


def context_crops(boxes: np.ndarray, width: int, height: int, expand: float = 1.0, margin: int = 16) -> np.ndarray:
    """Rectangles around ``boxes`` with context, overlapping ones joined: ``(M, 4)`` int xyxy in the frame.

    Each box grows by ``expand`` times its longer side plus ``margin`` px on every side (a detector needs
    the head and shoulders around a face to score it as it would in the whole frame); rectangles that
    overlap are replaced by their enclosing one until none overlap, so no pixel is searched twice.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, 4), int)
    grow = expand * (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True) + margin
    rects = np.concatenate([np.maximum(boxes[:, :2] - grow, 0), np.minimum(boxes[:, 2:] + grow, [width, height])], 1)
    rects = np.round(rects).astype(int)
    while True:
        hit = ((rects[:, None, 0] < rects[None, :, 2]) & (rects[None, :, 0] < rects[:, None, 2])
               & (rects[:, None, 1] < rects[None, :, 3]) & (rects[None, :, 1] < rects[:, None, 3]))
        np.fill_diagonal(hit, False)
        if not hit.any():
            return rects
        i = int(np.argmax(hit.any(axis=1)))
        group = np.flatnonzero(hit[i] | (np.arange(len(rects)) == i))
        joined = np.concatenate([rects[group, :2].min(axis=0), rects[group, 2:].max(axis=0)])
        rects = np.vstack([np.delete(rects, group, axis=0), joined])


def resize(frame: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (bilinear up, area-averaging down); at least 1×1."""
    if scale == 1.0:
        return frame
    h, w = frame.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)


class Wrapper(Detector):
    """A detector around another one; threshold and model records are the inner detector's."""

    def __init__(self, base: Detector) -> None:
        self.base = base
        self.label = base.label
        self.default_thresh = base.default_thresh

    @property
    def thresh(self) -> float:  # type: ignore[override]
        return self.base.thresh

    @property
    def models(self) -> list[dict]:  # type: ignore[override]
        return self.base.models

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base.name

    def with_threshold(self, thresh: float) -> "Wrapper":
        out = copy.copy(self)
        out.base = self.base.with_threshold(thresh)
        return out

    def lowered(self, factor: float = 0.5) -> "Wrapper":
        out = copy.copy(self)
        out.base = self.base.lowered(factor)
        return out


class Tiled(Wrapper):
    """Run ``base`` on a resized frame and/or on overlapping tiles of it; boxes in frame pixels.

    Args:
        base: any detector that works on crops.
        scale: resize factor applied first (2.0 = twice the pixels per side).
        tile: ``(w, h)`` of a tile in the resized image, or None for the whole image in one piece.
        overlap: overlap between tiles (fraction of a tile, or pixels).
        merge_iou: boxes from neighbouring tiles overlapping by more than this (intersection over the
            smaller box, since a tile edge cuts objects) are one object, replaced by their enclosing box.
    """

    def __init__(self, base: Detector, scale: float = 1.0, tile: tuple[int, int] | None = None,
                 overlap: float = 0.2, merge_iou: float = 0.5) -> None:
        super().__init__(base)
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = float(scale)
        self.tile = tuple(tile) if tile is not None else None
        self.overlap = overlap
        self.merge_iou = merge_iou

    def detect(self, frame: np.ndarray) -> Regions:
        h, w = frame.shape[:2]
        image = resize(frame, self.scale)
        sh, sw = image.shape[:2]
        if self.tile is None:
            pieces = [(0, 0, sw, sh)]
        else:
            pieces = tile_grid(sw, sh, self.tile, self.overlap)
        parts = []
        for x1, y1, x2, y2 in pieces:
            r = self.base(image[y1:y2, x1:x2])
            if len(r):
                parts.append(r.replace(xyxy=r.xyxy + np.array([x1, y1, x1, y1], np.float32)))
        out = Regions.merge(parts)
        if len(pieces) > 1:
            # An object cut by a tile edge is seen whole by a neighbour: fuse into the enclosing box.
            out = merge_regions(out, iou=self.merge_iou, method="enclose", metric="ios")
        if self.scale != 1.0 and len(out):
            fx, fy = w / sw, h / sh
            out = out.replace(xyxy=out.xyxy * np.array([fx, fy, fx, fy], np.float32))
        return out.clip(w, h)

    def __repr__(self) -> str:
        return f"Tiled({self.base!r}, scale={self.scale:g}, tile={self.tile})"


class Pyramid(Wrapper):
    """Several views of one detector (e.g. native and 2× upscaled), merged by weighted box fusion.

    Args:
        base: the detector.
        scales: the resize factors to run (1.0 included to keep large objects).
        merge_iou: IoU above which boxes of different views are one object.
    """

    def __init__(self, base: Detector, scales: Sequence[float] = (1.0, 2.0), merge_iou: float = 0.4) -> None:
        super().__init__(base)
        self.scales = tuple(float(s) for s in scales)
        self.merge_iou = merge_iou

    def detect(self, frame: np.ndarray) -> Regions:
        parts = [Tiled(self.base, scale=s)(frame) for s in self.scales]
        return merge_regions(Regions.merge(parts), iou=self.merge_iou, method="wbf")

    def __repr__(self) -> str:
        return f"Pyramid({self.base!r}, scales={self.scales})"


class AutoScale(Wrapper):
    """Upscale small frames up to a pixel budget, run large ones as they are.

    The scale is ``sqrt(pixel_budget / (H * W))`` clipped to ``[1, max_scale]`` and rounded down to a
    quarter, so a frame of a given size always gets the same scale: frames at or above the budget cost
    nothing extra, a 640×360 frame or a 400×300 photo (where faces are few pixels and an upscale is cheap)
    is enlarged, and no frame costs more than the budget (or its own size) in network pixels.

    Args:
        base: the detector.
        pixel_budget: pixel count (W*H) the upscaled frame may reach (default: one 1280×720 frame).
        max_scale: largest upscale factor (2: an 8-px face becomes 16 px; beyond that large faces suffer).
        max_side: cut the (upscaled) frame into overlapping tiles no larger than this (for models made
            for a limited input size), or None.
        keep_native: also run at scale 1 and merge (for objects an upscale pushes beyond the model's range).
    """

    def __init__(self, base: Detector, pixel_budget: float = 1280 * 720, max_scale: float = 2.0,
                 max_side: int | None = None, keep_native: bool = False, merge_iou: float = 0.4) -> None:
        super().__init__(base)
        self.pixel_budget = float(pixel_budget)
        self.max_scale = float(max_scale)
        self.max_side = max_side
        self.keep_native = keep_native
        self.merge_iou = merge_iou

    def scale_for(self, width: int, height: int) -> float:
        """The upscale a frame of this size gets."""
        s = math.sqrt(self.pixel_budget / max(1, width * height))
        s = min(max(s, 1.0), self.max_scale)
        return max(1.0, math.floor(s * 4 + 1e-9) / 4)

    def view(self, width: int, height: int) -> Tiled:
        """The `Tiled` view a frame of this size is run through."""
        s = self.scale_for(width, height)
        tile = None
        if self.max_side is not None and max(width, height) * s > self.max_side:
            tile = (self.max_side, self.max_side)
        return Tiled(self.base, scale=s, tile=tile, overlap=0.25)

    def detect(self, frame: np.ndarray) -> Regions:
        view = self.view(frame.shape[1], frame.shape[0])
        out = view(frame)
        if self.keep_native and view.scale > 1.0:
            out = merge_regions(Regions.merge([out, self.base(frame)]), iou=self.merge_iou, method="wbf")
        return out

    def detect_in(self, frame: np.ndarray, crops: np.ndarray) -> Regions:
        """Boxes found inside ``crops`` (``(N, 4)`` int xyxy) of ``frame``, in frame pixels.

        Each crop is seen at the scale the whole frame would get (`scale_for` of the frame, not of the
        crop), so a face scores as it would in a full pass; only the pixels searched differ.
        """
        h, w = frame.shape[:2]
        scale = self.scale_for(w, h)
        parts = []
        for x1, y1, x2, y2 in np.asarray(crops, int).reshape(-1, 4):
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            tile = None
            if self.max_side is not None and max(x2 - x1, y2 - y1) * scale > self.max_side:
                tile = (self.max_side, self.max_side)
            r = Tiled(self.base, scale=scale, tile=tile, overlap=0.25)(frame[y1:y2, x1:x2])
            if len(r):
                parts.append(r.replace(xyxy=r.xyxy + np.array([x1, y1, x1, y1], np.float32)))
        return Regions.merge(parts).clip(w, h)

    def __repr__(self) -> str:
        return (f"AutoScale({self.base!r}, pixel_budget={self.pixel_budget:g}, max_scale={self.max_scale:g}"
                f"{'' if self.max_side is None else f', max_side={self.max_side}'})")
