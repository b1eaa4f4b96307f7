"""Licence plates: a YOLOv8n plate detector (ONNX, onnxruntime) at two scales, and two-line text blocks.

`PlateDetector` runs the YOLOv8n model once. Input ``images`` ``1×3×H×W`` float32 RGB in [0, 1], the frame
letterboxed into it (aspect kept, padded with grey 114, as Ultralytics trains); by default the grey-level
image is fed in all three channels. Output ``1×5×N``: ``cx, cy, w, h, score`` per anchor point in input
pixels; score threshold, then NMS. The bundled model (``plate_yolov8n_1280x736.onnx``) takes 1280×736; a
user model (``--plate-model``) with the same output layout may have another fixed size, or dynamic dims
(then the frame is padded to a multiple of 32, at most 1280 px on the long side). ``gain`` runs it at
another scale: the frame resized by ``gain`` and padded (to the fixed size, or to a multiple of 32 for a
model with dynamic dims such as ``plate_yolov8n_dynamic.onnx``, the same weights exported with symbolic H, W).

`MultiScalePlates` (the default, `anonlab.detect.plate_detector`) unites three sources of plate boxes, each
for what the others miss (figures in ``models/README.md``, ``benchmarks/eval_plates.py``):

1. the model at the letterbox scale (the frame fitted into 1280×736);
2. the model again at a third of that scale (`SHRINK`), so that very large plates are seen at a size the
   model was trained on: its recall at threshold 0.4 is ≥ 0.9 for plates 56–448 px wide in its input
   (one-line plates) and 112–640 px (two-line), and falls to 0.2–0.6 at 1200 px (`benchmarks/eval_plates.py
   --scale-curve`); a close-up 800 px plate is 267 px wide in the shrunk view. It costs about 1/9 of a pass;
3. two-line text blocks found by the PP-OCRv4 text detector (`anonlab.detect.text`): two or three rows of
   text whose block is between `BLOCK_ASPECT` wide (two-line and square plates: motorcycles, scooters,
   auto-rickshaws, Saudi cars; the layout the one-line-trained model misses). Their score is the text score
   times `TEXT_GAIN`, so the text detector's own default (0.5, PaddleOCR's ``box_thresh``) lands on the plate
   default (0.4) and one threshold (``--thresh``, the red team's lowered one) moves every source alike.

Boxes of all sources are merged by `merge_regions` with the intersection over the smaller box and the
enclosing box: a plate seen whole at one scale and in part at another, or a text block inside a plate box,
becomes one box covering all of it (recall first: a mask too large costs little).
"""

from __future__ import annotations

import copy

import numpy as np

from anonlab.detect import Detector, make_regions, onnx_session
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import PLATE, Regions, nms

PAD_VALUE = 114
NMS_IOU = 0.5
DYNAMIC_LONG_SIDE = 1280
#: Scale of the second model pass, relative to the letterbox scale (see the module docstring).
SHRINK = 1 / 3
#: Aspect ratios (width / height) of a text block read as a two-line plate: plate standards put two-line
#: plates at 1.3–2.0 (Vietnam 190×140 mm, India 200×100, Korea 335×170, China 440×220, US motorcycle 7×4 in);
#: the text block inside is a little squarer or wider than the plate.
BLOCK_ASPECT = (0.7, 2.5)
#: Rows of text in a block read as a plate (two-line plates; a third row is a dealer or region line).
BLOCK_ROWS = (2, 3)
#: Text score → plate score: 0.8 puts the text detector's default 0.5 on the plate default 0.4.
TEXT_GAIN = 0.8
#: Boxes of different sources overlapping by more than this (intersection over the smaller box) are one plate.
MERGE_IOS = 0.5


