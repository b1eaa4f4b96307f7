"""Content upside down or sideways without metadata: boxes turned exactly, the upright turn chosen, shots oriented.

The test detector finds "faces" only when they stand upright: red squares with a dark band across their top
(hair) and none across their bottom, so a turned frame hides them from it exactly as a turned photo hides faces
from the real models.
"""

import cv2
import numpy as np
import pytest

from anonlab.detect import Detector
from anonlab.detect.orientation import choose_turn, evidence, turn_boxes, turn_frame, unturn_boxes
from anonlab.regions import FACE, PLATE, Regions
from anonlab.settings import Settings
from anonlab.track.analyse import Analyser


def block_mask(w, h, box):
    m = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, -1])
def test_turned_boxes_land_on_the_turned_pixels(turns):
    rng = np.random.default_rng(turns + 10)
    w, h = 37, 23
    for _ in range(20):
        x1, y1 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        box = (x1, y1, int(rng.integers(x1 + 1, w + 1)), int(rng.integers(y1 + 1, h + 1)))
        turned = np.rot90(block_mask(w, h, box), turns)
        ys, xs = np.nonzero(turned)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert turn_boxes(np.array([box]), turns, w, h)[0].tolist() == expected
        assert unturn_boxes(np.array([expected]), turns, w, h)[0].tolist() == list(box)


def test_turn_frame_is_numpy_rot90():
    a = np.arange(24).reshape(4, 6)
    assert np.array_equal(turn_frame(a, 1), np.rot90(a))
    assert np.array_equal(turn_frame(a, 6), np.rot90(a, 2))


