"""Faces that fill the frame are masked whole: the close-up view of `FusedFaces` and `absorb`.

The real case is the sample portrait cropped to a close-up (issue 15: one box over ~60 % of the face, an eye and
the chin bare); the face box was set by eye on the upright 512x600 photo (see benchmarks/eval_closeups.py).
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab.detect.fusion import CLOSEUP_MAX_SCALE, CLOSEUP_SIDE, CLOSEUP_SMALL_SIDE, FusedFaces, absorb
from anonlab.render.mask import mask_boxes
from anonlab.regions import Regions
from anonlab.settings import Settings

PORTRAIT = Path(__file__).resolve().parents[1] / "sample_media" / "portrait.jpg"
FACE = (160, 125, 370, 340)  # brow to chin, ear to ear, in the upright photo


def test_absorb_joins_the_parts_of_a_large_face_and_leaves_other_faces():
    parts = Regions(xyxy=[[100, 50, 300, 200], [120, 180, 280, 330], [600, 40, 640, 80]], score=[0.8, 0.4, 0.9])
    whole = Regions(xyxy=[[90, 40, 310, 340]], score=[0.6])
    out = absorb(parts, whole)
    assert len(out) == 2
    assert out.xyxy[0].tolist() == [600, 40, 640, 80]  # another face: untouched
    assert out.xyxy[1].tolist() == [90, 40, 310, 340]
    assert out.score[1] == pytest.approx(0.8)


def test_absorb_keeps_a_looser_box_of_the_same_face():
    loose = Regions(xyxy=[[80, 30, 320, 350]], score=[0.9])
    out = absorb(loose, Regions(xyxy=[[90, 40, 310, 340]], score=[0.7]))
    assert len(out) == 1
    assert out.xyxy[0].tolist() == [80, 30, 320, 350]


def test_absorb_with_nothing_on_either_side():
    r = Regions(xyxy=[[0, 0, 5, 5]])
    assert absorb(r, Regions.empty()) == r
    assert absorb(Regions.empty(), r) == r


class Counting:
    """A stand-in member that records the frame sizes it was asked to look at."""

    name, label, models, default_thresh, thresh = "counting", 0, [], 0.1, 0.1

    def __init__(self):
        self.sizes = []

    def with_threshold(self, t):
        return self

    def __call__(self, frame):
        self.sizes.append(frame.shape[:2])
        return Regions.empty()


@pytest.mark.parametrize("shape, runs", [((300, 400), False), ((360, 640), False), ((720, 1280), True)])
def test_the_close_up_view_runs_only_on_frames_too_large_to_see_a_close_up_whole(shape, runs):
    member = Counting()
    fused = FusedFaces([member], [0.0])
    fused.detect(np.zeros((*shape, 3), np.uint8))
    small = [s for s in member.sizes if s != shape]
    assert bool(small) == runs == (CLOSEUP_SIDE / min(shape) <= CLOSEUP_MAX_SCALE)
    if runs:  # the thorough pass sees it at two sizes, the quick pass at the larger one only
        assert [min(s) for s in small] == [CLOSEUP_SIDE, CLOSEUP_SMALL_SIDE]
        member.sizes.clear()
        fused.quick(np.zeros((*shape, 3), np.uint8))
        assert [min(s) for s in member.sizes if s != shape] == [CLOSEUP_SIDE]


def test_a_small_frame_that_the_members_enlarge_is_seen_at_its_own_size():
    from anonlab.detect.tiling import AutoScale

    member = Counting()
    fused = FusedFaces([AutoScale(member, max_scale=2.0)], [0.0])
    fused.detect(np.zeros((300, 400, 3), np.uint8))
    # the 2x pass, then the close-up views, not enlarged
    assert member.sizes == [(600, 800), (CLOSEUP_SIDE, 384), (CLOSEUP_SMALL_SIDE, 213)]


def portrait_closeup(fill, height):
    from anonlab.media import open_media

    media = open_media(PORTRAIT)
    photo = next(iter(media.frames()))[1]
    media.close()
    x1, y1, x2, y2 = FACE
    ch = (y2 - y1) / fill
    cw = max(ch, (x2 - x1) / fill)
    cx1, cy1 = int(max(0, (x1 + x2) / 2 - cw / 2)), int(max(0, (y1 + y2) / 2 - ch / 2))
    crop = photo[cy1:int(cy1 + ch), cx1:int(cx1 + cw)]
    s = height / crop.shape[0]
    crop = cv2.resize(crop, (int(round(crop.shape[1] * s)), height), interpolation=cv2.INTER_CUBIC)
    return crop, np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32) * s


@pytest.mark.parametrize("fill, height", [(0.85, 720), (1.0, 720), (1.0, 400)])
def test_a_close_up_of_the_portrait_is_masked_whole(fill, height):
    from anonlab.detect import build_detector

    frame, face = portrait_closeup(fill, height)
    regions = build_detector(Settings(what=("face",)))(frame)
    masked = np.zeros(frame.shape[:2], bool)
    for x1, y1, x2, y2 in mask_boxes(regions, Settings(), frame.shape[1], frame.shape[0]).tolist():
        masked[y1:y2, x1:x2] = True
    x1, y1, x2, y2 = np.round(face).astype(int)
    share = masked[max(0, y1):y2, max(0, x1):x2].mean()
    assert share >= 0.99, share
    assert len(regions) == 1  # one face, one box: the parts the full-size pass found were absorbed
