"""Text regions: the PP-OCRv4 mobile text detector (DB), run with onnxruntime, one model file for every use.

Model: PaddleOCR's PP-OCRv4 mobile detector as converted to ONNX by RapidOCR (``ch_PP-OCRv4_det_infer.onnx``
from the ``rapidocr-onnxruntime==1.4.4`` wheel, Apache-2.0; `anonlab.models` checks its sha256; anonlab does
not depend on rapidocr). Input ``x`` ``1×3×H×W`` float32, BGR, ``(pixel / 255 − 0.5) / 0.5``, H and W
multiples of 32; output ``1×1×H×W``: the probability that a pixel belongs to a text line's shrunk core.

Post-processing is DB's (Liao et al., "Real-time Scene Text Detection with Differentiable Binarization",
AAAI 2020, as PaddleOCR's ``DBPostProcess`` implements it): pixels above ``bin_thresh`` (0.3), dilated by
2×2, form connected regions; each region's minimum-area rectangle scores the mean probability inside it
(kept at ``thresh`` and above, PaddleOCR's ``box_thresh`` 0.5 by default); the core is then grown back
("unclipped") by ``d = area × unclip / perimeter`` on every side (``unclip`` 1.6). A rectangle grown by a
constant distance equals pyclipper's rounded offset up to the rounded corners, so no polygon library is
needed.

`TextDetector.lines` gives the rotated rectangles (corner points) and scores; calling the detector gives
their axis-aligned boxes as `Regions` under the label it was built with (plates use it through
`anonlab.detect.plates`; a later ``text`` label can reuse the same loader).
"""

from __future__ import annotations

import cv2
import numpy as np

from anonlab.detect.base import Detector, make_regions, onnx_session
from anonlab.models import model_path, model_record
from anonlab.regions import PLATE, Regions

#: Probability above which a pixel is text (DB's binarisation threshold, PaddleOCR default).
BIN_THRESH = 0.3
#: How far a text core is grown back, as ``area × UNCLIP / perimeter`` (PaddleOCR default 1.6).
UNCLIP = 1.6
#: Largest network side by default (frames are shrunk to it, never enlarged; sides rounded to multiples of 32 as
#: PaddleOCR does: a 1280×720 frame runs at 1280×704). Plates use 960 (`anonlab.detect.plates.TEXT_MAX_SIDE`).
MAX_SIDE = 1280
#: Regions whose core is thinner than this (network pixels) are noise (PaddleOCR's ``min_size`` 3).
MIN_CORE = 3.0
#: At most this many regions are scored per frame (PaddleOCR's ``max_candidates``).
MAX_CANDIDATES = 1000


def network_size(width: int, height: int, max_side: int = MAX_SIDE, min_side: int = 32,
                 max_upscale: float = 1.0) -> tuple[int, int]:
    """``(W, H)`` the frame is resized to: fitted into ``max_side``, multiples of 32. A frame smaller than that is
    enlarged at most ``max_upscale`` times (1: never), so small print in a small picture reaches the model's range."""
    gain = min(float(max_upscale), max_side / max(width, height))
    w = max(min_side, int(round(width * gain / 32)) * 32)
    h = max(min_side, int(round(height * gain / 32)) * 32)
    return w, h


def unclip_rect(rect: tuple, ratio: float = UNCLIP) -> tuple:
    """Grow a ``cv2.minAreaRect`` rectangle ``((cx, cy), (w, h), angle)`` by DB's unclip distance on each side."""
    (cx, cy), (w, h), angle = rect
    area, perimeter = w * h, 2 * (w + h)
    d = area * ratio / perimeter if perimeter > 0 else 0.0
    return (cx, cy), (w + 2 * d, h + 2 * d), angle


def box_scores(prob: np.ndarray, rects: list) -> np.ndarray:
    """Mean of ``prob`` inside each rotated rectangle (DB's "fast" box score)."""
    h, w = prob.shape
    out = np.zeros(len(rects), np.float32)
    for i, rect in enumerate(rects):
        pts = cv2.boxPoints(rect)
        x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int), 0, [w - 1, h - 1])
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(mask, [np.round(pts - [x0, y0]).astype(np.int32)], 1)
        out[i] = cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0]
    return out


