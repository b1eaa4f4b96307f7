"""Dark frames: a second, luminance-normalised view of a frame the detectors see too dark, united with the first.

At night a plate or a face is a few grey levels above sensor noise: the models were trained on daylight
photos and miss what is still there (plates on night-like copies of the evaluation photos: recall 0.83
against 0.98, see ``models/README.md`` and ``benchmarks/eval_night.py``). `night_view` makes the copy a
camera's night mode would (a 3×3 median against the sensor noise the gain would amplify, then the luma
stretched between its low and high percentiles: the frame's own range, not a fixed curve), and `NightView`
runs the same detector on it only when `is_dark` (mean luma of a thumbnail below `DARK_MEAN`): a frame of
normal exposure pays one thumbnail (< 1 ms), a dark one a second detection. The two views' boxes are fused
(`unite`), so the first view's finds are never lost: the copy can only add.

Grey frames (black-and-white footage, a grey scan, a 16-bit grey TIFF's 8-bit view) are the other look the
models were not trained on: they score faces lower there and fire less on clutter (the evaluation faces made
grey: recall 0.918, precision 0.736 against 0.935 and 0.675 in colour). Where `NightView` has a
``grey_factor``, a frame that `is_grey` runs at that factor times the threshold, chosen so precision on grey
copies equals precision in colour (`benchmarks/eval_grey.py` prints the curve).

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


#: A frame is grey when, on a sample of its pixels, the 99th percentile of (highest - lowest channel) is at
#: most this many levels: black-and-white video decoded to BGR keeps a level or two of chroma noise, while the
#: least colourful daylight scenes (fog, a grey street) still spread 10 levels and more.
GREY_SPREAD = 4


def is_grey(frame: np.ndarray, spread: int = GREY_SPREAD) -> bool:
    """Whether a ``uint8 (H, W, 3)`` BGR frame carries no colour (every 8th pixel each way; < 1 ms at 1080p)."""
    sample = frame[::8, ::8].reshape(-1, 3)
    if not len(sample):
        return False
    chroma = sample.max(axis=1).astype(np.int16) - sample.min(axis=1)
    return float(np.percentile(chroma, 99)) <= spread


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
        grey_factor: a frame that `is_grey` runs at this factor times the threshold (times ``factor`` too
            where it is also dark); 1: grey frames as any other.

    Threshold changes and the quick pass go to ``detector``; the dark and grey checks are the same for both
    passes.
    """

    def __init__(self, detector: Detector, dark: float = DARK_MEAN, factor: float = 1.0,
                 grey_factor: float = 1.0) -> None:
        self.detector, self.dark, self.factor = detector, float(dark), float(factor)
        self.grey_factor = float(grey_factor)
        self.name, self.label, self.models = detector.name, detector.label, detector.models
        self._sync()

    def _sync(self) -> None:
        self.thresh, self.default_thresh = self.detector.thresh, self.detector.default_thresh
        self.in_dark = self.detector if self.factor == 1.0 else self.detector.lowered(self.factor)
        self.in_grey = self.detector if self.grey_factor == 1.0 else self.detector.lowered(self.grey_factor)
        self.in_grey_dark = (self.in_dark if self.grey_factor == 1.0
                             else self.detector.lowered(self.factor * self.grey_factor))

    def _views(self, frame: np.ndarray) -> tuple[Detector, bool]:
        """The detector for this frame's look, and whether it is dark (the night view is then added)."""
        grey = self.grey_factor != 1.0 and is_grey(frame)
        if is_dark(frame, self.dark):
            return (self.in_grey_dark if grey else self.in_dark), True
        return (self.in_grey if grey else self.detector), False

    def detect(self, frame: np.ndarray) -> Regions:
        detector, dark = self._views(frame)
        return unite(detector(frame), detector(night_view(frame))) if dark else detector(frame)

    def detect_quick(self, frame: np.ndarray) -> Regions:
        detector, dark = self._views(frame)
        return unite(detector.quick(frame), detector.quick(night_view(frame))) if dark else detector.quick(frame)

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
        if name in ("detector", "in_dark", "in_grey", "in_grey_dark", "grey_factor"):
            raise AttributeError(name)
        return getattr(self.detector, name)

    def __repr__(self) -> str:
        grey = f", grey_factor={self.grey_factor:g}" if self.grey_factor != 1.0 else ""
        return f"NightView({self.detector!r}, dark={self.dark:g}, factor={self.factor:g}{grey})"
