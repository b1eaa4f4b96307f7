"""Following a box through frames with OpenCV's CSRT tracker: the workbench's *follow* tool.

A pure function of frames and a box, so the editing model (`anonlab.widgets.editor.EditorModel.follow`) keeps
the policy (how far, never over the analyst's own keyframes, one undoable edit) and this module the tracking.
Frames are shrunk until no side exceeds ``max_side`` (CSRT's cost grows with the pixels), unless the box would
then be under 24 px, where the tracker loses its features.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from anonlab.errors import AnonlabError

__all__ = ["csrt_follow"]


def csrt_follow(frames: Iterable[tuple[int, np.ndarray]], start: int, box, size: tuple[int, int], step: int, *,
                max_side: int) -> dict[int, tuple[float, float, float, float]]:
    """Boxes of the object in ``box`` (xyxy, image pixels, at frame ``start``) in the frames after it.

    Args:
        frames: ``(n, frame_bgr)`` in increasing ``n`` from ``start`` on (or ending with ``start`` when ``step``
            is -1: they are reversed here).
        start: the frame ``box`` is in; size: ``(W, H)`` of the frames; step: 1 forward, -1 backward.
        max_side: frames are shrunk until no side is longer (see the module docstring).

    Returns:
        ``{frame: (x1, y1, x2, y2)}`` until the tracker loses the object or it leaves the picture.

    Raises:
        AnonlabError: the first frame given is not ``start``.
    """
    W, H = size
    scale = min(1.0, max_side / max(W, H))
    if min(box[2] - box[0], box[3] - box[1]) * scale < 24:
        scale = 1.0

    def small(img):
        return img if scale == 1.0 else cv2.resize(img, (round(W * scale), round(H * scale)),
                                                  interpolation=cv2.INTER_AREA)

    frames = ((n, small(f)) for n, f in frames)
    if step < 0:
        frames = iter(list(frames)[::-1])
    keys: dict[int, tuple] = {}
    tracker = None
    for n, img in frames:
        if tracker is None:
            if n != start:
                raise AnonlabError("follow: the video did not yield the expected frame")
            tracker = cv2.TrackerCSRT_create()
            x1, y1, x2, y2 = (c * scale for c in box)
            tracker.init(img, (int(round(x1)), int(round(y1)), max(2, int(round(x2 - x1))),
                               max(2, int(round(y2 - y1)))))
            continue
        ok, (bx, by, bw, bh) = tracker.update(img)
        if not ok or bw <= 0 or bh <= 0:
            break
        nb = (bx / scale, by / scale, (bx + bw) / scale, (by + bh) / scale)
        cb = (max(nb[0], 0), max(nb[1], 0), min(nb[2], W), min(nb[3], H))
        area = (nb[2] - nb[0]) * (nb[3] - nb[1])
        if cb[2] <= cb[0] or cb[3] <= cb[1] or (cb[2] - cb[0]) * (cb[3] - cb[1]) < 0.3 * area:
            break  # left the picture
        keys[n] = cb
    return keys
