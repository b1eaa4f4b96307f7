"""Irreversibility proof (issue 5): what a default mask leaves holds no face a detector can find.

Real labelled faces from ``../shared/eval/faces`` (the module is skipped where that folder is absent) are
masked with the defaults of every style and shape, and each bundled face detector (CenterFace, YuNet; the
ones `anonlab.detect.face_detectors` returns) is run at its normal, recall-first threshold.

Detectors look at a face's surroundings as well as at the face: a solid black box framed by hair, ears and
shoulders is still a head, and CenterFace at its recall-first threshold "finds" some of those. No mask
confined to the face's box can remove that context, so the proof is made of two measurements:

1. **Content**: the pixels each default mask covers, shown on a neutral grey background, hold no face:
   zero detections, for every style. The same procedure on the *unmasked* faces finds most of them (the
   control), so the test has the power to see a face if one survived. Ellipse masks are held to what the
   same oval filled with one mean colour gives (a skin-coloured oval alone sometimes passes for a head).
2. **Context**: in the full masked photo, no default style leaves the faces more detectable than a solid
   fill does (a solid fill removes everything; what is still detected around it is the head's silhouette,
   not the face). This claim is made for the default shape (rect) only: a face-coloured oval is flagged
   more often than a black one (figures in `anonlab.render.mask`).
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab.render.mask import mask_boxes, mask_frame
from anonlab.regions import Regions, iou_matrix
from anonlab.settings import MASK_STYLES, Settings

FACES = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faces"
if not (FACES / "labels.jsonl").exists():
    pytest.skip("../shared/eval/faces is not beside the checkout", allow_module_level=True)

detect = pytest.importorskip("anonlab.detect")

pytestmark = [pytest.mark.eval, pytest.mark.slow]

N_IMAGES = 24  # every STEP-th labelled photo: crowds, masks, profiles, a spread of sizes
STEP = 17
IOU_MATCH = 0.3  # the eval set's matching convention (its boxes are tight)
GREY = 128


@pytest.fixture(scope="module")
def photos():
    records = [json.loads(line) for line in (FACES / "labels.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for rec in records[::STEP][:N_IMAGES]:
        image = cv2.imread(str(FACES / rec["image"]), cv2.IMREAD_COLOR)
        faces = Regions.from_records([b for b in rec["boxes"] if b["label"] == "face"])
        if image is not None and len(faces):
            out.append((image, faces))
    assert len(out) >= N_IMAGES // 2
    return out


@pytest.fixture(scope="module")
def detectors():
    dets = detect.face_detectors(Settings())
    assert len(dets) >= 2, "the proof wants two independent face detectors"
    return dets


def found(det_regions: Regions, faces: Regions) -> np.ndarray:
    """Which labelled faces a detection matches (IoU >= 0.3)."""
    if not len(det_regions) or not len(faces):
        return np.zeros(len(faces), bool)
    return (iou_matrix(faces.xyxy, det_regions.xyxy) >= IOU_MATCH).any(axis=1)


def covered(image: np.ndarray, faces: Regions, settings: Settings) -> np.ndarray:
    """The pixels the mask changes (its shape, padding and feather included), as a boolean image."""
    probe = mask_frame(np.full_like(image, 255), faces, settings.replace(mask="solid"))
    return probe[..., 0] < 255


def content_only(image: np.ndarray, cover: np.ndarray) -> np.ndarray:
    return np.where(cover[..., None], image, np.uint8(GREY))


def hit(det_regions: Regions, faces: Regions, settings: Settings, image: np.ndarray) -> np.ndarray:
    """Which labelled faces have a detection on them: matching the face (IoU >= 0.3), or lying at least half
    inside the face's mask box."""
    if not len(det_regions):
        return np.zeros(len(faces), bool)
    boxes = mask_boxes(faces, settings, image.shape[1], image.shape[0]).astype(np.float32)
    lt = np.maximum(boxes[:, None, :2], det_regions.xyxy[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], det_regions.xyxy[None, :, 2:])
    on_mask = np.clip(rb - lt, 0, None).prod(axis=2) / np.maximum(det_regions.area[None, :], 1e-6)
    return ((iou_matrix(faces.xyxy, det_regions.xyxy) >= IOU_MATCH) | (on_mask >= 0.5)).any(axis=1)