def letterbox(image: np.ndarray, size: tuple[int, int], value: int = PAD_VALUE,
              gain: float | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size = (W, H)``, centred.

    Args:
        gain: the resize factor; None fits the image into ``size``. A gain that makes the image larger than
            ``size`` is a `ValueError`.

    Returns:
        ``(padded image, gain, (pad_x, pad_y))``; a point ``p`` of the image lands at ``p * gain + pad``.
    """
    import cv2

    h, w = image.shape[:2]
    tw, th = size
    if gain is None:
        gain = min(tw / w, th / h)
    nw, nh = max(1, int(round(w * gain))), max(1, int(round(h * gain)))
    if nw > tw or nh > th:
        raise ValueError(f"a {w}x{h} image at gain {gain:g} does not fit {tw}x{th}")
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if gain < 1 else cv2.INTER_LINEAR)
    px, py = (tw - nw) // 2, (th - nh) // 2
    out = np.full((th, tw, image.shape[2]), value, np.uint8)
    out[py : py + nh, px : px + nw] = image
    return out, gain, (px, py)


def decode(output: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """YOLOv8 one-class output ``(1, 5, N)`` -> ``(xyxy, score)`` above ``thresh`` in input pixels.

    For several classes (``(1, 4 + C, N)``) the best class score counts: every class is a plate here.
    """
    pred = np.asarray(output)[0]
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise AnonlabError(f"plate model output has shape {np.shape(output)}; expected 1×(4+classes)×N (YOLOv8)")
    score = pred[4:].max(axis=0)
    keep = score > thresh
    cx, cy, w, h = pred[:4, keep]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return xyxy, score[keep].astype(np.float32)


def letterbox_gain(width: int, height: int, size: tuple[int, int]) -> float:
    """The gain that fits a ``width × height`` frame into ``size = (W, H)``."""
    return min(size[0] / width, size[1] / height)


class PlateDetector(Detector):
    """YOLOv8n plate detector (bundled, sha256-checked) or a user's YOLOv8-format ONNX file: one pass.

    Args:
        model: a model file replacing the bundled one (None: bundled).
        thresh: score threshold (None: `default_thresh`).
        grayscale: feed the grey-level image (replicated to 3 channels). Plates are read by luminance
            contrast; colour casts (night, red brake lights) made the model miss readable plates, and the
            grey input found them at no cost elsewhere (see models/README.md).
        int8: the bundled int8 copy (``--int8``; ignored with ``model``).
        name: registry name of the bundled file (``plate_yolov8n_dynamic`` for the symbolic-size export).
    """

    name = "plate_yolov8n"
    label = PLATE
    #: Recall-first default chosen from the threshold curves on ../shared/eval/plates.
    default_thresh = 0.4

    def __init__(self, model: str | None = None, thresh: float | None = None, grayscale: bool = True,
                 int8: bool = False, name: str = "plate_yolov8n") -> None:
        super().__init__(thresh)
        self.grayscale = grayscale
        if int8 and model is None and name == "plate_yolov8n":
            name = "plate_yolov8n_int8"
        self.name = name
        path = model_path(name, model)
        record = model_record(name, model)
        self.models = [record]
        self.session = onnx_session(path, record["sha256"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise AnonlabError(f"plate model {path.name} takes a {len(shape)}-d input; expected 1×3×H×W")
        h, w = shape[2], shape[3]
        self.input_size = (w, h) if isinstance(w, int) and isinstance(h, int) else None

    def size_for(self, width: int, height: int, gain: float | None = None) -> tuple[int, int]:
        """Network input ``(W, H)`` for a frame: the model's fixed size, or (dynamic models) the frame fitted
        into `DYNAMIC_LONG_SIDE` or resized by ``gain``, padded to multiples of 32."""
        if self.input_size is not None:
            return self.input_size
        if gain is None:
            gain = min(1.0, DYNAMIC_LONG_SIDE / max(width, height))
        return (max(32, -(-int(round(width * gain)) // 32) * 32), max(32, -(-int(round(height * gain)) // 32) * 32))

    def base_gain(self, width: int, height: int) -> float:
        """The gain a frame of this size gets when run without one (fitted into the model's input)."""
        if self.input_size is not None:
            return letterbox_gain(width, height, self.input_size)
        return min(1.0, DYNAMIC_LONG_SIDE / max(width, height))

    def raw(self, frame: np.ndarray, thresh: float, gain: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores above ``thresh`` after NMS, in frame pixels (not clipped).

        Args:
            gain: run the frame resized by this factor (None: fitted into the model's input). For a
                fixed-size model it must fit (at most the letterbox gain).
        """
        if gain is None:
            gain = self.base_gain(frame.shape[1], frame.shape[0])
        image, gain, (px, py) = letterbox(frame, self.size_for(frame.shape[1], frame.shape[0], gain), gain=gain)
        if self.grayscale:
            import cv2

            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            blob = np.broadcast_to(grey[None, None], (1, 3) + grey.shape)
        else:
            blob = image[:, :, ::-1].transpose(2, 0, 1)[None]
        blob = np.ascontiguousarray(blob, dtype=np.float32) / 255.0
        (output,) = self.session.run(None, {self.input_name: blob})[:1]
        xyxy, score = decode(output, thresh)
        if len(score):
            keep = nms(xyxy, score, NMS_IOU)
            xyxy, score = xyxy[keep], score[keep]
            xyxy = (xyxy - np.array([px, py, px, py], np.float32)) / gain
        return xyxy, score

    def detect(self, frame: np.ndarray) -> Regions:
        xyxy, score = self.raw(frame, self.thresh)
        return make_regions(xyxy, score, PLATE, frame.shape[1], frame.shape[0])


def plate_blocks(quads: np.ndarray, scores: np.ndarray, aspect: tuple[float, float] = BLOCK_ASPECT,
                 rows: tuple[int, int] = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Text lines → blocks shaped like two-line plates.

    Args:
        quads: ``(N, 4, 2)`` text rectangles in frame pixels (`anonlab.detect.text.TextDetector.lines`).
        scores: ``(N,)`` their text scores.
        aspect: ``(low, high)`` width / height of a block kept.
        rows: ``(low, high)`` number of text rows in a block kept.

    Returns:
        ``(xyxy (M, 4) float32, score (M,) float32)``: each kept block's enclosing box and its best line score.
    """
    from anonlab.detect.text import count_rows, group_lines, quad_boxes

    boxes, heights = quad_boxes(quads)
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    block = group_lines(boxes, heights)
    out, out_score = [], []
    for b in range(int(block.max()) + 1):
        members = boxes[block == b]
        box = np.concatenate([members[:, :2].min(axis=0), members[:, 2:].max(axis=0)])
        ratio = (box[2] - box[0]) / max(float(box[3] - box[1]), 1e-6)
        if aspect[0] <= ratio <= aspect[1] and rows[0] <= count_rows(members) <= rows[1]:
            out.append(box)
            out_score.append(float(np.max(scores[block == b])))
    if not out:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.asarray(out, np.float32), np.asarray(out_score, np.float32)


class MultiScalePlates(Detector):
    """The default plate detector: the model at the letterbox scale and at `SHRINK` of it, and two-line text
    blocks, merged (see the module docstring for why each).

    Args:
        yolo: the model at the letterbox scale (bundled float or int8 file, or the user's).
        shrunk: the model for the shrunk view (a dynamic-size file, so the view costs only its pixels), or
            None for no shrunk view.
        text: the text detector (`anonlab.detect.text.TextDetector`), or None for no text blocks.
        shrink: scale of the shrunk view relative to the letterbox scale.
        thresh: plate score threshold for every source (None: the YOLO model's).
    """

    label = PLATE
    default_thresh = PlateDetector.default_thresh

    def __init__(self, yolo: PlateDetector, shrunk: PlateDetector | None = None, text=None,
                 shrink: float = SHRINK, thresh: float | None = None) -> None:
        super().__init__(yolo.thresh if thresh is None else thresh)
        self.yolo, self.shrunk, self.text, self.shrink = yolo, shrunk, text, float(shrink)
        self.name = "plates"
        self.models = [m for d in (yolo, shrunk, text) if d is not None for m in d.models]

    def views(self, frame: np.ndarray) -> list[Regions]:
        """The boxes of each source at the current threshold, unmerged: ``[letterbox, shrunk, text]``."""
        h, w = frame.shape[:2]
        parts = [make_regions(*self.yolo.raw(frame, self.thresh), PLATE, w, h)]
        if self.shrunk is not None:
            gain = self.yolo.base_gain(w, h) * self.shrink
            parts.append(make_regions(*self.shrunk.raw(frame, self.thresh, gain=gain), PLATE, w, h))
        else:
            parts.append(Regions.empty())
        if self.text is not None:
            # Lines are read down to the threshold the plate threshold maps to (never above the text default).
            quads, scores = self.text.lines(frame, min(self.text.default_thresh, self.thresh / TEXT_GAIN))
            xyxy, score = plate_blocks(quads, scores)
            score = score * TEXT_GAIN
            keep = score >= self.thresh
            parts.append(make_regions(xyxy[keep], score[keep], PLATE, w, h))
        else:
            parts.append(Regions.empty())
        return parts

    def detect(self, frame: np.ndarray) -> Regions:
        from anonlab.detect.tiling import merge_regions

        return merge_regions(Regions.merge(self.views(frame)), iou=MERGE_IOS, method="enclose", metric="ios")

    def with_threshold(self, thresh: float) -> "MultiScalePlates":
        out = copy.copy(self)
        out.thresh = float(thresh)
        out.yolo = self.yolo.with_threshold(thresh)
        return out

    def __repr__(self) -> str:
        return (f"MultiScalePlates(thresh={self.thresh:g}, shrink={self.shrink:g}, "
                f"shrunk={self.shrunk is not None}, text={self.text is not None})")
