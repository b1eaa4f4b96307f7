"""Heads and persons (`anonlab.detect.persons`): the bundled MoveNet model, the head-from-keypoints formula, views.

Offline and without ../shared: the person image is the bundled public-domain portrait (sample_media/portrait.jpg,
Grace Hopper, head and shoulders) whose face box is known (`anonlab.evaluation.teaching.PORTRAIT_FACE_BOX`).
Tests of the `Regions` a detector returns under the labels ``head`` / ``person`` skip until those labels are in
`anonlab.regions.LABELS`; the same code path is tested meanwhile under stand-in labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab import regions
from anonlab.detect.persons import (
    HEAD_MARGIN,
    L_EAR,
    L_EYE,
    L_HIP,
    L_SHOULDER,
    NOSE,
    R_EAR,
    R_EYE,
    R_HIP,
    R_SHOULDER,
    PersonDetector,
    head_boxes,
    person_boxes,
    views,
)
from anonlab.errors import AnonlabError
from anonlab.evaluation.teaching import PORTRAIT, PORTRAIT_FACE_BOX
from anonlab.models import MODELS_ENV, REGISTRY, model_path, models_dir, sha256_file

HAVE_LABELS = "head" in regions.LABELS and "person" in regions.LABELS
needs_labels = pytest.mark.skipif(not HAVE_LABELS, reason="'head'/'person' are not in anonlab.regions.LABELS yet")
STAND_IN = ("face", "plate")  # labels that exist today, for the code path that builds Regions


@pytest.fixture(scope="module")
def detector():
    return PersonDetector(labels=("head", "person") if HAVE_LABELS else STAND_IN)


@pytest.fixture(scope="module")
def portrait():
    from anonlab.media import read_photo

    return read_photo(PORTRAIT).image


def share_inside(inner, outer) -> float:
    """Share of box ``inner``'s area inside box ``outer``."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    return ix * iy / ((inner[2] - inner[0]) * (inner[3] - inner[1]))


def pose(points: dict, score: float = 0.9) -> np.ndarray:
    """A (1, 17, 3) pose: the named keypoints at (x, y) with ``score``, every other keypoint at score 0."""
    kp = np.zeros((1, 17, 3))
    for k, (x, y) in points.items():
        kp[0, k] = (x, y, score)
    return kp


# --- the model ---------------------------------------------------------------------------------------------


def test_model_is_registered_and_verified(detector):
    info = REGISTRY["movenet_multipose"]
    path = model_path("movenet_multipose")
    assert path.name == info.file
    assert sha256_file(path) == info.sha256
    record = detector.models[0]
    assert record["sha256"] == info.sha256
    assert record["bundled"] is True
    assert "Apache-2.0" in record["licence"]
    assert (models_dir() / "movenet_multipose_lightning.LICENSE").is_file()


def test_tampered_model_is_refused(tmp_path, monkeypatch):
    for f in models_dir().iterdir():
        if f.suffix == ".onnx" and f.name != REGISTRY["movenet_multipose"].file:
            continue
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    target = tmp_path / REGISTRY["movenet_multipose"].file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    target.write_bytes(bytes(data))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    with pytest.raises(AnonlabError, match="sha256"):
        PersonDetector()
    target.unlink()
    with pytest.raises(AnonlabError, match="missing"):
        PersonDetector()


def test_model_output_layout(detector, portrait):
    keypoints, boxes, scores = detector.run_view(portrait)
    assert keypoints.shape == (6, 17, 3)
    assert boxes.shape == (6, 4)
    assert scores.shape == (6,)
    best = int(np.argmax(scores))
    assert scores[best] > 0.3
    # keypoints in the view's pixels: the nose and eyes of the best pose lie inside the labelled face
    x1, y1, x2, y2 = PORTRAIT_FACE_BOX
    for k in (NOSE, L_EYE, R_EYE):
        x, y, s = keypoints[best, k]
        assert s > 0.3
        assert x1 <= x <= x2
        assert y1 <= y <= y2


def test_portrait_gives_a_head_over_the_face_and_a_person(detector, portrait):
    p = detector.poses(portrait)
    assert len(p["score"]) >= 1
    heads = p["head"][p["head_ok"]]
    assert max(share_inside(PORTRAIT_FACE_BOX, h) for h in heads) >= 0.95
    assert max(share_inside(PORTRAIT_FACE_BOX, b) for b in p["person"]) >= 0.95
    r = detector(portrait)  # the Regions path (stand-in labels until head/person exist)
    assert len(r) >= 2
    assert (r.score >= detector.thresh).all()
    assert (r.xyxy[:, :2] >= 0).all()
    assert (r.xyxy[:, 2] <= portrait.shape[1]).all()


