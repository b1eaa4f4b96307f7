"""Temporal metrics on planted cases."""

import json

import numpy as np
import pytest

from anonlab.errors import AnonlabError
from anonlab.evaluation.temporal import (
    covered_share,
    load_frame_labels,
    masking_interruptions,
    recall_metrics,
    spatial_interruptions,
    temporal_metrics,
    track_gaps,
)
from anonlab.regions import FACE, PLATE, Regions


def rows(frames, tid=0, x=10.0, label=FACE):
    frames = list(frames)
    return Regions(xyxy=[[x, 10, x + 20, 30]] * len(frames), track_id=[tid] * len(frames), frame=frames,
                   label=[label] * len(frames))


@pytest.mark.parametrize(
    "frames, interruptions, gaps",
    [
        ([0, 1, 2, 3], 0, []),
        ([0, 2, 3], 1, [1]),
        ([0, 2, 4, 9], 2, [1, 1, 4]),
        ([5], 0, []),
    ],
)
def test_interruptions_and_gaps(frames, interruptions, gaps):
    r = rows(frames)
    assert masking_interruptions(r) == interruptions
    assert sorted(track_gaps(r).tolist()) == gaps


def test_interruptions_are_per_track():
    r = Regions.merge([rows([0, 2], tid=1), rows([1], tid=2, x=200)])
    assert masking_interruptions(r) == 1


def test_spatial_interruption_sees_a_flicker_between_two_tracks():
    r = Regions.merge([rows([0, 1], tid=1), rows([3, 4], tid=2)])  # same place, nothing at frame 2
    assert masking_interruptions(r) == 0
    assert spatial_interruptions(r, 5) == 1
    elsewhere = Regions.merge([r, rows([2], tid=3, x=200)])
    assert spatial_interruptions(elsewhere, 5) == 1
    assert spatial_interruptions(Regions.merge([r, rows([2], tid=4)]), 5) == 0


def test_spatial_interruption_links_regions_of_one_label():
    assert spatial_interruptions(Regions.merge([rows([1], tid=1), rows([3], tid=2, label=PLATE)]), 5) == 0


def test_a_mask_of_another_label_over_the_area_still_masks_it():
    r = Regions.merge([rows([1], tid=1), rows([3], tid=2), rows([2], tid=3, label=PLATE)])
    assert spatial_interruptions(r, 5) == 0


def test_temporal_metrics_fields():
    r = Regions.merge([rows(range(10), tid=1), rows([3, 4], tid=2, x=100), rows([0, 2], tid=3, x=300)])
    m = temporal_metrics(r, 10, fps=10)
    assert m["tracks"] == 3
    assert m["short_tracks"] == 2
    assert m["interruptions"] == 1
    assert m["regions"] == 14
    assert m["regions_per_frame"] == pytest.approx(1.4)
    assert m["max_regions_per_frame"] == 2
    assert m["tracks_per_minute"] == pytest.approx(180.0)  # 3 tracks in one second


def test_recall_and_critical_error_rate():
    truth = Regions.merge([rows(range(60), tid=0), rows(range(60), tid=1, x=300, label=PLATE)])
    found = Regions.merge([rows([f for f in range(60) if f not in (5, 6, 7)], tid=7),
                           rows(range(60), tid=8, x=302, label=PLATE)])
    m = recall_metrics(found, truth, n_frames=60, fps=30)
    assert m["object_frames"] == 120
    assert m["missed"] == 3
    assert m["recall"] == pytest.approx(117 / 120)
    assert m["recall_face"] == pytest.approx(57 / 60)
    assert m["critical_error_rate"] == pytest.approx(3 / (2 / 60))
    assert m["missed_frames"] == [5, 6, 7]


def test_a_region_of_the_wrong_label_does_not_count():
    truth = rows([0], label=FACE)
    m = recall_metrics(rows([0], label=PLATE), truth, 1, 25)
    assert m["recall"] == 0.0


def test_one_region_covers_one_true_box():
    truth = Regions.merge([rows([0], tid=0), rows([0], tid=1, x=12)])
    m = recall_metrics(rows([0], x=11), truth, 1, 25)
    assert m["found"] == 1


def test_id_switches_and_tracks_per_object():
    truth = rows(range(10), tid=0)
    found = Regions.merge([rows(range(5), tid=3), rows(range(5, 10), tid=4)])
    m = recall_metrics(found, truth, 10, 25)
    assert m["id_switches"] == 1
    assert m["tracks_per_object"] == 2.0
    assert m["objects"] == 1


def test_bad_fps_is_an_error():
    with pytest.raises(AnonlabError, match="fps must be positive"):
        recall_metrics(Regions.empty(), Regions.empty(), 10, 0)


