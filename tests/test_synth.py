"""Semi-synthetic clips: the camera moves, the boxes follow it exactly, the clip decodes with its truth."""

import av
import numpy as np
import pytest

from anonlab.errors import AnonlabError
from anonlab.evaluation.temporal import load_frame_labels
from anonlab.regions import FACE, PLATE, Regions, iou_matrix
from anonlab.evaluation.synth import SynthClip, render_frames, synthetic_photo, write_clip

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)]


def patches_photo(width=400, height=300):
    """Flat-coloured rectangles on a grey photo: the colour inside a transformed box tells if it is exact."""
    photo = np.full((height, width, 3), 128, np.uint8)
    boxes = [[40, 40, 100, 110], [250, 60, 330, 100], [150, 180, 210, 260], [320, 200, 390, 290]]
    for (x1, y1, x2, y2), c in zip(boxes, COLOURS):
        photo[y1:y2, x1:x2] = c
    return photo, Regions(xyxy=boxes, label=[FACE, PLATE, FACE, FACE])


def test_plan_is_deterministic_and_inside_the_photo():
    a = SynthClip.plan(400, 300, n_frames=30, seed=4)
    b = SynthClip.plan(400, 300, n_frames=30, seed=4)
    assert np.array_equal(a.path, b.path)
    assert (a.width, a.height) == (400, 300)
    s, x0, y0 = a.path.T
    assert (s >= 1.0 - 1e-9).all()
    assert (s <= 1.35 + 1e-9).all()
    assert (x0 >= 0).all()
    assert (x0 + a.width / s <= 400 + 1e-6).all()
    assert (y0 >= 0).all()
    assert (y0 + a.height / s <= 300 + 1e-6).all()
    assert np.ptp(a.path, axis=0).max() > 1  # the camera does move


def test_boxes_follow_the_camera_exactly():
    photo, boxes = patches_photo()
    clip = SynthClip.plan(400, 300, n_frames=12, seed=2, blur_samples=1)
    for n, frame, truth in render_frames(photo, boxes, clip):
        assert len(truth) >= 2
        for (x1, y1, x2, y2), obj in zip(truth.xyxy, truth.track_id):
            inner = frame[int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1]
            assert inner.size, (n, obj)
            assert np.abs(inner.astype(int) - COLOURS[obj]).max() <= 2, (n, obj)
            outside = frame[int(y2) + 2:int(y2) + 4, int(x1):int(x2)]  # just below the box: grey again
            if outside.size:
                assert np.abs(outside.astype(int) - 128).max() <= 2


