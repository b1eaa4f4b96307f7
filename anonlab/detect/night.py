"""Dark frames: a second, luminance-normalised view of a frame the detectors see too dark, united with the first.

At night a plate or a face is a few grey levels above sensor noise: the models were trained on daylight
photos and miss what is still there (plates on night-like copies of the evaluation photos: recall 0.83
against 0.98, see ``models/README.md`` and ``benchmarks/eval_night.py``). `night_view` makes the copy a
camera's night mode would (a 3×3 median against the sensor noise the gain would amplify, then the luma
stretched between its low and high percentiles: the frame's own range, not a fixed curve), and `NightView`
runs the same detector on it only when `is_dark` (mean luma of a thumbnail below `DARK_MEAN`): a frame of
normal exposure pays one thumbnail (< 1 ms), a dark one a second detection. The two views' boxes are fused
(`unite`), so the first view's finds are never lost: the copy can only add.

The pixel work is pure functions (uint8 BGR in, uint8 BGR out) so benchmarks apply exactly what the detector
does.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np

from anonlab.detect.base import Detector
from anonlab.regions import Regions, merge_regions

#: A frame whose thumbnail's mean luma (0-255) is below this is dark. The evaluation photos (faces and plates,
#: daylight and indoor) have a mean luma of 58-63 at their 5th percentile; night-like copies of them 35-51 at
#: their 95th (`benchmarks/eval_night.py` prints both).
DARK_MEAN = 48.0
#: The luma stretch maps these percentiles of the thumbnail's luma to 0 and 255 (the extremes are left to
#: lamps and headlights, which saturate).
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.5
#: The stretch never multiplies contrast by more than this (a black frame is not turned into noise).
MAX_STRETCH = 8.0
#: Thumbnail size for the statistics (W, H): the statistics of a frame, not of its detail.
THUMB = (160, 90)
#: Boxes of the two views overlapping by more than this IoU are one object (weighted box fusion).
UNITE_IOU = 0.4


def _thumb_luma(frame: np.ndarray) -> np.ndarray:
    small = cv2.resize(frame, THUMB, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)


def mean_luma(frame: np.ndarray) -> float:
    """Mean luma (0-255) of a ``uint8 (H, W, 3)`` BGR frame, on a `THUMB` thumbnail."""
    return float(_thumb_luma(frame).mean())


def is_dark(frame: np.ndarray, dark: float = DARK_MEAN) -> bool:
    """Whether a ``uint8 (H, W, 3)`` BGR frame is dark: `mean_luma` below ``dark``."""
    return mean_luma(frame) < dark


def night_view(frame: np.ndarray, denoise: bool = True) -> np.ndarray:
    """The luminance-normalised copy of a ``uint8 (H, W, 3)`` BGR frame: same shape and dtype.

    A 3×3 median (with ``denoise``: sensor noise, which the stretch would amplify as much as the detail), then
    the luma (YCrCb's Y) stretched linearly so the thumbnail's `LOW_PERCENTILE` and `HIGH_PERCENTILE` become
    0 and 255, by at most `MAX_STRETCH`; chroma unchanged.

    Raises:
        ValueError: a frame that is not ``uint8`` with three channels.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"night_view takes uint8 (H, W, 3) frames; got {frame.dtype} {frame.shape}")
    lo, hi = np.percentile(_thumb_luma(frame), (LOW_PERCENTILE, HIGH_PERCENTILE))
    gain = min(255.0 / max(float(hi - lo), 1.0), MAX_STRETCH)
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * gain + 0.5, 0, 255).astype(np.uint8)
    if denoise:
        frame = cv2.medianBlur(frame, 3)
    ycc = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)
    ycc[:, :, 0] = cv2.LUT(ycc[:, :, 0], lut)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def unite(first: Regions, second: Regions, iou: float = UNITE_IOU) -> Regions:
    """The boxes of both views, those of one label overlapping by IoU > ``iou`` fused (weighted box fusion)."""
    if not len(second):
        return first
    if not len(first):
        return second
    return merge_regions(Regions.merge([first, second]), iou=iou, method="wbf")


class NightView(Detector):
    """``detector`` on the frame, and when the frame `is_dark` on its `night_view` too, the boxes united.

    Args:
        detector: any detector (the faces' `FusedFaces`, the plates' `MultiScalePlates`...).
        dark: the mean-luma line of `is_dark` (0-255).
        factor: on a dark frame both views run at ``factor`` times the threshold (``detector.lowered``): a model
            scores what it sees in the dark lower, and false boxes are rarer there (see ``models/README.md``).

    Threshold changes and the quick pass go to ``detector``; the dark check is the same for both passes.
    """

    def __init__(self, detector: Detector, dark: float = DARK_MEAN, factor: float = 1.0) -> None:
        self.detector, self.dark, self.factor = detector, float(dark), float(factor)
        self.name, self.label, self.models = detector.name, detector.label, detector.models
        self._sync()

    def _sync(self) -> None:
        self.thresh, self.default_thresh = self.detector.thresh, self.detector.default_thresh
        self.in_dark = self.detector if self.factor == 1.0 else self.detector.lowered(self.factor)

    def detect(self, frame: np.ndarray) -> Regions:
        if not is_dark(frame, self.dark):
            return self.detector(frame)
        return unite(self.in_dark(frame), self.in_dark(night_view(frame)))

    def detect_quick(self, frame: np.ndarray) -> Regions:
        if not is_dark(frame, self.dark):
            return self.detector.quick(frame)
        return unite(self.in_dark.quick(frame), self.in_dark.quick(night_view(frame)))

    def with_threshold(self, thresh: float) -> "NightView":
        out = copy.copy(self)
        out.detector = self.detector.with_threshold(thresh)
        out._sync()
        return out

    def lowered(self, factor: float = 0.5) -> "NightView":
        out = copy.copy(self)
        out.detector = self.detector.lowered(factor)
        out._sync()
        return out

    def __getattr__(self, name: str):
        # what callers read from the wrapped detector (a plate detector's ``yolo``, a face fusion's members)
        if name in ("detector", "in_dark"):
            raise AttributeError(name)
        return getattr(self.detector, name)

    def __repr__(self) -> str:
        return f"NightView({self.detector!r}, dark={self.dark:g}, factor={self.factor:g})"