def faces_photo(turn=0, size=(240, 160), spots=((30, 30), (150, 80)), side=36, bg=(128, 128, 128)):
    """A plain frame with upright 'faces' (red, dark band on top), then turned ``turn`` quarter turns."""
    frame = np.empty((size[1], size[0], 3), np.uint8)
    frame[:] = bg
    boxes = []
    for x, y in spots:
        frame[y:y + side, x:x + side] = (40, 40, 220)
        frame[y:y + side // 4, x:x + side] = (20, 20, 60)  # hair on top
        boxes.append((x, y, x + side, y + side))
    turned = np.ascontiguousarray(turn_frame(frame, turn))
    return turned, turn_boxes(np.array(boxes, np.float32), turn, *size)


class UprightFaces(Detector):
    """Red blobs whose dark band is at the top score 0.9; turned ones score 0.3 (a detector's unsure guess)."""

    name = "upright"

    def __init__(self):
        super().__init__(0.1)
        self.models, self.calls = [], 0

    def detect(self, frame):
        self.calls += 1
        b, g, r = (frame[:, :, c].astype(int) for c in range(3))
        reddish = ((r > 150) & (g < 90)) | ((r < 90) & (r > 40) & (g < 40))  # face or hair
        n, _, stats, _ = cv2.connectedComponentsWithStats(reddish.astype(np.uint8))
        rows = []
        for x, y, w, h, area in stats[1:]:
            if area < 100:
                continue
            top, bottom = frame[y:y + max(1, h // 8), x:x + w, 2].mean(), frame[y + h - max(1, h // 8):y + h, x:x + w, 2].mean()
            left, right = frame[y:y + h, x:x + max(1, w // 8), 2].mean(), frame[y:y + h, x + w - max(1, w // 8):x + w, 2].mean()
            upright = top < 100 and bottom > 150 and left > 150 and right > 150
            rows.append((x, y, x + w, y + h, 0.9 if upright else 0.3))
        rows = np.array(rows, np.float32).reshape(-1, 5)
        return Regions(xyxy=rows[:, :4], score=rows[:, 4], label=np.full(len(rows), FACE))


def test_evidence_counts_only_clear_faces():
    r = Regions(xyxy=np.zeros((4, 4)), score=[0.9, 0.3, 0.45, 0.7], label=[FACE, FACE, FACE, PLATE])
    assert evidence(r) == pytest.approx(0.4)
    assert evidence(Regions.empty()) == 0.0


def test_choose_turn_keeps_the_clearest_turn_and_the_frame_as_it_is_on_a_tie():
    clear = Regions(xyxy=[[0, 0, 9, 9]], score=[0.95])
    vague = Regions(xyxy=[[0, 0, 9, 9]] * 3, score=[0.4] * 3)
    turn, regions, passes = choose_turn(lambda t: clear if t == 2 else vague)
    assert (turn, passes) == (2, 4)
    assert regions is clear
    assert choose_turn(lambda t: vague)[0] == 0
    assert choose_turn(lambda t: Regions.empty(), turns=(0, 2))[:1] == (0,)


@pytest.mark.parametrize("turn", [0, 1, 2, 3])
def test_a_turned_photo_is_detected_upright_and_the_boxes_come_back_in_its_pixels(turn):
    frame, truth = faces_photo(turn)
    det = UprightFaces()
    plain = det(frame)
    assert (plain.score > 0.5).all() == (turn == 0)  # as stored, only the upright photo is clear
    chosen, regions = det.choose(frame)
    assert (turn + chosen) % 4 == 0
    assert len(regions) == 2
    assert (regions.score == np.float32(0.9)).all()
    assert (regions.turn == chosen).all()  # the rows remember the turn that stands them upright
    order = np.argsort(regions.xyxy[:, 0] + regions.xyxy[:, 1])
    assert np.allclose(regions.xyxy[order], truth[np.argsort(truth[:, 0] + truth[:, 1])], atol=1)
    # `at` runs one pass per call, turned, on the frame as given
    det.calls = 0
    again = det.at(chosen)(frame)
    assert det.calls == 1
    assert np.allclose(np.sort(again.xyxy, axis=0), np.sort(regions.xyxy, axis=0))


def test_thresholds_pass_through_a_turned_detector():
    det = UprightFaces().at(2)
    assert det.with_threshold(0.6).thresh == 0.6
    assert det.lowered(0.5).thresh == pytest.approx(0.05)
    assert det.with_threshold(0.6).turn == 2


def shots(n_frames, turn_of, bg_of=lambda n: (128, 128, 128)):
    """Frames whose content needs ``turn_of(n)`` quarter turns to stand upright; faces drift right."""
    frames = []
    for n in range(n_frames):
        frame, _ = faces_photo((4 - turn_of(n)) % 4, spots=((30 + n, 30), (150 + n // 2, 80)), bg=bg_of(n))
        frames.append(frame)
    return frames


def test_an_inverted_clip_is_detected_in_every_frame_at_one_choice():
    det = UprightFaces()
    frames = shots(12, lambda n: 2)
    a = Analyser(det, Settings(detect_every=3), cut_detector=None, fps=25)
    for n, f in enumerate(frames):
        a.feed(n, f)
    out = a.result()
    assert a.turns == [(0, 2)]
    assert det.calls == 4 + (len(a.keyframes) - 1)  # four passes at the shot's start, one per keyframe after
    assert (out.score[out.frame % 3 == 0] > 0.5).all()
    assert set(out.frame.tolist()) == set(range(12))
    assert set(np.bincount(out.frame).tolist()) == {2}
    # every row, detected, carried by the tracker, filled or extended, knows the content is upside down
    assert set(out.source_names.tolist()) >= {"detector", "tracker"}
    assert (out.turn == 2).all()


def test_each_shot_gets_its_own_orientation():
    det = UprightFaces()
    frames = shots(20, lambda n: 2 if n < 10 else 0, lambda n: (128, 128, 128) if n < 10 else (90, 200, 90))
    a = Analyser(det, Settings(detect_every=1), fps=25)
    for n, f in enumerate(frames):
        a.feed(n, f)
    assert a.scene_cuts == [10]
    assert a.turns == [(0, 2), (10, 0)]  # upright again from the cut
    out = a.result()
    assert (out[out.frame == 12].score > 0.5).all()
    assert (out[out.frame == 5].turn == 2).all() and (out[out.frame == 15].turn == 0).all()


def test_a_shot_without_faces_is_checked_again_soon_after_a_face_turns_up():
    det = UprightFaces()
    empty = np.full((160, 240, 3), 128, np.uint8)
    frames = [empty] * 30 + shots(20, lambda n: 2)
    a = Analyser(det, Settings(detect_every=5), cut_detector=None, fps=10)
    for n, f in enumerate(frames):
        a.feed(n, f)
    # keyframes 0, 5, ... 45, all thorough at 10 fps: four passes at 0 (undecided); one at 5 ... 30, where unsure
    # (turned) faces appear; four at 35, over a second after the last check: decided; one at 40 and 45
    assert a.turns == [(35, 2)]
    assert det.calls == 4 + 6 + 4 + 2


def test_footage_without_faces_is_checked_every_few_seconds_only():
    det = UprightFaces()
    empty = np.full((160, 240, 3), 128, np.uint8)
    a = Analyser(det, Settings(detect_every=5), cut_detector=None, fps=10)
    for n in range(100):
        a.feed(n, empty)
    assert det.calls == 3 * 4 + (20 - 3)  # checks at 0, 40 and 80 (ORIENT_IDLE_SECONDS), one pass elsewhere
    assert a.turns == []


def test_a_detector_of_faces_and_plates_looks_for_plates_only_the_way_it_keeps():
    from anonlab.detect import UnionDetector

    class Plates(Detector):
        name, label = "plates", PLATE

        def __init__(self):
            super().__init__(0.1)
            self.models, self.calls = [], 0

        def detect(self, frame):
            self.calls += 1
            return Regions.empty()

    faces, plates = UprightFaces(), Plates()
    both = UnionDetector([faces, plates], iou=None)
    frame, _ = faces_photo(2)
    turn, regions = both.choose(frame)
    assert turn == 2
    assert len(regions) == 2
    assert faces.calls == 5
    assert plates.calls == 2  # faces at 0, 1, 2, 3 and again at 2; plates at 0 and 2
    assert plates.choose(frame) == (0, Regions.empty())
    assert plates.calls == 3  # no faces: nothing to decide


def test_plain_callables_are_run_as_they_are():
    calls = []

    def det(frame):
        calls.append(frame.shape)
        return Regions.empty()

    a = Analyser(det, Settings(detect_every=1), cut_detector=None)
    a.feed(0, np.zeros((20, 30, 3), np.uint8))
    assert calls == [(20, 30, 3)]
    assert a.turns == []


def test_orientation_can_be_turned_off():
    det = UprightFaces()
    frames = shots(3, lambda n: 2)
    a = Analyser(det, Settings(detect_every=1), cut_detector=None, orient=False)
    for n, f in enumerate(frames):
        a.feed(n, f)
    assert det.calls == 3
    assert a.turns == []


@pytest.mark.parametrize("turn", [1, 2, 3])
def test_a_face_found_turned_is_masked_towards_its_own_chin(turn):
    from anonlab.render.mask import mask_boxes

    # "faces" with their hair on top, shown turned: the chin lies where the turned content's bottom is
    frame, truth = faces_photo(turn)
    chosen, regions = UprightFaces().choose(frame)
    h, w = frame.shape[:2]
    masks = mask_boxes(regions, Settings(), w, h).astype(np.float32)
    # seen upright, every mask reaches further past the face below it (the chin) than above it (the hair)
    up_boxes = turn_boxes(regions.xyxy, chosen, w, h)
    up_masks = turn_boxes(masks, chosen, w, h)
    below, above = up_masks[:, 3] - up_boxes[:, 3], up_boxes[:, 1] - up_masks[:, 1]
    assert (below > above + 2).all(), (below, above)
