"""The ByteTrack-style tracker: stable ids, labels never mixed, nothing the detector found dropped."""

import numpy as np
import pytest

from anonlab.regions import DETECTOR, FACE, NO_TRACK, PLATE, TRACKER, Regions
from anonlab.track.bytetrack import KalmanBoxFilter, Tracker, greedy_match


def box(x, y, w=40, h=40):
    return [x, y, x + w, y + h]


def dets(*boxes, score=0.9, label=FACE):
    return Regions(xyxy=np.array(boxes, np.float32).reshape(-1, 4), score=np.full(len(boxes), score),
                   label=np.full(len(boxes), label))


def test_ids_stable_for_a_moving_box():
    t = Tracker()
    ids = [int(t.update(dets(box(10 + 6 * n, 50)), n).track_id[0]) for n in range(30)]
    assert ids == [ids[0]] * 30


def test_every_detection_is_returned_in_order_with_source_and_frame():
    t = Tracker()
    d = Regions(xyxy=[box(0, 0), box(100, 0), box(200, 0)], score=[0.9, 0.2, 0.05], label=[FACE, PLATE, FACE],
                source=[DETECTOR, DETECTOR, 4])
    out = t.update(d, 7)
    assert np.array_equal(out.xyxy, d.xyxy)
    assert np.array_equal(out.source, d.source)
    assert out.frame.tolist() == [7, 7, 7]
    assert (out.track_id != NO_TRACK).all()
    assert len(set(out.track_id.tolist())) == 3


@pytest.mark.parametrize("offset", [0, 10, 25])
def test_ids_follow_their_paths_through_a_crossing(offset):
    # A moves right, B moves left; their boxes overlap for several frames around the middle
    t = Tracker()
    track_of = {"A": set(), "B": set()}
    for n in range(40):
        a, b = box(20 + 8 * n, 100), box(340 - 8 * n, 100 + offset)
        out = t.update(dets(a, b), n)
        track_of["A"].add(int(out.track_id[0]))
        track_of["B"].add(int(out.track_id[1]))
    assert len(track_of["A"]) == 1
    assert len(track_of["B"]) == 1
    assert track_of["A"] != track_of["B"]


def test_crossing_with_occlusion_keeps_ids():
    # B is hidden (not detected) while it passes behind A, then found again by the motion model
    t = Tracker()
    ids = {"A": set(), "B": set()}
    for n in range(40):
        a, b = box(20 + 8 * n, 100), box(340 - 8 * n, 110)
        hidden = 18 <= n <= 22
        out = t.update(dets(a) if hidden else dets(a, b), n)
        ids["A"].add(int(out.track_id[0]))
        if not hidden:
            ids["B"].add(int(out.track_id[1]))
    assert len(ids["A"]) == 1
    assert len(ids["B"]) == 1
    assert ids["A"] != ids["B"]


def test_face_and_plate_never_share_a_track():
    t = Tracker()
    first = t.update(dets(box(50, 50)), 0)
    second = t.update(dets(box(50, 50), label=PLATE), 1)
    assert int(first.track_id[0]) != int(second.track_id[0])
    both = t.update(Regions(xyxy=[box(50, 50), box(50, 50)], score=[0.9, 0.9], label=[FACE, PLATE]), 2)
    assert both.track_id.tolist() == [first.track_id[0], second.track_id[0]]


def test_reset_starts_new_ids():
    t = Tracker()
    a = int(t.update(dets(box(50, 50)), 0).track_id[0])
    t.reset()
    b = int(t.update(dets(box(50, 50)), 1).track_id[0])
    assert a != b
    assert not t.tracks[0].id == a


def test_low_score_detection_continues_a_track_and_far_one_starts_its_own():
    t = Tracker()
    for n in range(3):
        tid = int(t.update(dets(box(100 + 2 * n, 100)), n).track_id[0])
    out = t.update(Regions(xyxy=[box(106, 100), box(400, 300)], score=[0.2, 0.2]), 3)
    assert int(out.track_id[0]) == tid
    assert out.track_id[1] not in (NO_TRACK, tid)


