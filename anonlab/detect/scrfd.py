"""SCRFD face models (insightface format), for users who bring their own: ``--face-model scrfd.onnx``.

Not bundled: insightface's pretrained SCRFD weights are licensed for non-commercial research only. Where a
user may use them, SCRFD-2.5G finds clearly more small faces than CenterFace at the same precision
(``models/README.md``: recall 0.953 / 0.893 under 16 px against 0.935 / 0.839), so anonlab runs such a file
when given one. A file is recognised as SCRFD by its outputs: three strides (8, 16, 32) of scores, box
distances and, optionally, landmarks, in that order (insightface's export; 6 or 9 outputs).

Decoding follows insightface's ``SCRFD.detect``: two anchors per cell of each stride, anchor centre at the
cell's corner, box = centre ∓ distances × stride, then NMS at IoU 0.4. Input: RGB, ``(x − 127.5) / 128``.
A model with a fixed input size (the 640×640 file in the ``scrfd`` sdist) runs on overlapping tiles of that
size, each padded to it; one with symbolic height/width (``models/convert_scrfd.py`` makes one) runs on the
whole frame padded to a multiple of 32, which is cheaper and sees faces cut by no tile edge.
"""

from __future__ import annotations

import numpy as np

from anonlab.detect.base import Detector, make_regions, onnx_session
from anonlab.detect.centerface import pad_to_multiple
from anonlab.detect.tiling import tile_grid
from anonlab.errors import AnonlabError
from anonlab.models import model_record
from anonlab.regions import FACE, Regions, nms

STRIDES = (8, 16, 32)
ANCHORS = 2
NMS_IOU = 0.4


def is_scrfd(session) -> bool:
    """Whether an onnxruntime session has SCRFD's outputs (3 strides × score, box[, landmarks])."""
    outs = session.get_outputs()
    if len(outs) not in (6, 9):
        return False
    last = [o.shape[-1] if o.shape else None for o in outs]
    return last[:3] == [1, 1, 1] and last[3:6] == [4, 4, 4]


def anchor_centres(height: int, width: int, stride: int) -> np.ndarray:
    """``(height * width * ANCHORS, 2)`` anchor centres (x, y) in input pixels, row-major, anchors adjacent."""
    ys, xs = np.mgrid[:height, :width]
    centres = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
    return np.repeat(centres, ANCHORS, axis=0)


def decode(outputs: list[np.ndarray], height: int, width: int, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """SCRFD outputs for an ``height × width`` input -> ``(xyxy, score)`` above ``thresh``, before NMS."""
    boxes, scores = [], []
    for i, stride in enumerate(STRIDES):
        score = outputs[i].reshape(-1)
        keep = np.flatnonzero(score >= thresh)
        if not len(keep):
            continue
        dist = outputs[i + len(STRIDES)].reshape(-1, 4)[keep] * stride
        centres = anchor_centres(height // stride, width // stride, stride)[keep]
        boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
        scores.append(score[keep])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)


class SCRFD(Detector):
    """A user-supplied SCRFD ONNX file (never bundled; see the module docstring).

    Args:
        model: path of the ``.onnx`` file.
        thresh: score threshold (None: `default_thresh`).
    """
    name = "scrfd"
    label = FACE
    default_thresh = 0.2

    def __init__(self, model: str, thresh: float | None = None) -> None:
        super().__init__(thresh)
        record = {**model_record("centerface", model), "name": "scrfd"}
        self.models = [record]
        self.session = onnx_session(model, record["sha256"])
        if not is_scrfd(self.session):
            raise AnonlabError(f"{record['file']}: not an SCRFD model (expected 6 or 9 outputs: scores, boxes "
                               "and landmarks at strides 8, 16, 32)")
        inp = self.session.get_inputs()[0]
        self.input = inp.name
        h, w = inp.shape[2:4]
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None

    def _run(self, image: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        blob = (image[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) - 127.5) / 128.0
        outputs = self.session.run(None, {self.input: np.ascontiguousarray(blob)})
        return decode(outputs, h, w, thresh)

    def raw(self, frame: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores above ``thresh`` after NMS, in frame pixels (not clipped)."""
        h, w = frame.shape[:2]
        if self.fixed is None:
            xyxy, score = self._run(pad_to_multiple(frame), thresh)
        else:
            th, tw = self.fixed
            parts = []
            for x1, y1, x2, y2 in tile_grid(w, h, (tw, th), overlap=0.25):
                tile = np.zeros((th, tw, 3), np.uint8)
                tile[: y2 - y1, : x2 - x1] = frame[y1:y2, x1:x2]
                b, s = self._run(tile, thresh)
                parts.append((b + np.array([x1, y1, x1, y1], np.float32), s))
            xyxy = np.concatenate([p[0] for p in parts])
            score = np.concatenate([p[1] for p in parts])
        if len(score):
            keep = nms(xyxy, score, NMS_IOU)
            xyxy, score = xyxy[keep], score[keep]
        return xyxy, score

    def detect(self, frame: np.ndarray) -> Regions:
        xyxy, score = self.raw(frame, self.thresh)
        return make_regions(xyxy, score, FACE, frame.shape[1], frame.shape[0])
