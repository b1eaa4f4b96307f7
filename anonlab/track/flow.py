"""Optical flow for boxes: how the tracker carries a box across frames where nothing was detected.

Each box moves by the median Lucas-Kanade flow of a grid of points inside it, forward-backward checked (the
MedianFlow idea, Kalal et al. 2010), in a crop around the box so the cost grows with the boxes, not the frame.
Where the flow is unreliable too (a partial occlusion, motion blur) the analysis holds the box where it was
last measured and grows it with the frames since (`grow_boxes`). Pure functions on grey images and boxes:
`anonlab.track.analyse` decides when to call them.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

#: Points per box side for the median flow (5 x 5 = 25 points per box).
FLOW_GRID = 5
#: Above this many boxes, optical flow runs once over the whole frame instead of once per box crop.
FLOW_MAX_CROPS = 12
#: Pixels of context around a box (plus half its size) in which its motion is measured.
FLOW_MARGIN = 24
#: Frames are halved until no wider than this before optical flow (720p -> 640, 1080p -> 960 px wide): a
#: quarter of the work or less, and boxes keep their position to about a pixel.
FLOW_MAX_WIDTH = 960
#: Holding a lost track: a box that optical flow cannot follow either stays where it was last measured and the
#: mask grows on every side by this share of its size for each frame without a measurement, up to
#: `HOLD_MAX_GROWTH` (the longer nothing is seen, the less is known of where the object is).
HOLD_GROWTH = 0.02
HOLD_MAX_GROWTH = 0.5
_LK = dict(winSize=(15, 15), criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))



def _lk_forward_backward(a: np.ndarray, b: np.ndarray, p0: np.ndarray, levels: int):
    """Lucas-Kanade from ``a`` to ``b`` and back: ``(p1, forward-backward error, usable)`` per point."""
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, maxLevel=levels, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, maxLevel=levels, **_LK)
    fb = np.linalg.norm(p0 - back, axis=2).ravel()
    return p1.reshape(-1, 2), fb, ((st1 & st2).ravel() == 1) & np.isfinite(fb)


def median_flow(prev_gray: np.ndarray, gray: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each box by the median Lucas-Kanade flow of a grid of points inside it.

    Up to `FLOW_MAX_CROPS` boxes are each tracked in a crop around them (cost grows with the boxes, not the
    frame); more boxes are tracked in one pass over the rectangle that holds all their crops. Points whose
    forward-backward error is above the box's median, or above 10 % of its size, are discarded; the shift is
    the median displacement of the rest and the scale the median ratio of their pairwise distances (limited
    to 0.8-1.25 a frame).

    Args:
        prev_gray, gray: consecutive grayscale frames of equal size.
        boxes: ``(N, 4)`` xyxy boxes in ``prev_gray``.

    Returns:
        ``(moved, ok)``: ``(N, 4)`` float32 boxes in ``gray`` and a boolean mask of the boxes that had
        enough reliable points (for the others, ``moved`` is the input box).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    moved, ok = boxes.copy(), np.zeros(len(boxes), bool)
    if not len(boxes):
        return moved, ok
    g = FLOW_GRID
    frac = (np.arange(g, dtype=np.float32) + 0.5) / g
    wh = boxes[:, 2:] - boxes[:, :2]
    xs = boxes[:, 0:1] + frac[None, :] * wh[:, 0:1]
    ys = boxes[:, 1:2] + frac[None, :] * wh[:, 1:2]
    pts = np.stack([np.tile(xs, (1, g)), np.repeat(ys, g, axis=1)], axis=2)  # (N, g*g, 2)
    height, width = gray.shape[:2]
    margin = FLOW_MARGIN + 0.5 * wh.max(axis=1, keepdims=True)
    crops = np.concatenate([np.maximum(boxes[:, :2] - margin, 0), np.minimum(boxes[:, 2:] + margin, [width, height])],
                           axis=1).astype(int)
    if len(boxes) > FLOW_MAX_CROPS:  # one pass over the region holding all the boxes
        crops[:] = np.concatenate([crops[:, :2].min(axis=0), crops[:, 2:].max(axis=0)])
        groups = [np.arange(len(boxes))]
    else:  # a pass per box, in a crop around it
        groups = [np.array([i]) for i in range(len(boxes))]
    tracked: list[tuple | None] = [None] * len(boxes)
    for group in groups:
        x1, y1, x2, y2 = crops[group[0]]
        if x2 - x1 < 8 or y2 - y1 < 8:
            continue
        levels = int(np.clip(np.log2(min(x2 - x1, y2 - y1) / 16), 0, 3))
        origin = np.array([x1, y1], np.float32)
        p1, fb, good = _lk_forward_backward(prev_gray[y1:y2, x1:x2], gray[y1:y2, x1:x2],
                                            (pts[group] - origin).reshape(-1, 1, 2), levels)
        for j, i in enumerate(group):
            part = slice(j * g * g, (j + 1) * g * g)
            tracked[i] = (p1[part] + origin, fb[part], good[part])
    for i, item in enumerate(tracked):
        if item is None:
            continue
        p1, fb, good = item
        if good.sum() < 4:
            continue
        keep = good & (fb <= _median(fb[good])) & (fb <= max(1.0, 0.1 * float(wh[i].min())))
        if keep.sum() < max(4, g * g // 4):
            continue
        a, b = pts[i][keep], p1[keep]
        shift = np.stack([_median(b[:, 0] - a[:, 0]), _median(b[:, 1] - a[:, 1])])
        i0, i1 = _pairs(len(a))
        d0 = np.linalg.norm(a[i0] - a[i1], axis=1)
        d1 = np.linalg.norm(b[i0] - b[i1], axis=1)
        valid = d0 > 1e-3
        scale = float(np.clip(_median(d1[valid] / d0[valid]), 0.8, 1.25)) if valid.any() else 1.0
        centre = (boxes[i, :2] + boxes[i, 2:]) / 2 + shift
        moved[i] = np.concatenate([centre - wh[i] * scale / 2, centre + wh[i] * scale / 2])
        ok[i] = True
    return moved, ok


def _median(x: np.ndarray):
    """``np.median`` of a short 1-D array, the same value in a tenth of the time (its overhead, not the sort, is
    what a few hundred calls a frame paid: 2 ms a 720p frame)."""
    n = len(x)
    if n == 0 or not np.isfinite(x).all():
        return np.median(x)
    s = np.sort(x)
    m = n // 2
    return s[m] if n % 2 else (s[m - 1] + s[m]) / 2


@functools.lru_cache(maxsize=None)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)``, ``i < j``, of every pair of ``n`` points (``np.triu_indices(n, 1)``, cached)."""
    return np.triu_indices(n, 1)


def grow_boxes(xyxy: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Boxes grown on every side by ``min(HOLD_GROWTH * unseen, HOLD_MAX_GROWTH)`` of their size.

    Args:
        xyxy: ``(N, 4)`` boxes; unseen: ``(N,)`` frames since each box was last measured.
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    g = np.minimum(HOLD_GROWTH * np.asarray(unseen, np.float32), HOLD_MAX_GROWTH)[:, None]
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] - g * wh, xyxy[:, 2:] + g * wh], axis=1).astype(np.float32)


def at_least(xyxy: np.ndarray, wh: np.ndarray) -> np.ndarray:
    """Boxes grown about their centres to at least ``wh`` (width, height; pixels, per box or one for all).

    Example:
        >>> at_least(np.array([[10, 10, 20, 30]], np.float32), np.array([20, 10])).tolist()
        [[5.0, 10.0, 25.0, 30.0]]
    """
    xyxy = np.asarray(xyxy, np.float32)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = np.maximum(xyxy[:, 2:] - xyxy[:, :2], wh) / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
