"""Temporal safety: gaps filled, lead/trail present, nothing compounded, labels and untracked rows kept."""

import numpy as np
import pytest

from anonlab.evaluation.temporal import masking_interruptions
from anonlab.regions import ANALYST, DETECTOR, EXTENDED, FACE, INTERPOLATED, NO_TRACK, PLATE, Regions
from anonlab.settings import Settings
from anonlab.track.temporal import apply_temporal_safety, extend_tracks, fill_gaps


def track(frames, tid=1, label=FACE, x0=100.0, vx=0.0, size=20.0, score=0.9):
    frames = np.asarray(frames)
    x = x0 + vx * frames
    xyxy = np.stack([x, np.full_like(x, 50.0), x + size, np.full_like(x, 50.0 + size)], axis=1)
    return Regions(xyxy=xyxy, score=np.full(len(frames), score), label=np.full(len(frames), label),
                   track_id=np.full(len(frames), tid), frame=frames)


def test_missing_frame_inside_a_track_is_interpolated():
    r = track([0, 1, 2, 4, 5], vx=10.0)
    assert masking_interruptions(r) == 1
    out = fill_gaps(r, max_gap=15)
    assert masking_interruptions(out) == 0
    filled = out[out.source == INTERPOLATED]
    assert filled.frame.tolist() == [3]
    assert filled.xyxy[0].tolist() == pytest.approx([130.0, 50.0, 150.0, 70.0])
    assert filled.track_id.tolist() == [1]
    assert filled.label.tolist() == [FACE]


def test_interpolated_score_is_the_lower_neighbour():
    r = Regions.merge([track([0], score=0.9), track([3], score=0.4)])
    assert fill_gaps(r, 5)[2:].score.tolist() == pytest.approx([0.4, 0.4])


@pytest.mark.parametrize("gap, max_gap, filled", [(1, 0, 0), (1, 1, 1), (5, 5, 5), (6, 5, 0)])
def test_gap_filled_only_up_to_max_gap(gap, max_gap, filled):
    r = track([0, gap + 1])
    assert (fill_gaps(r, max_gap).source == INTERPOLATED).sum() == filled


def test_lead_and_trail_frames_present_and_clipped_to_the_video():
    r = track([2, 3, 4, 5])
    out = extend_tracks(r, n_frames=7, lead=3, trail=3, max_gap=15)
    ext = out[out.source == EXTENDED]
    assert sorted(ext.frame.tolist()) == [0, 1, 6]


def test_long_gap_gets_trail_and_lead_on_both_sides():
    r = track([0, 1, 30, 31])
    out = apply_temporal_safety(r, 40, Settings(max_gap=5, lead=3, trail=3))
    ext = out[out.source == EXTENDED].frame.tolist()
    assert ext == [2, 3, 4, 27, 28, 29, 32, 33, 34]
    assert not (out.source == INTERPOLATED).any()


def test_extended_box_covers_the_held_and_the_extrapolated_box():
    r = track(range(10, 20), vx=5.0)  # moving right 5 px a frame
    out = extend_tracks(r, n_frames=30, lead=2, trail=2, max_gap=15)
    lead = out[(out.source == EXTENDED) & (out.frame == 8)].xyxy[0]
    trail = out[(out.source == EXTENDED) & (out.frame == 21)].xyxy[0]
    assert lead.tolist() == pytest.approx([140.0, 50.0, 170.0, 70.0])  # held at 150, extrapolated to 140
    assert trail.tolist() == pytest.approx([195.0, 50.0, 225.0, 70.0])  # held at 195, extrapolated to 205


def test_trail_and_lead_meeting_in_a_frame_give_one_row():
    r = track([0, 4])
    out = extend_tracks(r, n_frames=10, lead=3, trail=3, max_gap=2)
    frames = out[out.source == EXTENDED].frame.tolist()
    assert sorted(frames) == sorted(set(frames))
    assert set(frames) == {1, 2, 3, 5, 6, 7}


def test_apply_is_idempotent_and_sorted():
    r = Regions.merge([track([0, 2, 3, 9], tid=1), track([1, 5], tid=2, label=PLATE, x0=300)])
    s = Settings(max_gap=3, lead=2, trail=2)
    once = apply_temporal_safety(r, 12, s)
    assert apply_temporal_safety(once, 12, s) == once
    assert (np.diff(once.frame) >= 0).all()


def test_labels_are_never_mixed_and_untracked_rows_pass_through():
    loose = Regions(xyxy=[[0, 0, 5, 5]], frame=[4], source=[ANALYST])
    r = Regions.merge([track([0, 3], tid=1, label=FACE), track([0, 3], tid=2, label=PLATE), loose])
    out = apply_temporal_safety(r, 6, Settings(max_gap=5, lead=1, trail=1))
    for tid, label in ((1, FACE), (2, PLATE)):
        assert (out[out.track_id == tid].label == label).all()
    untracked = out[out.track_id == NO_TRACK]
    assert len(untracked) == 1
    assert untracked.source.tolist() == [ANALYST]


def test_several_rows_of_one_track_in_a_frame_interpolate_from_their_union():
    r = Regions(xyxy=[[0, 0, 10, 10], [5, 0, 20, 10], [0, 0, 10, 10]], track_id=[1, 1, 1], frame=[0, 0, 2],
                source=[DETECTOR, ANALYST, DETECTOR])
    mid = fill_gaps(r, 3)
    assert mid[mid.source == INTERPOLATED].xyxy[0].tolist() == pytest.approx([0, 0, 15, 10])


def test_no_temporal_safety_when_all_zero():
    r = track([0, 2])
    out = apply_temporal_safety(r, 5, Settings(max_gap=0, lead=0, trail=0))
    assert len(out) == 2
    assert masking_interruptions(out) == 1


def test_filled_and_extended_rows_keep_the_track_s_turn():
    # a track found in upside-down content: the rows temporal safety adds are masked towards the same chin
    r = Regions(xyxy=[[10, 10, 30, 30]] * 2, track_id=[4, 4], frame=[5, 8], turn=[2, 2])
    out = apply_temporal_safety(r, 20, Settings(max_gap=5, lead=2, trail=2))
    assert {INTERPOLATED, EXTENDED} <= set(out.source.tolist())
    assert (out.turn == 2).all()