def db_boxes(prob: np.ndarray, thresh: float, bin_thresh: float = BIN_THRESH,
             unclip: float = UNCLIP) -> tuple[np.ndarray, np.ndarray]:
    """DB post-processing of one probability map.

    Args:
        prob: ``(H, W)`` float32 text probability (network pixels).
        thresh: keep rectangles whose mean core probability is at least this.

    Returns:
        ``(quads, scores)``: ``(N, 4, 2)`` float32 corner points of the grown rectangles in network pixels,
        and ``(N,)`` float32 scores.
    """
    bitmap = cv2.dilate((prob > bin_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    rects = [cv2.minAreaRect(c) for c in contours[:MAX_CANDIDATES]]
    rects = [r for r in rects if min(r[1]) >= MIN_CORE]
    if not rects:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
    scores = box_scores(prob, rects)
    keep = [i for i in range(len(rects)) if scores[i] >= thresh]
    grown = [unclip_rect(rects[i], unclip) for i in keep]
    big = [j for j, r in enumerate(grown) if min(r[1]) >= MIN_CORE + 2]
    if not big:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
    quads = np.stack([cv2.boxPoints(grown[j]) for j in big]).astype(np.float32)
    return quads, scores[[keep[j] for j in big]]


class TextDetector(Detector):
    """PP-OCRv4 text lines: ``detector(frame_bgr) -> Regions`` (axis-aligned boxes of the lines).

    Args:
        thresh: box score threshold (mean core probability; None: 0.5, PaddleOCR's ``box_thresh``).
        label: label code given to the boxes (`PLATE` by default: today text lines serve as plate proposals).
        max_side: the frame is shrunk so that its longer side is at most this many network pixels (never
            enlarged); the cost grows with the pixel count.
        grayscale: feed the grey-level image in all three channels.
        max_upscale: frames smaller than ``max_side`` are enlarged up to this many times (1: never).

    Raises:
        AnonlabError: the bundled file is missing or altered.
    """
    name = "text_ppocrv4_det"
    default_thresh = 0.5

    def __init__(self, thresh: float | None = None, *, label: int = PLATE, max_side: int = MAX_SIDE,
                 grayscale: bool = False, bin_thresh: float = BIN_THRESH, unclip: float = UNCLIP,
                 max_upscale: float = 1.0) -> None:
        super().__init__(thresh)
        self.label = label
        self.max_side = int(max_side)
        self.max_upscale = float(max_upscale)
        self.grayscale = grayscale
        self.bin_thresh = bin_thresh
        self.unclip = unclip
        path = model_path(self.name)
        record = model_record(self.name)
        self.models = [record]
        self.session = onnx_session(path, record["sha256"])
        self.input_name = self.session.get_inputs()[0].name

    def probability(self, frame: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Text probability map ``(H, W)`` float32 in network pixels, and the ``(sx, sy)`` from network to frame."""
        h, w = frame.shape[:2]
        nw, nh = network_size(w, h, self.max_side, max_upscale=self.max_upscale)
        image = frame
        if self.grayscale:
            image = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR)
        blob = (image.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)[None]
        (prob,) = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[:1]
        return prob[0, 0], w / nw, h / nh

    def lines(self, frame: np.ndarray, thresh: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Text lines as rotated rectangles: ``(N, 4, 2)`` corner points in frame pixels and ``(N,)`` scores."""
        prob, sx, sy = self.probability(frame)
        quads, scores = db_boxes(prob, self.thresh if thresh is None else thresh, self.bin_thresh, self.unclip)
        return quads * np.array([sx, sy], np.float32), scores

    def detect(self, frame: np.ndarray) -> Regions:
        quads, scores = self.lines(frame)
        xyxy = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1) if len(quads) else np.zeros((0, 4))
        return make_regions(xyxy, scores, self.label, frame.shape[1], frame.shape[0])

    def __repr__(self) -> str:
        return f"TextDetector(thresh={self.thresh:g}, max_side={self.max_side}, max_upscale={self.max_upscale:g})"



# --- text lines into blocks ------------------------------------------------------------------------


def quad_boxes(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned boxes ``(N, 4)`` of rotated rectangles ``(N, 4, 2)`` and each rectangle's line height.

    The line height is the rectangle's shorter side (the text's height, whatever its slant).
    """
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    boxes = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)
    a = np.hypot(*(quads[:, 1] - quads[:, 0]).T)
    b = np.hypot(*(quads[:, 2] - quads[:, 1]).T)
    return boxes, np.minimum(a, b)


def group_lines(boxes: np.ndarray, heights: np.ndarray, gap: float = 1.0, height_ratio: float = 3.0) -> np.ndarray:
    """Group text boxes into blocks: the block index of each box, ``(N,)`` int.

    Two boxes belong to one block when the gap between them (the larger of the horizontal and vertical
    gaps between the axis-aligned boxes, 0 when they overlap) is at most ``gap`` times the smaller line
    height and their line heights differ by at most ``height_ratio``; blocks are the connected groups.
    Words of one line and the lines of one label (a two-line plate) join; text a line height or more
    apart does not.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    dx = np.maximum(0, np.maximum(boxes[:, None, 0] - boxes[None, :, 2], boxes[None, :, 0] - boxes[:, None, 2]))
    dy = np.maximum(0, np.maximum(boxes[:, None, 1] - boxes[None, :, 3], boxes[None, :, 1] - boxes[:, None, 3]))
    hmin = np.minimum(heights[:, None], heights[None, :])
    hmax = np.maximum(heights[:, None], heights[None, :])
    link = (np.maximum(dx, dy) <= gap * hmin) & (hmax <= height_ratio * hmin)
    for i, j in zip(*np.nonzero(np.triu(link, 1))):
        a, b = find(i), find(j)
        if a != b:
            parent[a] = b
    roots = np.array([find(i) for i in range(n)], int)
    return np.unique(roots, return_inverse=True)[1].reshape(-1) if n else np.zeros(0, int)


def count_rows(boxes: np.ndarray) -> int:
    """How many rows of text the boxes form: a box whose vertical centre lies inside a row's span joins it."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    spans: list[tuple[float, float]] = []
    for i in np.argsort(boxes[:, 1] + boxes[:, 3]):
        c = (boxes[i, 1] + boxes[i, 3]) / 2
        if not any(lo <= c <= hi for lo, hi in spans):
            spans.append((float(boxes[i, 1]), float(boxes[i, 3])))
    return len(spans)