def test_load_frame_labels_reads_frames_and_objects(tmp_path):
    path = tmp_path / "gt.jsonl"
    lines = [
        {"frame": 0, "width": 64, "height": 48,
         "boxes": [{"label": "face", "x": 1, "y": 2, "w": 3, "h": 4, "object": 5}]},
        {"frame": 2, "width": 64, "height": 48, "boxes": []},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    truth, meta = load_frame_labels(path)
    assert meta == {"n_frames": 3, "width": 64, "height": 48}
    assert truth.frame.tolist() == [0]
    assert truth.track_id.tolist() == [5]
    assert truth.xyxy.tolist() == [[1, 2, 4, 6]]


def test_load_frame_labels_uses_line_numbers_without_frame_key(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"boxes": []}\n{"boxes": [{"label": "plate", "x": 0, "y": 0, "w": 9, "h": 3}]}\n')
    truth, meta = load_frame_labels(path)
    assert truth.frame.tolist() == [1]
    assert truth.label.tolist() == [PLATE]
    assert meta["n_frames"] == 2


def test_load_frame_labels_reports_bad_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"boxes": []}\nnot json\n')
    with pytest.raises(AnonlabError, match="line 2"):
        load_frame_labels(path)


@pytest.mark.parametrize(
    "masks, share",
    [
        ([[0, 0, 10, 10]], 1.0),
        ([[0, 0, 5, 10]], 0.5),
        ([[0, 0, 5, 10], [5, 0, 10, 10]], 1.0),  # the union counts
        ([[20, 20, 30, 30]], 0.0),
        ([], 0.0),
    ],
)
def test_covered_share(masks, share):
    assert covered_share(np.array([[0, 0, 10, 10]]), np.array(masks)).tolist() == [pytest.approx(share)]


def test_hidden_counts_a_loose_box_that_recall_does_not():
    truth = Regions(xyxy=[[100, 100, 120, 120]], frame=[0])
    loose = Regions(xyxy=[[95, 95, 135, 135]], frame=[0])  # IoU 0.25: no match, but the face is under it
    m = recall_metrics(loose, truth, 1, 25, mask_scale=1.3)
    assert m["recall"] == 0.0
    assert m["hidden"] == 1.0
    shifted = Regions(xyxy=[[108, 100, 128, 120]], frame=[0])  # IoU 0.43, 40 % of the face outside the box
    m = recall_metrics(shifted, truth, 1, 25, mask_scale=1.3)
    assert m["recall"] == 1.0
    assert m["hidden"] == 0.0


def test_spatial_interruption_not_counted_under_a_larger_mask():
    big = Regions(xyxy=[[0, 0, 100, 100]], track_id=[9], frame=[2], label=[PLATE])
    r = Regions.merge([rows([1], tid=1), rows([3], tid=2), big])  # IoU tiny, but the area is covered
    assert spatial_interruptions(r, 5) == 0


@pytest.mark.parametrize("bad, frames, longest", [
    ([1, 1, 0, 1, 1, 1], [0, 1, 2, 4, 5, 6], 3),
    ([1, 1, 1, 1], [0, 1, 3, 4], 2),  # the object out of view at frame 2 ends the run
    ([0, 0], [0, 1], 0),
    ([], [], 0),
])
def test_longest_run(bad, frames, longest):
    from anonlab.evaluation.temporal import longest_run

    assert longest_run(np.array(frames), np.array(bad, bool)) == longest


def test_exposure_runs_per_object():
    truth = Regions(xyxy=[[0, 0, 10, 10]] * 8 + [[50, 50, 60, 60]] * 8, track_id=[0] * 8 + [1] * 8,
                    frame=list(range(8)) * 2)
    # object 0 masked except frames 2-6 (5 in a row); object 1 half under a box at frames 0-1 (exposed, not bare)
    # and a loose box at frames 2-7 (hidden, not matched)
    rows = [Regions(xyxy=[[0, 0, 10, 10]], track_id=[5], frame=[f]) for f in (0, 1, 7)]
    rows += [Regions(xyxy=[[50, 50, 55, 60]], track_id=[6], frame=[f]) for f in (0, 1)]
    rows += [Regions(xyxy=[[40, 40, 70, 70]], track_id=[6], frame=[f]) for f in range(2, 8)]
    m = recall_metrics(Regions.merge(rows), truth, 8, 25.0, mask_scale=1.0)
    assert m["longest_miss"] == 6
    assert m["objects_miss_long"] == 2
    assert m["longest_exposed"] == 5
    assert m["objects_exposed_long"] == 1
    assert m["longest_bare"] == 5
    assert m["objects_bare_long"] == 1