def test_low_score_box_does_not_steal_a_track_from_a_high_score_one():
    t = Tracker()
    for n in range(3):
        tid = int(t.update(dets(box(100, 100)), n).track_id[0])
    # both overlap the track; the strong one is associated first
    out = t.update(Regions(xyxy=[box(104, 100), box(100, 100)], score=[0.2, 0.95]), 3)
    assert int(out.track_id[1]) == tid
    assert int(out.track_id[0]) != tid


def test_lost_track_is_found_again_within_the_buffer_and_forgotten_after():
    t = Tracker(track_buffer=10)
    tid = int(t.update(dets(box(100, 100)), 0).track_id[0])
    t.update(dets(box(100, 100)), 1)
    assert int(t.update(dets(box(100, 100)), 9).track_id[0]) == tid  # 7 frames unseen
    assert int(t.update(dets(box(100, 100)), 25).track_id[0]) != tid  # 15 frames unseen


@pytest.mark.parametrize("misses, same_id", [(1, True), (2, False)])
def test_tentative_track_survives_tentative_buffer_missed_detections(misses, same_id):
    t = Tracker(tentative_buffer=1)
    tid = int(t.update(dets(box(100, 100), score=0.3), 0).track_id[0])
    assert not t.tracks[0].confirmed
    for n in range(1, misses + 1):
        t.update(Regions.empty(), 5 * n)  # frames between detections do not count
    again = int(t.update(dets(box(100, 100), score=0.3), 5 * (misses + 1)).track_id[0])
    assert (again == tid) is same_id


def test_predict_moves_tracked_boxes_with_their_velocity_and_skips_lost_ones():
    t = Tracker()
    for n in range(10):
        t.update(dets(box(10 + 5 * n, 50), box(300, 300)), n)
    t.update(dets(box(60, 50)), 10)  # the second object is not detected: lost
    pred = t.predict(11)
    assert len(pred) == 1
    assert pred.source.tolist() == [TRACKER]
    assert pred.frame.tolist() == [11]
    assert pred.xyxy[0, 0] == pytest.approx(65, abs=1.5)


def test_predict_does_not_lose_or_confirm_tracks():
    t = Tracker(tentative_buffer=1)
    t.update(dets(box(100, 100), score=0.3), 0)
    for n in range(1, 4):
        t.predict(n)
    assert len(t.tracks) == 1
    assert not t.tracks[0].confirmed
    assert t.tracks[0].tracked


def test_correct_moves_a_known_track():
    t = Tracker()
    tid = int(t.update(dets(box(100, 100)), 0).track_id[0])
    t.predict(1)
    t.correct(Regions(xyxy=[box(130, 100)], track_id=[tid], label=[FACE], frame=[1]), 1)
    t.correct(Regions(xyxy=[box(0, 0)], track_id=[tid], label=[PLATE], frame=[1]), 1)  # wrong label: ignored
    assert t.tracks[0].kf.xyxy[0] > 110


def test_kalman_filter_learns_velocity():
    kf = KalmanBoxFilter(np.array(box(0, 0), np.float32))
    for n in range(1, 20):
        kf.predict()
        kf.update(np.array(box(3 * n, 0), np.float32))
    assert kf.mean[4] == pytest.approx(3.0, abs=0.2)


@pytest.mark.parametrize(
    "iou, threshold, expected",
    [
        (np.array([[0.9, 0.5], [0.6, 0.1]]), 0.3, [(0, 0)]),
        (np.array([[0.9, 0.5], [0.6, 0.4]]), 0.3, [(0, 0), (1, 1)]),
        (np.array([[0.2]]), 0.3, []),
        (np.zeros((0, 3)), 0.3, []),
    ],
)
def test_greedy_match(iou, threshold, expected):
    assert greedy_match(iou, threshold) == expected
