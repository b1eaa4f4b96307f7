import sys

import numpy as np
import pytest

from anonlab.errors import AnonlabError
from anonlab.render.mask import mask_boxes
from anonlab.regions import Regions
from anonlab.settings import Settings

moviepy = pytest.importorskip("moviepy")

from anonlab.render.fx import AnonymizeEffect, anonymize_clip  # noqa: E402

H, W, FPS = 60, 80, 10


def pattern(t):
    """An RGB frame: noise, plus a pure red square whose x position encodes the frame index."""
    n = int(t * FPS + 1e-5)
    frame = np.random.default_rng(n).integers(0, 200, (H, W, 3), dtype=np.uint8)
    frame[10:20, 5 + 5 * n : 15 + 5 * n] = (255, 0, 0)
    return frame


def clip(duration=1.0):
    return moviepy.VideoClip(frame_function=pattern, duration=duration).with_fps(FPS)


def red_square_detector(frame_bgr):
    """Finds the red square; only works if it is handed BGR (red is channel 2)."""
    ys, xs = np.nonzero((frame_bgr[..., 2] == 255) & (frame_bgr[..., 0] == 0))
    if not len(xs):
        return Regions.empty()
    return Regions(xyxy=[[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])


def test_effect_is_a_moviepy_effect():
    eff = AnonymizeEffect(Regions.empty())
    assert isinstance(eff, moviepy.Effect)
    assert isinstance(eff.copy(), AnonymizeEffect)


def test_regions_by_frame_index():
    # frame n has a box at x = 40 + n; mask solid so the result is exact
    r = Regions(xyxy=[[40 + n, 30, 50 + n, 50] for n in range(10)], frame=list(range(10)), track_id=[1] * 10)
    masked = clip().with_effects([AnonymizeEffect(r, Settings(mask="solid", mask_scale=1.0))])
    for n in (0, 3, 9):
        t = n / FPS
        out, src = masked.get_frame(t), pattern(t)
        assert (out[30:50, 40 + n : 50 + n] == 0).all()
        # a face's mask reaches a little below its box (to the chin): the masker's own box says how far
        x1, y1, x2, y2 = mask_boxes(r[r.frame == n], Settings(mask="solid", mask_scale=1.0), W, H)[0]
        assert y2 > 50
        keep = np.ones((H, W), bool)
        keep[y1:y2, x1:x2] = False
        assert np.array_equal(out[keep], src[keep])
    assert masked.duration == 1.0
    assert masked.fps == FPS


def test_detector_gets_bgr_and_result_is_rgb():
    masked = anonymize_clip(clip(), detector=red_square_detector, settings=Settings(mask="blur"))
    for n in (0, 4):
        t = n / FPS
        out, src = masked.get_frame(t), pattern(t)
        x0 = 5 + 5 * n
        assert not np.array_equal(out[10:20, x0 : x0 + 10], src[10:20, x0 : x0 + 10])  # found and masked
        # blur of a pure red square on noise stays reddish in RGB order: channels were swapped back
        assert out[15, x0 + 5, 0] > out[15, x0 + 5, 2]
        assert np.array_equal(out[40:], src[40:])


def test_callable_regions_and_image_transform():
    eff = AnonymizeEffect(lambda t: Regions(xyxy=[[0, 0, 20, 20]]), Settings(mask="solid", mask_scale=1.0))
    out = clip().with_effects([eff]).get_frame(0.5)
    assert (out[:20, :20] == 0).all()
    still = AnonymizeEffect(detector=red_square_detector, settings=Settings(mask="solid"))
    masked = clip().image_transform(still.mask_rgb)
    assert (masked.get_frame(0)[10:20, 5:15] == 0).all()


def test_input_frame_untouched_and_dtype():
    eff = AnonymizeEffect(Regions(xyxy=[[0, 0, 30, 30]]), Settings(mask="pixelate"), fps=FPS)
    frame = pattern(0)
    before = frame.copy()
    out = eff.mask_rgb(frame, 0.0)
    assert np.array_equal(frame, before)
    assert out.dtype == np.uint8
    assert out.shape == frame.shape
    out = eff.mask_rgb(frame.astype(np.float64), 0.0)  # moviepy clips may hand over floats
    assert out.dtype == np.uint8


def test_errors(monkeypatch):
    with pytest.raises(AnonlabError, match="regions, a detector"):
        AnonymizeEffect()
    with pytest.raises(AnonlabError, match="Regions or a function"):
        AnonymizeEffect(regions=[[0, 0, 1, 1]])
    eff = AnonymizeEffect(Regions(xyxy=[[0, 0, 1, 1]]))
    with pytest.raises(AnonlabError, match="fps"):
        eff.regions_at(0.0)
    monkeypatch.setitem(sys.modules, "moviepy", None)  # as if it were not installed
    with pytest.raises(AnonlabError, match=r"pip install 'anonlab\[moviepy\]'"):
        AnonymizeEffect(Regions.empty())


def test_anonlab_imports_without_moviepy(monkeypatch):
    monkeypatch.setitem(sys.modules, "moviepy", None)
    monkeypatch.delitem(sys.modules, "anonlab.render.fx", raising=False)
    import anonlab.render.fx  # noqa: F401  (the module itself never imports moviepy)