@pytest.fixture(scope="module")
def before(photos, detectors):
    """Per detector, per photo: the labelled faces it finds before masking."""
    return {d.name: [found(d(image), faces) for image, faces in photos] for d in detectors}


def context_hits(photos, detector, before, settings) -> tuple[int, int]:
    """Faces found before masking that ``detector`` still finds on them in the masked photos."""
    n = n_before = 0
    for (image, faces), was in zip(photos, before):
        n += int((hit(detector(mask_frame(image, faces, settings)), faces, settings, image) & was).sum())
        n_before += int(was.sum())
    return n, n_before


def content_detections(photos, detector, settings) -> int:
    """Detections in the masked pixels alone, everything else grey."""
    return sum(len(detector(content_only(mask_frame(image, faces, settings), covered(image, faces, settings))))
               for image, faces in photos)


def test_control_detectors_see_the_faces(photos, detectors, before):
    """Without masking, each detector finds most faces, in the photo and from the face's pixels alone."""
    n_faces = sum(len(f) for _, f in photos)
    s = Settings(mask="solid")
    for d in detectors:
        assert sum(int(w.sum()) for w in before[d.name]) >= 0.6 * n_faces, d.name
        seen = sum(int(found(d(content_only(img, covered(img, f, s))), f).sum()) for img, f in photos)
        assert seen >= 0.4 * n_faces, (d.name, seen, n_faces)


@pytest.mark.parametrize("style", MASK_STYLES)
def test_masked_pixels_hold_no_face(photos, detectors, style):
    """Default shape (rect): not one detection in what any default mask leaves."""
    for d in detectors:
        n = content_detections(photos, d, Settings(mask=style))
        assert n == 0, f"{d.name} found {n} faces in the pixels of {style} masks"


def mean_colour_fill(image: np.ndarray, faces: Regions, settings: Settings) -> np.ndarray:
    """Each mask's shape filled with the mean colour under it: one colour per face, no spatial information."""
    out = image.copy()
    for i in range(len(faces)):
        cover = covered(image, faces[i], settings)
        if cover.any():
            out[cover] = np.rint(image[cover].mean(axis=0)).astype(np.uint8)
    return out


@pytest.mark.parametrize("style", [
    "blur",
    # not "solid": its pixels are one colour whatever the face, so what a detector finds in them is the oval's
    # outline alone (since face boxes are extended to a face's height, CenterFace took 2 of the 101 black ovals
    # for faces, and 0 of the skin-coloured ones: a question of colour, not of what the mask keeps)
    # Until face masks reached at least MIN_FACE_MARGIN past their boxes, YuNet found 2 of these 101 faces in
    # the oval mosaic's pixels alone (two faces of 7-8 px in one crowd photo, whose 3 px cells kept a
    # hair-over-skin layout); the larger oval of a tiny face now holds cells too coarse for that.
    "pixelate",
])
def test_ellipse_masks_hold_no_more_than_a_plain_oval(photos, detectors, style):
    """An oval of skin colour alone can pass for a head, so ellipse masks are held to the information-free
    baseline of the same oval filled with one mean colour per face (within 1 % of the faces)."""
    s = Settings(mask=style, shape="ellipse")
    n_faces = sum(len(f) for _, f in photos)
    for d in detectors:
        n = content_detections(photos, d, s)
        baseline = sum(len(d(content_only(mean_colour_fill(image, faces, s), covered(image, faces, s))))
                       for image, faces in photos)
        assert n <= baseline + max(1, round(0.01 * n_faces)), (d.name, n, baseline)


@pytest.fixture(scope="module")
def solid_context(photos, detectors, before):
    return {d.name: context_hits(photos, d, before[d.name], Settings(mask="solid"))[0] for d in detectors}


@pytest.mark.parametrize("style", [s for s in MASK_STYLES if s != "solid"])
def test_masked_faces_no_more_detectable_than_solid_fill(photos, detectors, before, solid_context, style):
    """In the whole photo, the default masks leave faces no more detectable than a solid black box does,
    within 5 % of the faces (about two standard deviations of counts this size)."""
    for d in detectors:
        n, n_before = context_hits(photos, d, before[d.name], Settings(mask=style))
        baseline = solid_context[d.name]
        assert n <= baseline + max(3, round(0.05 * n_before)), (
            f"{d.name}: {n} of {n_before} faces still detected after {style}, {baseline} after a solid fill")
