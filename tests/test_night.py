"""Dark frames: the dark check, the luminance-normalised view (pure pixel work), and `NightView` running the second
view only on dark frames and uniting it with the first (with a counting fake, and the real plate model on a
darkened frame of the sample clip)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab.detect import Detector, make_regions
from anonlab.detect import night as nm
from anonlab.detect.night import NightView, is_dark, mean_luma, night_view, unite
from anonlab.detect.plates import PlateDetector
from anonlab.regions import FACE, PLATE, Regions, iou_matrix


class BrightSquares(Detector):
    """Finds squares whose pixels are all at least 128 in every channel (a stand-in for a model that needs
    contrast); counts its calls and the quick ones."""

    name = "squares"
    default_thresh = 0.5

    def __init__(self, thresh=None):
        super().__init__(thresh)
        self.calls, self.quick_calls = 0, 0

    def detect(self, frame):
        self.calls += 1
        mask = (frame.min(axis=2) >= 128).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:] if area >= 16]
        return make_regions(np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), FACE,
                            frame.shape[1], frame.shape[0])

    def detect_quick(self, frame):
        self.quick_calls += 1
        return self.detect(frame)


def dark_frame(level: int = 30, square: int = 60) -> np.ndarray:
    """A 240x320 frame of luma ``level`` with a 40 px square of luma ``square`` at (100, 80)-(140, 120)."""
    frame = np.full((240, 320, 3), level, np.uint8)
    frame[80:120, 100:140] = square
    return frame


def test_mean_luma_and_the_dark_line():
    assert mean_luma(np.full((90, 160, 3), 40, np.uint8)) == pytest.approx(40, abs=0.5)
    assert is_dark(np.full((720, 1280, 3), int(nm.DARK_MEAN) - 2, np.uint8))
    assert not is_dark(np.full((720, 1280, 3), int(nm.DARK_MEAN) + 2, np.uint8))
    assert is_dark(np.full((720, 1280, 3), 100, np.uint8), dark=120)


def test_night_view_is_pure_and_keeps_shape_and_type():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 60, (37, 53, 3), np.uint8)
    before = frame.copy()
    out = night_view(frame)
    assert out.shape == frame.shape
    assert out.dtype == np.uint8
    assert np.array_equal(frame, before)  # the input is not touched
    assert np.array_equal(out, night_view(frame))
    for bad in (frame.astype(np.float32), frame[:, :, 0], np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError, match="night_view takes uint8"):
            night_view(bad)


def test_night_view_stretches_the_frames_own_range_and_keeps_grey_grey():
    out = night_view(dark_frame(20, 60))
    assert out[10, 10].max() < 30
    assert out[100, 120].min() > 200  # background stays dark, the square becomes bright
    assert np.ptp(out[100, 120].astype(int)) <= 2  # chroma unchanged: grey stays grey
    # a frame with almost no range is not stretched more than MAX_STRETCH (noise is not made into contrast)
    flat = np.full((90, 160, 3), 10, np.uint8)
    flat[40:50, 70:90] = 12
    assert int(night_view(flat, denoise=False)[45, 80, 0]) - int(night_view(flat, denoise=False)[0, 0, 0]) \
        <= 2 * nm.MAX_STRETCH + 1


def test_the_median_removes_single_pixel_noise():
    frame = dark_frame(20, 60)
    frame[10, 10] = 255
    assert night_view(frame)[10, 10].max() < 30
    assert night_view(frame, denoise=False)[10, 10].max() == 255


def test_night_view_runs_only_on_dark_frames_and_adds_what_it_finds():
    inner = BrightSquares()
    det = NightView(inner)
    bright = dark_frame(90, 200)
    assert len(det(bright)) == 1
    assert inner.calls == 1  # a normal frame: the second view is not run
    inner.calls = 0
    dark = dark_frame(20, 60)
    assert len(inner(dark)) == 0
    found = det(dark)
    assert inner.calls == 3  # the plain call above, then both views
    assert len(found) == 1
    assert iou_matrix(found.xyxy, np.array([[100, 80, 140, 120]], np.float32))[0, 0] > 0.8
    det.quick(dark)
    assert inner.quick_calls == 2  # the quick pass on both views too
    inner.quick_calls = 0
    det.quick(bright)
    assert inner.quick_calls == 1


def test_night_view_passes_thresholds_and_attributes_through():
    inner = BrightSquares(thresh=0.5)
    det = NightView(inner)
    assert det.name == "squares"
    assert det.label == FACE
    assert det.thresh == 0.5
    low = det.with_threshold(0.2)
    assert isinstance(low, NightView)
    assert low.detector.thresh == 0.2
    assert low.thresh == 0.2
    assert det.detector.thresh == 0.5  # a copy
    assert det.lowered(0.5).thresh == 0.25
    assert det.quick_calls == 0  # attributes of the wrapped detector are read through
    with pytest.raises(AttributeError, match="no_such_attribute"):
        det.no_such_attribute


def test_unite_fuses_overlaps_and_keeps_the_rest():
    a = Regions(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.9, 0.5], label=[PLATE, PLATE])
    b = Regions(xyxy=[[1, 0, 11, 10], [100, 100, 120, 110]], score=[0.6, 0.7], label=[PLATE, PLATE])
    out = unite(a, b)
    assert len(out) == 3
    assert unite(a, Regions.empty()) is a
    assert unite(Regions.empty(), b) is b


def test_a_dark_plate_is_found_only_with_the_night_view():
    from anonlab.media import VideoReader

    with VideoReader(Path(__file__).resolve().parents[1] / "sample_media" / "street.mp4") as reader:
        frame = reader.get(0)
    plates = PlateDetector()
    want = plates(frame)
    assert len(want) == 1
    # a street at night: gamma 2.2 and x0.12 (mean luma about 5), sensor noise sigma 6, a little blur (seeded)
    x = 0.12 * (frame.astype(np.float32) / 255) ** 2.2
    x = cv2.GaussianBlur(x, (0, 0), 1.0) + np.random.default_rng(0).normal(0, 6 / 255, x.shape).astype(np.float32)
    dark = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    assert is_dark(dark)
    assert len(plates(dark)) == 0
    found = NightView(plates)(dark)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, want.xyxy)[0, 0] > 0.5


class Faint(Detector):
    """Sees one box at (10, 10, 30, 30) with score 0.3 on any frame, kept at its threshold."""

    name = "faint"
    default_thresh = 0.5

    def detect(self, frame):
        keep = int(0.3 >= self.thresh)
        return make_regions(np.array([[10, 10, 30, 30]] * keep, np.float32).reshape(-1, 4), np.full(keep, 0.3),
                            PLATE, frame.shape[1], frame.shape[0])


def test_the_threshold_factor_applies_to_dark_frames_only():
    dark, bright = dark_frame(20, 60), dark_frame(90, 200)
    assert len(NightView(Faint())(dark)) == 0
    lowered = NightView(Faint(), factor=0.5)
    assert len(lowered(dark)) == 1
    assert len(lowered.quick(dark)) == 1
    assert len(lowered(bright)) == 0
    assert len(lowered.quick(bright)) == 0
    assert lowered.thresh == 0.5  # the threshold a caller sees is the daylight one
    higher = lowered.with_threshold(0.7)
    assert higher.in_dark.thresh == pytest.approx(0.35)
    assert len(higher(dark)) == 0


def test_grey_frames_are_told_from_colour_ones():
    from anonlab.detect.night import is_grey

    rng = np.random.default_rng(3)
    colour = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    noisy = np.clip(grey.astype(np.int16) + rng.integers(-1, 2, grey.shape), 0, 255).astype(np.uint8)  # decoded B/W
    fog = np.clip(grey.astype(np.int16) + np.array([0, 6, 14]), 0, 255).astype(np.uint8)  # a dull but coloured scene
    assert is_grey(grey) and is_grey(noisy)
    assert not is_grey(colour) and not is_grey(fog)


def test_the_grey_factor_applies_to_grey_frames_only():
    bright = dark_frame(90, 200)
    tinted = bright.copy()
    tinted[..., 2] = np.clip(tinted[..., 2].astype(np.int16) + 40, 0, 255)
    grey = NightView(Faint(), grey_factor=0.5)
    assert len(grey(bright)) == 1 and len(grey.quick(bright)) == 1  # the test frame is grey
    assert len(grey(tinted)) == 0 and len(NightView(Faint())(bright)) == 0
    assert grey.thresh == 0.5
    dark = NightView(Faint(), factor=0.8, grey_factor=0.7)  # both: the factors multiply
    assert dark.in_grey_dark.thresh == pytest.approx(0.28)
    assert len(dark(dark_frame(20, 60))) == 1


def test_the_face_detector_lowers_its_threshold_on_grey_frames_only():
    from anonlab.detect import build_detector
    from anonlab.detect.build import FACE_GREY_FACTOR
    from anonlab.settings import Settings

    faces = build_detector(Settings(what=("face",)))
    assert faces.grey_factor == FACE_GREY_FACTOR < 1.0
    assert faces.in_grey.thresh == pytest.approx(faces.thresh * FACE_GREY_FACTOR)


def test_the_grey_benchmark_keeps_boxes_as_the_detector_would_at_each_factor():
    """`benchmarks/eval_grey.py` replays thresholds on cached boxes: it must keep what `keep_by_size` keeps."""
    import sys

    from anonlab.detect.fusion import DEFAULT_THRESH, keep_by_size

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import eval_grey

    rng = np.random.default_rng(5)
    xy, wh = rng.uniform(0, 300, (200, 2)), rng.uniform(4, 40, (200, 2))
    scores = rng.uniform(0.05, 0.4, 200)
    regions = Regions(xyxy=np.hstack([xy, xy + wh]).astype(np.float32), score=scores.astype(np.float32),
                      label=np.full(200, FACE))
    row = {"image": "x", "boxes": [("face", *map(float, b), float(s)) for b, s in zip(np.hstack([xy, wh]), scores)]}
    for factor in (0.6, 0.87, 1.0):
        kept = eval_grey.at_factor([row], factor)[0]["boxes"]
        assert len(kept) == len(keep_by_size(regions, DEFAULT_THRESH * factor))