@needs_labels
def test_regions_are_labelled_head_and_person(portrait):
    det = PersonDetector()
    r = det(portrait)
    names = set(r.label_names.tolist())
    assert names == {"head", "person"}
    heads = r.with_label("head")
    assert max(share_inside(PORTRAIT_FACE_BOX, h) for h in heads.xyxy) >= 0.95
    assert set(PersonDetector(what=("head",))(portrait).label_names.tolist()) == {"head"}
    assert PersonDetector(what="person").label == regions.label_code("person")


def test_what_selects_the_boxes(portrait):
    heads_only = PersonDetector(what=("head",), labels=STAND_IN)(portrait)
    persons_only = PersonDetector(what=("person",), labels=STAND_IN)(portrait)
    assert len(heads_only)
    assert set(heads_only.label.tolist()) == {regions.label_code(STAND_IN[0])}
    assert len(persons_only)
    assert set(persons_only.label.tolist()) == {regions.label_code(STAND_IN[1])}
    assert PersonDetector(what=("head", "person")).label == -1
    with pytest.raises(AnonlabError, match="what"):
        PersonDetector(what=("face",))


def test_frames_without_people_give_nothing(detector):
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
    scene = np.zeros((480, 640, 3), np.uint8)
    scene[:] = np.linspace(40, 220, 640)[None, :, None]
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 600, 2))
        cv2.rectangle(scene, (x, y % 440), (x + 40, y % 440 + 30), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    assert len(detector(noise)) == 0
    assert len(detector(scene)) == 0
    assert len(detector(np.zeros((0, 10, 3), np.uint8))) == 0


def test_quick_pass_runs_the_whole_frame_only(detector, portrait, monkeypatch):
    calls = []
    run_view = detector.run_view
    monkeypatch.setattr(detector, "run_view", lambda image: calls.append(image.shape) or run_view(image))
    quick = detector.quick(portrait)
    assert calls == [portrait.shape]
    assert len(quick) >= 2
    calls.clear()
    detector(portrait)
    assert len(calls) == len(views(portrait.shape[1], portrait.shape[0], detector.tile_fraction)) > 1


def test_with_threshold_shares_the_model(detector, portrait):
    high = detector.with_threshold(0.9)
    assert high.session is detector.session
    assert high.thresh == 0.9
    assert detector.thresh == detector.default_thresh
    assert len(high(portrait)) < len(detector(portrait))
    assert len(detector.with_threshold(0.05)(portrait)) >= len(detector(portrait))


# --- head from keypoints -------------------------------------------------------------------------------------


def test_back_view_ears_and_shoulders_put_the_head_above_the_shoulders():
    # a person seen from behind: ears and shoulders, no nose, no eyes
    kp = pose({L_EAR: (115, 100), R_EAR: (85, 100), L_SHOULDER: (140, 150), R_SHOULDER: (60, 150)})
    (box,), (ok,) = head_boxes(kp)
    assert ok
    x1, y1, x2, y2 = box
    assert y2 < 150 + 10  # above the shoulder line (a little margin at the chin)
    assert x1 < 85
    assert x2 > 115
    assert y1 < 100 < y2  # holds both ears
    # the size: the largest estimate, here the ear span 1.6 * 30 = 48 px; side HEAD_MARGIN * S
    assert x2 - x1 == pytest.approx(HEAD_MARGIN * max(1.6 * 30, 0.6 * 80, 0.9 * 50), rel=1e-5)
    assert (x1 + x2) / 2 == pytest.approx(100)


def test_shoulders_only_put_the_head_above_them():
    kp = pose({L_SHOULDER: (150, 200), R_SHOULDER: (50, 200)})
    (box,), (ok,) = head_boxes(kp)
    assert ok
    s = 0.6 * 100  # head height from the shoulder span
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert cx == pytest.approx(100)
    assert cy == pytest.approx(200 - 1.1 * s)
    assert box[2] - box[0] == pytest.approx(HEAD_MARGIN * s)
    assert box[3] <= 200  # entirely above the shoulders


def test_front_view_box_holds_every_head_keypoint():
    pts = {NOSE: (100, 110), L_EYE: (110, 100), R_EYE: (90, 100), L_EAR: (122, 104), R_EAR: (78, 104),
           L_SHOULDER: (140, 160), R_SHOULDER: (60, 160)}
    (box,), (ok,) = head_boxes(pose(pts))
    assert ok
    for k in (NOSE, L_EYE, R_EYE, L_EAR, R_EAR):
        x, y = pts[k]
        assert box[0] < x < box[2]
        assert box[1] < y < box[3]
    assert box[3] < 160


def test_up_follows_the_torso():
    # lying down, head to the left: shoulders left of the hips
    kp = pose({L_SHOULDER: (100, 80), R_SHOULDER: (100, 120), L_HIP: (220, 80), R_HIP: (220, 120)})
    (box,), (ok,) = head_boxes(kp)
    assert ok
    assert (box[0] + box[2]) / 2 < 100
    assert (box[1] + box[3]) / 2 == pytest.approx(100)


def test_low_scores_and_empty_poses():
    kp = pose({L_EAR: (115, 100), R_EAR: (85, 100)}, score=0.08)
    _, ok = head_boxes(kp)
    assert not ok[0]
    _, ok = head_boxes(kp, kp_thresh=0.05)
    assert ok[0]
    xyxy, ok = head_boxes(np.zeros((0, 17, 3)))
    assert xyxy.shape == (0, 4)
    assert ok.shape == (0,)
    # nothing usable but a person box: a head of height S = 0.3 of its width centred S/2 under its top
    xyxy, ok = head_boxes(np.zeros((1, 17, 3)), person_xyxy=np.array([[10, 20, 110, 320]]))
    assert ok[0]
    assert xyxy[0][2] - xyxy[0][0] == pytest.approx(HEAD_MARGIN * 30)
    assert (xyxy[0][1] + xyxy[0][3]) / 2 == pytest.approx(20 + 15)


def test_person_box_holds_keypoints_and_head():
    kp = pose({L_SHOULDER: (150, 200), R_SHOULDER: (50, 200), L_HIP: (140, 300)})
    heads, ok = head_boxes(kp)
    person = person_boxes(kp, np.array([[60, 150, 140, 290]]), heads, ok)[0]
    assert person[0] < 50
    assert person[2] > 150
    assert person[3] > 300
    assert person[1] < heads[0][1]


def test_views_cover_the_frame():
    small = views(400, 300, 0.6)  # longer side over 384 px: tiles of 180 px, enlarged to 256 by the model's view
    assert len(small) > 1
    assert all(x2 - x1 == 180 for x1, _, x2, _ in small[1:])
    assert views(320, 240, 0.6) == [(0, 0, 320, 240)]  # small: seen whole only
    assert views(1280, 720, None) == [(0, 0, 1280, 720)]
    v = views(1280, 720, 0.6)
    assert v[0] == (0, 0, 1280, 720)
    assert len(v) > 1
    covered = np.zeros((720, 1280), bool)
    for x1, y1, x2, y2 in v[1:]:
        assert x2 - x1 == y2 - y1 == 432  # square tiles, 0.6 of the shorter side
        covered[y1:y2, x1:x2] = True
    assert covered.all()


def test_heads_and_persons_through_the_cli_and_the_workbench(tmp_path):
    import json

    from anonlab import cli
    from anonlab.case import Case
    from anonlab.detect import build_detector
    from anonlab.detect.base import UnionDetector
    from anonlab.detect.persons import PersonDetector
    from anonlab.regions import LABELS
    from anonlab.settings import Settings
    from anonlab.widgets.editor import EditorModel

    portrait = Path(__file__).resolve().parents[1] / "sample_media" / "portrait.jpg"
    report = tmp_path / "r.json"
    assert cli.main(["anonymize", str(portrait), "-o", str(tmp_path / "p.jpg"), "--what", "heads,persons",
                     "--report", str(report), "--quiet"]) == 0
    counts = json.loads(report.read_text())["regions"]["by_label"]
    assert counts["head"] >= 1
    assert counts["person"] >= 1
    # faces, heads and persons: the person model runs once for both of its labels
    det = build_detector(Settings(what=("face", "head", "person")))
    assert isinstance(det, UnionDetector)
    persons = [d for d in det.detectors if isinstance(d, PersonDetector)]
    assert len(persons) == 1
    assert persons[0].what == ("head", "person")
    model = EditorModel(Case.blank("p.jpg", n_frames=1, width=512, height=600, kind="photo"))
    model.on_key(str(LABELS.index("head") + 1))
    tid = model.draw_box((100, 40, 400, 330))
    assert LABELS[model.case.tracks[tid].label] == "head"