def test_clip_encodes_and_its_labels_read_back(tmp_path):
    photo, boxes = patches_photo()
    clip = SynthClip.plan(400, 300, n_frames=10, fps=25, seed=1)
    truth = write_clip(photo, boxes, clip, tmp_path / "clip.mp4", source="patches")
    with av.open(str(tmp_path / "clip.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        assert c.streams.video[0].average_rate == 25
    assert len(frames) == 10
    assert frames[0].shape == (300, 400, 3)
    loaded, meta = load_frame_labels(tmp_path / "clip.labels.jsonl")
    assert meta == {"n_frames": 10, "width": 400, "height": 300}
    assert np.array_equal(loaded.frame, truth.frame)
    assert np.array_equal(loaded.track_id, truth.track_id)
    assert np.allclose(loaded.xyxy, truth.xyxy, atol=0.01)
    # compression and blur keep the colour inside the (slightly shrunk) boxes
    for row in truth[truth.frame == 5]:
        x1, y1, x2, y2 = row.xyxy[0].astype(int)
        inner = frames[5][y1 + 4:y2 - 4, x1 + 4:x2 - 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(inner - COLOURS[int(row.track_id[0])]).max() < 25


def test_boxes_mostly_out_of_view_leave_the_truth():
    photo, boxes = patches_photo()
    clip = SynthClip(width=200, height=150, fps=25, path=np.array([[1.0, 0.0, 0.0], [1.0, 60.0, 0.0]]),
                     photo_size=(400, 300), blur_samples=1)
    # frame 0 shows x 0..200: box 0 whole; frame 1 shows x 60..260: box 0 (40..100) is 40/60 inside
    assert clip.transform(boxes, 0).track_id.tolist() == [0]
    assert clip.transform(boxes, 1, min_visible=0.5).track_id.tolist() == [0]
    assert clip.transform(boxes, 1, min_visible=0.8).track_id.tolist() == []
    assert clip.transform(boxes, 1).xyxy[0].tolist() == [0, 40, 40, 110]


def test_motion_blur_smears_a_moving_edge():
    photo, boxes = patches_photo()
    path = np.array([[1.0, 0.0, 0.0], [1.0, 20.0, 0.0], [1.0, 40.0, 0.0]])
    sharp = SynthClip(200, 150, 25, path, (400, 300), shutter=0.5, blur_samples=1)
    blurred = SynthClip(200, 150, 25, path, (400, 300), shutter=0.5, blur_samples=5)
    row = lambda clip: list(render_frames(photo, boxes, clip))[1][1][75, :, 2].astype(int)
    levels = lambda r: len(np.unique(r[10:90]))  # across the left edge of the red box
    assert levels(row(blurred)) > levels(row(sharp))


def test_synthetic_photo_boxes_are_inside_and_apart():
    photo, boxes = synthetic_photo(320, 200, n_faces=4, n_plates=2, seed=7)
    assert photo.shape == (200, 320, 3)
    assert photo.dtype == np.uint8
    assert sorted(boxes.label.tolist()) == [FACE] * 4 + [PLATE] * 2
    assert (boxes.xyxy >= 0).all()
    assert (boxes.xyxy[:, 2] <= 320).all()
    assert (boxes.xyxy[:, 3] <= 200).all()
    iou = iou_matrix(boxes.xyxy, boxes.xyxy)
    assert (iou[~np.eye(len(boxes), dtype=bool)] == 0).all()


def test_a_photo_of_another_size_is_refused():
    photo, boxes = patches_photo()
    with pytest.raises(AnonlabError, match="planned for a photo of another size"):
        next(render_frames(photo[:100], boxes, SynthClip.plan(400, 300, n_frames=2)))


def test_an_occlusion_slides_in_hides_part_of_one_object_and_the_truth_keeps_what_shows():
    from anonlab.evaluation.synth import Occlusion

    photo, boxes = patches_photo()
    still = np.tile([[1.0, 0.0, 0.0]], (12, 1))
    occ = Occlusion(obj=0, start=2, stop=10, cover=0.5, side="left", ramp=2, seed=3)
    clip = SynthClip(400, 300, 25, still, (400, 300), blur_samples=1).with_events([occ])
    frames = {n: (frame, truth) for n, frame, truth in render_frames(photo, boxes, clip)}
    assert [occ.share(n) for n in (1, 2, 3, 8, 9, 10)] == [0, 0.25, 0.5, 0.5, 0.25, 0]
    frame, truth = frames[5]  # fully in: the left half of box 0 (x 40..100) is hidden
    assert truth[truth.track_id == 0].xyxy[0].tolist() == [70, 40, 100, 110]
    assert np.array_equal(truth[truth.track_id != 0].xyxy, frames[0][1][frames[0][1].track_id != 0].xyxy)
    assert np.abs(frame[75, 80].astype(int) - COLOURS[0]).max() <= 2  # the visible half still shows
    assert np.abs(frame[75, 50].astype(int) - COLOURS[0]).max() > 60  # the hidden half does not
    assert np.abs(frame[75, 30].astype(int) - 128).max() > 10  # the occluder reaches beyond the object
    assert np.array_equal(frames[11][0], list(render_frames(photo, boxes, clip.with_events()))[11][1])


def test_an_occlusion_needs_sensible_parameters():
    from anonlab.evaluation.synth import Occlusion

    for bad in (dict(cover=1.0), dict(cover=0.0), dict(side="behind"), dict(stop=2), dict(ramp=0)):
        with pytest.raises(AnonlabError, match="an occlusion needs"):
            Occlusion(**{**dict(obj=0, start=2, stop=9), **bad})


def test_a_shake_smears_its_frames_only():
    from anonlab.evaluation.synth import Shake

    photo, boxes = patches_photo()
    still = np.tile([[1.0, 0.0, 0.0]], (6, 1))
    clip = SynthClip(400, 300, 25, still, (400, 300), blur_samples=1)
    plain = [f for _, f, _ in render_frames(photo, boxes, clip)]
    shaken = [f for _, f, _ in render_frames(photo, boxes, clip.with_events(shakes=[Shake(2, 4, length=15)]))]
    changed = [not np.array_equal(a, b) for a, b in zip(plain, shaken)]
    assert changed == [False, False, True, True, False, False]
    edge = lambda f: len(np.unique(f[75, 20:60, 2]))  # across the left edge of the red box
    assert edge(shaken[2]) > edge(plain[2])
    k = Shake(0, 1, length=9, angle=90).kernel()
    assert k.sum() == pytest.approx(1)
    assert (k[:, k.shape[1] // 2] > 0).sum() == k.shape[0]  # vertical line
