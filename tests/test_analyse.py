"""The shared analysis loop: coverage with detect_every > 1, gaps, cuts, chunk stitching.

Frames are generated: a grey texture with textured red (face) and blue (plate) squares; the test detector
finds them by colour, and reads the frame index from pixel (0, 0) so it can be made blind on chosen frames.
"""

import math

import cv2
import numpy as np
import pytest

from anonlab.evaluation.temporal import masking_interruptions
from anonlab.regions import EXTENDED, FACE, INTERPOLATED, PLATE, TRACKER, Regions, iou_matrix
from anonlab.settings import Settings
from anonlab.track.analyse import Analyser, analyse_frames, median_flow, stitch_chunks

W, H = 320, 200


def texture(seed, shape=(H, W), lo=60, hi=190):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(lo, hi, (shape[0] // 4, shape[1] // 4)).astype(np.float32)
    grey = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def make_frames(n_frames, objects, background_seed=0, cut_at=None):
    """objects: (label, x0, y0, vx, vy, size, first, last). Returns frames and true boxes."""
    rng = np.random.default_rng(1)
    patches = {}
    frames, truth = [], []
    for n in range(n_frames):
        frame = texture(background_seed if cut_at is None or n < cut_at else background_seed + 1)
        if cut_at is not None and n >= cut_at:
            frame[:, :, 1] = np.clip(frame[:, :, 1].astype(int) + 60, 0, 255)  # the other shot is greener
        for i, (label, x0, y0, vx, vy, size, first, last) in enumerate(objects):
            if not first <= n <= last:
                continue
            if i not in patches:
                strong = cv2.resize(rng.uniform(160, 255, (size // 3, size // 3)), (size, size)).astype(np.uint8)
                weak = rng.uniform(0, 70, (size, size, 2)).astype(np.uint8)
                order = (2, 0, 1) if label == FACE else (0, 1, 2)  # BGR: red faces, blue plates
                patches[i] = np.dstack([strong, weak[..., 0], weak[..., 1]])[:, :, np.argsort(order)]
            x, y = int(round(x0 + vx * n)), int(round(y0 + vy * n))
            frame[y:y + size, x:x + size] = patches[i]
            truth.append(Regions(xyxy=[[x, y, x + size, y + size]], label=[label], frame=[n], track_id=[i]))
        frame[0, 0] = (n % 256, n // 256, 0)
        frames.append(frame)
    return frames, Regions.merge(truth)


class ColourDetector:
    """Finds red squares (faces) and blue squares (plates); blind on ``blind`` frames; counts calls."""

    def __init__(self, blind=()):
        self.blind, self.calls = set(blind), []

    def __call__(self, frame):
        n = int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])
        self.calls.append(n)
        if n in self.blind:
            return Regions.empty()
        b, g, r = (frame[:, :, c].astype(int) for c in range(3))
        rows = []
        for label, mask in ((FACE, (r > 150) & (g < 90) & (b < 90)), (PLATE, (b > 150) & (g < 90) & (r < 90))):
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
            rows += [(x, y, x + w, y + h, label) for x, y, w, h, a in stats[1:] if a >= 30]
        rows = np.array(rows, np.float32).reshape(-1, 5)
        return Regions(xyxy=rows[:, :4], label=rows[:, 4].astype(int), score=np.full(len(rows), 0.9))


def coverage(regions, truth, n_frames, iou=0.5):
    """Per true box: covered by a region of its label with IoU >= iou in its frame."""
    per = regions.by_frame(n_frames)
    out = []
    for row in truth:
        r = per[int(row.frame[0])]
        r = r[r.label == row.label[0]]
        out.append(bool(len(r)) and iou_matrix(row.xyxy, r.xyxy).max() >= iou)
    return np.array(out)


def canonical(r):
    """Rows in an order that does not depend on track ids."""
    return r[np.lexsort((r.source, r.xyxy[:, 1], r.xyxy[:, 0], r.frame))]


def run(frames, detector, settings, **kw):
    return analyse_frames(enumerate(frames), detector, settings, n_frames=len(frames), **kw)


MOVING = [(FACE, 20, 30, 4.0, 2.0, 30, 0, 39), (PLATE, 250, 120, -3.0, 0.5, 24, 0, 39)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_detect_every_k_keeps_moving_objects_covered(k):
    frames, truth = make_frames(40, MOVING)
    det = ColourDetector()
    out = run(frames, det, Settings(detect_every=k))
    assert len(det.calls) == math.ceil(40 / k)
    assert coverage(out, truth, 40).all()
    propagated = out[out.source == TRACKER]
    assert len(propagated) == (40 - math.ceil(40 / k)) * 2
    if len(propagated):  # optical flow, not just the motion model: tight boxes
        assert coverage(propagated, truth[np.isin(truth.frame, propagated.frame)], 40, iou=0.7).all()
    assert len(np.unique(out.track_id)) == 2


def test_object_entering_between_full_detections_is_masked_from_its_first_frame():
    frames, truth = make_frames(20, [(FACE, 40, 40, 3.0, 0.0, 30, 7, 19)])
    out = run(frames, ColourDetector(), Settings(detect_every=5, lead=0))  # first seen at the keyframe 10
    assert coverage(out, truth, 20, iou=0.3).all()


def test_missed_detections_are_bridged_by_optical_flow():
    frames, truth = make_frames(30, MOVING[:1])
    out = run(frames, ColourDetector(blind={10, 11, 12}), Settings(detect_every=1))
    assert masking_interruptions(out) == 0
    assert out[out.frame.clip(10, 12) == out.frame].source.tolist() == [TRACKER] * 3
    assert len(np.unique(out.track_id)) == 1
    assert coverage(out, truth, 30, iou=0.7).all()


def test_where_flow_fails_too_the_box_is_held_and_grows():
    frames, truth = make_frames(30, MOVING[:1])
    rng = np.random.default_rng(0)
    for n in (10, 11, 12):  # the object's pixels turn to fresh noise: nothing for optical flow to follow
        x1, y1, x2, y2 = truth[truth.frame == n].xyxy[0].astype(int)
        frames[n][y1 - 5:y2 + 5, x1 - 5:x2 + 5] = rng.integers(0, 255, (y2 - y1 + 10, x2 - x1 + 10, 3))
    out = run(frames, ColourDetector(blind={10, 11, 12}), Settings(detect_every=1))
    held = out[(out.frame >= 10) & (out.frame <= 12)]
    assert held.source.tolist() == [TRACKER] * 3
    assert len(np.unique(out.track_id)) == 1
    last, end = out[out.frame == 9].xyxy[0], held.xyxy[-1]
    assert (end[2:] - end[:2] > (last[2:] - last[:2]) + 1).all()  # the longer unseen, the larger the mask
    # and it reaches where the object went on to (the motion model's guess), not only where it was last seen:
    # as drawn (grown by mask_scale) it hides the moving object
    from anonlab.evaluation.temporal import HIDDEN_SHARE, covered_share

    grown = held[2:].pad((Settings().mask_scale - 1) / 2).xyxy
    assert covered_share(truth[truth.frame == 12].xyxy, grown)[0] >= HIDDEN_SHARE
    assert masking_interruptions(out) == 0
    assert coverage(out, truth, 30, iou=0.3).all()


def test_a_box_carried_by_flow_grows_with_the_square_root_of_the_frames_since_its_detection():
    # flow's errors add up from frame to frame: a face followed by flow alone is masked wider the longer it
    # goes undetected, by HOLD_GROWTH a side times the square root of the frames (a held box: times the frames)
    from anonlab.track.flow import HOLD_GROWTH

    frames, truth = make_frames(30, [(FACE, 40, 60, 3.0, 1.0, 30, 0, 29)])
    out = run(frames, ColourDetector(blind=range(10, 30)), Settings(detect_every=1, trail=0))
    carried = out[out.frame >= 10]
    assert carried.source.tolist() == [TRACKER] * 20
    w = carried.xyxy[:, 2] - carried.xyxy[:, 0]
    expected = 30 * (1 + 2 * HOLD_GROWTH * np.sqrt(np.arange(1, 21)))
    assert np.abs(w - expected).max() < 2.5, w.round(1).tolist()
    assert coverage(carried, truth[truth.frame >= 10], 30, iou=0.7).all()



def test_a_carried_box_never_shrinks_below_the_size_last_seen_whole():
    # flow over a face that something slides in front of measures a shrinking scale (the occluder's points):
    # the box keeps the size the track was last seen whole, less SIZE_RATE a frame since, about its own centre
    from anonlab.track.analyse import SIZE_RATE

    a = Analyser(lambda frame: Regions.empty(), Settings())
    a._size = {7: (np.array([40.0, 60.0], np.float32), 10)}
    small = np.array([[100, 100, 110, 120]], np.float32)  # 10 × 20 px, centred on (105, 110)
    out = a._not_shrunk(15, [7], small)[0]
    floor = np.array([40.0, 60.0]) * (1 - SIZE_RATE) ** 5
    assert out[2] - out[0] == pytest.approx(floor[0], rel=1e-5)
    assert out[3] - out[1] == pytest.approx(floor[1], rel=1e-5)
    assert (out[:2] + out[2:]) / 2 == pytest.approx([105, 110])
    big = np.array([[0, 0, 80, 90]], np.float32)  # larger than the floor: left as it is
    assert np.array_equal(a._not_shrunk(15, [7], big), big)
    assert np.array_equal(a._not_shrunk(15, [8], small), small)  # a track never seen whole: nothing to keep

def test_a_track_is_followed_without_detection_for_max_gap_frames_at_most():
    frames, _ = make_frames(40, [(FACE, 100, 80, 1.0, 0.0, 30, 0, 39)])
    out = run(frames, ColourDetector(blind=range(10, 40)), Settings(detect_every=1, max_gap=6, trail=2))
    assert out[out.source == TRACKER].frame.tolist() == list(range(10, 16))
    assert out.frame.max() == 15 + 2


def test_scene_cut_resets_the_tracks():
    still = [(FACE, 100, 80, 0.0, 0.0, 30, 0, 29)]
    frames, _ = make_frames(30, still, cut_at=15)
    analyser = Analyser(ColourDetector(), Settings(detect_every=5))
    for n, f in enumerate(frames):
        analyser.feed(n, f)
    out = analyser.result()
    assert analyser.scene_cuts == [15]
    assert 15 in analyser.keyframes
    seen = out[out.source != EXTENDED]  # lead/trail may cross a cut: a few frames over-masked, never fewer
    before, after = set(seen[seen.frame < 15].track_id.tolist()), set(seen[seen.frame >= 15].track_id.tolist())
    assert len(before) == 1
    assert len(after) == 1
    assert not before & after
    assert not (out.source == INTERPOLATED).any()


def test_only_the_labels_asked_for_are_kept():
    frames, _ = make_frames(5, MOVING)
    out = run(frames, ColourDetector(), Settings(what=("plate",)))
    assert set(out.label.tolist()) == {PLATE}


def test_callbacks_see_every_frame():
    frames, _ = make_frames(6, MOVING)
    seen, ticks = [], []
    run(frames, ColourDetector(), Settings(detect_every=2), on_frame=lambda n, f, r: seen.append((n, len(r))),
        progress=ticks.append)
    assert seen == [(n, 2) for n in range(6)]
    assert ticks == [1] * 6


def test_a_jump_in_frame_numbers_forces_a_full_detection():
    frames, _ = make_frames(20, MOVING)
    det = ColourDetector()
    analyse_frames([(n, frames[n]) for n in (0, 1, 2, 10, 11, 12)], det, Settings(detect_every=5))
    assert det.calls == [0, 10]


@pytest.mark.parametrize("seam, blind", [(17, ()), (20, (19, 20, 21))])
def test_stitched_chunks_give_the_same_tracks_as_one_run(seam, blind):
    objects = MOVING + [(FACE, 10, 160, 0.0, -2.0, 26, 5, 33)]
    frames, truth = make_frames(40, objects)
    settings = Settings(detect_every=1, max_gap=5, lead=2, trail=2)
    whole = run(frames, ColourDetector(blind), settings)
    chunks = [(0, run(frames[:seam], ColourDetector(blind), settings)),
              (seam, analyse_frames(((n - seam, frames[n]) for n in range(seam, 40)), ColourDetector(blind), settings,
                                    n_frames=40 - seam))]  # the detector reads the global index from the pixels
    joined, whole = canonical(stitch_chunks(chunks, 40, settings)), canonical(whole)
    assert np.array_equal(joined.frame, whole.frame)
    if not blind:  # identical rows
        assert np.allclose(joined.xyxy, whole.xyxy)
        assert np.array_equal(joined.source, whole.source)
    else:  # detections missing at the seam: flow carries them in one run, interpolation across the seam here
        assert coverage(joined, truth, 40, iou=0.7).all()
    # the same partition of rows into tracks
    pairs = set(zip(joined.track_id.tolist(), whole.track_id.tolist()))
    assert len(pairs) == len(np.unique(whole.track_id)) == len(np.unique(joined.track_id)) == 3


def test_stitched_chunks_leave_no_frame_bare_with_detect_every():
    frames, truth = make_frames(40, MOVING)
    settings = Settings(detect_every=3)
    chunks = [(off, run(frames[off:off + 13], ColourDetector(), settings)) for off in (0, 13, 26)]
    joined = stitch_chunks(chunks, 40, settings)
    assert coverage(joined, truth, 40).all()
    assert len(np.unique(joined.track_id)) == 2


def test_median_flow_follows_translation_and_scale():
    base = texture(5, (240, 320))
    base = cv2.GaussianBlur(base, (3, 3), 0)
    prev = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)
    shifted = cv2.warpAffine(prev, np.float32([[1, 0, 3], [0, 1, -2]]), (320, 240), borderMode=cv2.BORDER_REFLECT)
    boxes = np.array([[100, 100, 140, 140], [200, 60, 260, 120]], np.float32)
    moved, ok = median_flow(prev, shifted, boxes)
    assert ok.all()
    assert np.allclose(moved, boxes + [3, -2, 3, -2], atol=0.3)
    zoom = cv2.warpAffine(prev, cv2.getRotationMatrix2D((120, 120), 0, 1.1), (320, 240))
    moved, ok = median_flow(prev, zoom, boxes[:1])
    assert ok.all()
    assert np.allclose(moved[0], [98, 98, 142, 142], atol=0.6)


def test_median_flow_gives_up_on_a_blank_frame():
    blank = np.full((120, 160), 128, np.uint8)
    moved, ok = median_flow(blank, blank, np.array([[40, 40, 80, 80]], np.float32))
    assert not ok.any()
    assert moved.tolist() == [[40, 40, 80, 80]]


def test_scene_cut_detector_sees_a_cut_but_not_a_pan():
    from anonlab.track.scenecut import SceneCutDetector

    wide = texture(3, (200, 640))
    pan = [wide[:, 10 * i:10 * i + 320] for i in range(20)]  # the camera pans over one scene
    other = texture(4, (200, 320))
    other[:, :, 2] = 230  # another shot, reddish
    d = SceneCutDetector()
    flags = [d.update(f) for f in pan + [other] * 3]
    assert flags == [False] * 20 + [True, False, False]


def test_scene_cut_detector_ignores_a_second_change_within_min_scene_len():
    from anonlab.track.scenecut import SceneCutDetector

    a, b = texture(5), texture(6)
    b[:, :, 0] = 240
    d = SceneCutDetector(min_scene_len=4)
    assert [d.update(f) for f in (a, b, a, a, a, a, a, b)] == [False, True, False, False, False, False, False, True]


import pytest as _pytest


@_pytest.mark.parametrize("k, fps, expected", [(3, 25.0, 3), (6, 25.0, 6), (6, 10.0, 2), (6, 1.0, 1), (3, 0.0, 1)])
def test_detect_every_capped_by_frame_rate(k, fps, expected):
    from anonlab.settings import Settings
    from anonlab.track.analyse import settings_for_rate

    assert settings_for_rate(Settings(detect_every=k), fps).detect_every == expected


class QuickColourDetector(ColourDetector):
    """A `ColourDetector` whose ``quick`` pass is counted apart."""

    def __init__(self, blind=()):
        super().__init__(blind)
        self.quick_calls = []

    def quick(self, frame):
        out = self(frame)
        self.quick_calls.append(self.calls[-1])
        return out


@pytest.mark.parametrize("fps, k, thorough", [(None, 3, list(range(0, 30, 3))), (24, 3, [0, 12, 24]),
                                              (6, 3, list(range(0, 30, 3))), (24, 1, [0, 12, 24])])
def test_thorough_detection_runs_twice_a_second_and_quick_between(fps, k, thorough):
    frames, truth = make_frames(30, MOVING)
    det = QuickColourDetector()
    out = run(frames, det, Settings(detect_every=k), fps=fps)
    keyframes = list(range(0, 30, k))
    assert det.calls == keyframes
    assert sorted(set(det.calls) - set(det.quick_calls)) == thorough
    assert coverage(out, truth, 30).all()


def test_a_cut_gets_a_thorough_detection():
    frames, _ = make_frames(30, [(FACE, 100, 80, 0.0, 0.0, 30, 0, 29)], cut_at=16)
    det = QuickColourDetector()
    analyser = Analyser(det, Settings(detect_every=2), fps=24)
    for n, f in enumerate(frames):
        analyser.feed(n, f)
    assert analyser.scene_cuts == [16]
    assert 16 in det.calls
    assert 16 not in det.quick_calls
    assert 18 in det.quick_calls


@pytest.mark.parametrize("k, blind, cut_at", [(1, (), None), (3, (9, 10, 11, 30), None), (2, (), 24), (5, (20,), 33)])
def test_settled_rows_equal_the_final_result(k, blind, cut_at):
    objects = MOVING + [(FACE, 10, 160, 0.0, -2.0, 26, 5, 33), (FACE, 200, 20, 1.0, 1.0, 22, 18, 44)]
    frames, _ = make_frames(60, objects, cut_at=cut_at)
    analyser = Analyser(ColourDetector(blind=blind), Settings(detect_every=k, max_gap=4, lead=2, trail=3))
    streamed, done = [], 0
    for n, frame in enumerate(frames):
        analyser.feed(n, frame)
        stop = analyser.settled()
        assert stop <= n + 1
        if stop - done >= 4:
            streamed.append(analyser.settled_rows(done, stop, len(frames)))
            done = stop
    assert done > 0  # some frames were settled before the end
    final = analyser.result(len(frames))
    part = final[final.frame < done]
    got = Regions.merge(streamed)
    assert got.frame.tolist() == part.frame.tolist()
    assert got.track_id.tolist() == part.track_id.tolist()
    assert np.array_equal(got.xyxy, part.xyxy)
    assert got.source.tolist() == part.source.tolist()
    with pytest.raises(ValueError, match="not settled yet"):
        analyser.settled_rows(0, analyser.settled() + 1, len(frames))


def test_nothing_settles_when_frames_come_out_of_order():
    frames, _ = make_frames(50, MOVING)
    analyser = Analyser(ColourDetector(), Settings(detect_every=1, max_gap=2, lead=1, trail=1))
    for n in list(range(40)) + [10]:
        analyser.feed(n, frames[n])
    assert analyser.settled() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flow_median_is_numpys(dtype):
    """The flow's short-array median (issue 18: numpy's overhead cost 2 ms a frame) gives np.median's value."""
    from anonlab.track.flow import _median

    rng = np.random.default_rng(0)
    for n in range(1, 80):
        x = (rng.normal(size=n) * 30).astype(dtype)
        assert _median(x) == np.median(x)
        assert np.asarray(_median(x)).dtype == np.median(x).dtype
    assert np.isnan(_median(np.array([1.0, np.nan], dtype)))


@pytest.mark.parametrize("k, per_second, every", [(3, 2.0, 4), (6, 1.0, 4), (6, 0.5, 8), (1, 30.0, 1)])
def test_thorough_passes_a_second_follow_the_settings(k, per_second, every):
    """Issue 18: the speed profiles' ``thorough_per_second`` sets how often a keyframe runs every model."""
    from anonlab.track.analyse import thorough_every

    settings = Settings(detect_every=k, thorough_per_second=per_second)
    assert thorough_every(settings, 25.0) == every

    class Counting:
        def __init__(self):
            self.calls = []

        def __call__(self, frame):
            self.calls.append("thorough")
            return Regions.empty()

        def quick(self, frame):
            self.calls.append("quick")
            return Regions.empty()

    det = Counting()
    a = Analyser(det, settings, fps=25.0, cut_detector=None, orient=False)
    frame = np.zeros((32, 32, 3), np.uint8)
    for n in range(k * every * 2):
        a.feed(n, frame)
    assert det.calls == (["thorough"] + ["quick"] * (every - 1)) * 2
