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
3. a zoomed look at two-line text blocks: the PP-OCRv4 text detector (`anonlab.detect.text`) finds text at
   any size; lines grouped into a block of two or three rows between `BLOCK_ASPECT` wide (two-line and square
   plates: motorcycles, scooters, auto-rickshaws; the layout a small plate hides from the model) that
   neither view covers are cropped with context and shown to the model again with the block `ZOOM_WIDTH`
   px wide, where the scale curve says it reads two-line plates well. A block is a plate when the model,
   at that scale, finds a box on it at the plate threshold: the text detector says where to look, the plate
   model decides (text blocks taken alone doubled the false plates on plate-free footage: signs, logos).
   Text lines are read down to ``thresh / TEXT_GAIN`` (the text detector's default 0.5, PaddleOCR's
   ``box_thresh``, at the plate default 0.4), so a lowered threshold (the red team's) reads more text too.

Frames the letterbox shrinks (wider than 1280 or taller than 736 px: 1080p, 4K, large photos) are also seen in
**tiles** on the thorough pass (`tile_windows`): a 2×2 grid of letterbox-sized windows at the largest gain ≤ 1
that two windows with `TILE_OVERLAP` network pixels in common span (3×3 where 2×2 would shrink the frame under
`TILE_ENOUGH`: 4K), so that a far plate is seen at up to its own size instead of the letterbox's (a 1080p frame:
1.5× larger; 4K: 2.8×, at 0.93). The scale curve says why: one-line plates
28 px wide in the model's input are found 0.68 of the time, 42 px 0.88, 56 px 0.96; two-line plates need about
1.5× that. Tiles cost four model passes (nine on 4K), only where the letterbox shrinks the frame by at least
`TILE_MIN_ZOOM`.

`fuse_views` merges the views (weighted box fusion), `uncovered` picks the blocks to zoom into and
`combine` adds the confirmed ones; benchmarks call them on cached sources to draw threshold curves.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np

from anonlab.detect.base import Detector, make_regions, onnx_session
from anonlab.detect.text import count_rows, group_lines, quad_boxes
from anonlab.detect.tiling import tile_grid
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import PLATE, Regions, ios_matrix, merge_regions, nms

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
#: Text lines are read down to the plate threshold / TEXT_GAIN: the text detector's own default (0.5) at the
#: plate default (0.4), lower with a lowered plate threshold (the red team's).
TEXT_GAIN = 0.8
#: A text block lying more than this much (intersection over its own area) inside a model box is that plate.
MERGE_IOS = 0.5
#: Model boxes of the two views overlapping by more than this IoU are one plate (weighted box fusion).
VIEW_IOU = 0.4
#: A text block is looked at again with the block this many pixels wide: two-line plates are found with
#: recall >= 0.93 from 112 px wide up (the scale curve), 160 leaves a margin.
ZOOM_WIDTH = 160.0
#: Context around a zoomed block, in block sizes on every side.
ZOOM_CONTEXT = 1.0
#: At most this many zoomed looks a frame.
MAX_ZOOMS = 16
#: Tiles (see the module docstring): network pixels two neighbouring windows share (plates up to that wide in
#: the tiles' scale are seen whole by one of them; larger ones by the letterbox view), and the least gain over
#: the letterbox's that makes tiles worth their passes (a 768 px square photo: 1.04x, not worth it).
TILE_OVERLAP = 96
TILE_MIN_ZOOM = 1.25
#: More windows a side (up to TILE_MOST) where fewer would shrink the frame under TILE_ENOUGH: a 4K frame is seen
#: in 3x3 windows at 0.93 instead of 2x2 at 0.64 (a far plate 1.5x larger, where the scale curve is steepest); a
#: 1440p frame stays in 2x2 at 0.96 (nine passes for plates 4 % larger would not pay).
TILE_MOST = 3
TILE_ENOUGH = 0.8
#: A tile's box within this many pixels of a window side inside the frame is a plate the window cut.
TILE_EDGE = 2.0
#: Tile boxes at least this wide at the letterbox's scale are dropped: the scale curve reads plates that wide
#: there with recall >= 0.93 (two-line; one-line from 56 px), so the letterbox view speaks for them, and what
#: only the closer look calls a plate at that size is a badge or a sign (the maker's name above a scooter's plate).
TILE_MAX_WIDTH = 112.0
#: The text detector's largest side for plate blocks (960: 0.6x the cost of a 1280x736 model pass; 1280 found
#: 2 more of the 25 far auto-rickshaw plates for 2x that cost, see models/README.md).
TEXT_MAX_SIDE = 960


def letterbox(image: np.ndarray, size: tuple[int, int], value: int = PAD_VALUE,
              gain: float | None = None) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size = (W, H)``, centred.

    Args:
        gain: the resize factor; None fits the image into ``size``. A gain that makes the image larger than
            ``size`` is a `ValueError`.

    Returns:
        ``(padded image, gain, (pad_x, pad_y))``; a point ``p`` of the image lands at ``p * gain + pad``.
    """
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
    #: Recall-first default chosen from the threshold curves on the evaluation plates.
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

    def tiles(self, frame: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """The model on the tiles view (`tile_windows`): boxes and scores above ``thresh`` in frame pixels,
        each window's after NMS, without boxes the window cut (`TILE_EDGE`; a plate seen whole by two windows
        comes twice: `fuse_views` joins such boxes) and boxes the letterbox view sees large enough
        (`TILE_MAX_WIDTH`); empty where the frame needs no tiles."""
        h, w = frame.shape[:2]
        window = self.input_size or (DYNAMIC_LONG_SIDE, DYNAMIC_LONG_SIDE)
        gain, windows = tile_windows(w, h, window)
        if not windows:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        scaled = frame if gain == 1.0 else cv2.resize(frame, (max(1, int(round(w * gain))), max(1, int(round(h * gain)))),
                                                      interpolation=cv2.INTER_AREA)
        sw, sh = scaled.shape[1], scaled.shape[0]
        widest = TILE_MAX_WIDTH / self.base_gain(w, h)  # frame pixels
        boxes, scores = [], []
        for x1, y1, x2, y2 in windows:
            xyxy, score = self.raw(scaled[y1:y2, x1:x2], thresh, gain=1.0)
            # a box against a window side that is not the frame's is a plate cut by the window: the neighbour
            # window sees it whole (it is narrower than the overlap), or the letterbox view does (it is wider)
            cut = (((xyxy[:, 0] <= TILE_EDGE) & (x1 > 0)) | ((xyxy[:, 2] >= x2 - x1 - TILE_EDGE) & (x2 < sw))
                   | ((xyxy[:, 1] <= TILE_EDGE) & (y1 > 0)) | ((xyxy[:, 3] >= y2 - y1 - TILE_EDGE) & (y2 < sh)))
            keep = ~cut & ((xyxy[:, 2] - xyxy[:, 0]) / gain < widest)
            boxes.append((xyxy[keep] + np.array([x1, y1, x1, y1], np.float32)) / gain)
            scores.append(score[keep])
        return np.concatenate(boxes).astype(np.float32).reshape(-1, 4), np.concatenate(scores).astype(np.float32)


def tile_windows(width: int, height: int, window: tuple[int, int],
                 overlap: int = TILE_OVERLAP) -> tuple[float, list[tuple[int, int, int, int]]]:
    """The tiles view of a ``width × height`` frame for a model taking ``window = (W, H)`` network pixels.

    Returns:
        ``(gain, windows)``: the frame is resized by ``gain`` (the largest ≤ 1 at which n windows sharing
        ``overlap`` px span each side, for the fewest n from 2 to `TILE_MOST` whose gain reaches `TILE_ENOUGH`,
        else `TILE_MOST`: frames over about 3080×1720 px, 4K and large photos, get three a side) and cut into
        ``windows`` ``(x1, y1, x2, y2)`` in the resized frame's pixels (`anonlab.detect.tiling.tile_grid`).
        No windows when that gain is under `TILE_MIN_ZOOM` times the letterbox's (the frame fits the window,
        or nearly).
    """
    fit = letterbox_gain(width, height, window)
    for n in range(2, TILE_MOST + 1):
        gain = min(1.0, (n * window[0] - (n - 1) * overlap) / width, (n * window[1] - (n - 1) * overlap) / height)
        if gain >= TILE_ENOUGH:
            break
    if gain < TILE_MIN_ZOOM * fit:
        return gain, []
    rw, rh = max(1, int(round(width * gain))), max(1, int(round(height * gain)))
    return gain, tile_grid(rw, rh, window, overlap)


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


def fuse_views(letterbox_view: tuple[np.ndarray, np.ndarray], shrunk_view: tuple[np.ndarray, np.ndarray] | None,
               thresh: float, tiles_view: tuple[np.ndarray, np.ndarray] | None = None) -> Regions:
    """The model's boxes of its views at ``thresh``, fused where they overlap by IoU > `VIEW_IOU`; boxes of the
    tiles view only where no box of the other two covers them (`uncovered`).

    Weighted box fusion: the better-scoring view pulls the box, so a badly placed box from the edge of one
    view's size range does not stretch it (measured: the enclosing box lost recall at IoU 0.3).
    """
    parts = [_rows(*letterbox_view, thresh)] + ([_rows(*shrunk_view, thresh)] if shrunk_view is not None else [])
    fused = merge_regions(Regions.merge(parts), iou=VIEW_IOU, method="wbf")
    if tiles_view is None:
        return fused
    # the tiles are for plates the other views miss: a tile box lying inside one of their boxes is that plate
    # (or, at up to 3x the letterbox's scale, a fragment of a large one: one line of a two-line plate)
    extra = _rows(*tiles_view, thresh)
    extra = extra[np.flatnonzero(uncovered(extra.xyxy, fused.xyxy))] if len(extra) else extra
    if not len(extra):
        return fused
    return merge_regions(Regions.merge([fused, extra]), iou=VIEW_IOU, method="wbf")


def _rows(xyxy, score, thresh: float) -> Regions:
    score = np.asarray(score, np.float32).reshape(-1)
    keep = score >= thresh
    n = int(keep.sum())
    if not n:
        return Regions.empty()
    return Regions(xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4)[keep], score=score[keep], label=np.full(n, PLATE))


def uncovered(blocks: np.ndarray, plates: np.ndarray) -> np.ndarray:
    """Which text blocks no plate box covers: at most `MERGE_IOS` of the block inside any box, ``(N,)`` bool.

    A block inside a plate box adds nothing a mask would not cover (the text of one large two-line plate
    forms several blocks), and needs no zoomed look.
    """
    blocks = np.asarray(blocks, np.float32).reshape(-1, 4)
    plates = np.asarray(plates, np.float32).reshape(-1, 4)
    if not len(blocks) or not len(plates):
        return np.ones(len(blocks), bool)
    return ios_matrix(blocks, plates).max(axis=1) <= MERGE_IOS


def zoom_window(block: np.ndarray, width: int, height: int, target: float = ZOOM_WIDTH,
                context: float = ZOOM_CONTEXT) -> tuple[tuple[int, int, int, int], float]:
    """The crop ``(x1, y1, x2, y2)`` around a text block and the gain that makes the block ``target`` px wide.

    The crop adds ``context`` times the block's longer side on every side (the plate's border and the
    vehicle around it, which the model saw in training), clipped to the frame.
    """
    x1, y1, x2, y2 = (float(v) for v in block)
    m = context * max(x2 - x1, y2 - y1)
    crop = (int(max(0, x1 - m)), int(max(0, y1 - m)), int(min(width, np.ceil(x2 + m))), int(min(height, np.ceil(y2 + m))))
    return crop, target / max(x2 - x1, 1.0)


def best_overlap(block: np.ndarray, xyxy: np.ndarray, score: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The best-scoring box that overlaps ``block`` by more than half of the smaller of the two, and its score."""
    if not len(score):
        return None, 0.0
    b = np.asarray(block, np.float32).reshape(1, 4)
    overlap = np.maximum(ios_matrix(b, xyxy)[0], ios_matrix(xyxy, b)[:, 0])
    ok = np.nonzero(overlap > 0.5)[0]
    if not len(ok):
        return None, 0.0
    j = ok[np.argmax(score[ok])]
    return xyxy[j], float(score[j])


def combine(plates: Regions, confirmed: tuple[np.ndarray, np.ndarray], thresh: float) -> Regions:
    """Plate boxes of the two views plus the text blocks the zoomed look confirmed at ``thresh``.

    Args:
        plates: `fuse_views` output.
        confirmed: ``(xyxy (M, 4), score (M,))``: for each uncovered text block, the model's box and score in
            the zoomed crop (frame pixels; score 0 where it saw nothing).
    """
    extra = _rows(*confirmed, thresh)
    if not len(extra):
        return plates
    return merge_regions(Regions.merge([plates, extra]), iou=VIEW_IOU, method="wbf")


class MultiScalePlates(Detector):
    """The default plate detector: the model at the letterbox scale and at `SHRINK` of it, and a zoomed look
    at every two-line text block neither view covers (see the module docstring for why each).

    Args:
        yolo: the model at the letterbox scale (bundled float or int8 file, or the user's).
        shrunk: the model for the shrunk view and the zoomed looks (a dynamic-size file, so each costs only
            its pixels), or None for neither.
        text: the text detector (`anonlab.detect.text.TextDetector`), or None for no text blocks.
        shrink: scale of the shrunk view relative to the letterbox scale.
        thresh: plate score threshold for every source (None: the YOLO model's).
        tiles: on the thorough pass, also see frames the letterbox shrinks in tiles (`tile_windows`).
    """
    label = PLATE
    default_thresh = PlateDetector.default_thresh

    def __init__(self, yolo: PlateDetector, shrunk: PlateDetector | None = None, text=None,
                 shrink: float = SHRINK, thresh: float | None = None, tiles: bool = True) -> None:
        super().__init__(yolo.thresh if thresh is None else thresh)
        self.yolo, self.shrunk, self.text, self.shrink = yolo, shrunk, text, float(shrink)
        self.use_tiles = bool(tiles)
        self.name = "plates"
        self.models = [m for d in (yolo, shrunk, text) if d is not None for m in d.models]

    def sources(self, frame: np.ndarray, thresh: float | None = None) -> tuple:
        """Each source's raw output at ``thresh`` (default: the detector's): ``(letterbox (xyxy, score), shrunk
        (xyxy, score) or None, text blocks (xyxy, text score) or None, tiles (xyxy, score) or None)``.
        Benchmarks cache these at a low threshold and combine them at any higher one."""
        thresh = self.thresh if thresh is None else float(thresh)
        h, w = frame.shape[:2]
        letter = self.yolo.raw(frame, thresh)
        shrunk = None
        if self.shrunk is not None:
            shrunk = self.shrunk.raw(frame, thresh, gain=self.yolo.base_gain(w, h) * self.shrink)
        blocks = None
        if self.text is not None and self.shrunk is not None:
            # lines down to the text score the plate threshold maps to (the text default at the plate default)
            blocks = plate_blocks(*self.text.lines(frame, min(self.text.default_thresh, thresh / TEXT_GAIN)))
        tiles = self.yolo.tiles(frame, thresh) if self.use_tiles else None
        return letter, shrunk, blocks, tiles

    def zoom(self, frame: np.ndarray, blocks: np.ndarray, thresh: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model's look at each text block, zoomed so the block is `ZOOM_WIDTH` px wide: per block the best
        box overlapping it (frame pixels) and its score (0 and the block itself where nothing was seen)."""
        thresh = self.thresh if thresh is None else float(thresh)
        h, w = frame.shape[:2]
        blocks = np.asarray(blocks, np.float32).reshape(-1, 4)
        out_xyxy, out_score = blocks.copy(), np.zeros(len(blocks), np.float32)
        for i, block in enumerate(blocks):
            (x1, y1, x2, y2), gain = zoom_window(block, w, h)
            xyxy, score = self.shrunk.raw(frame[y1:y2, x1:x2], thresh, gain=gain)
            box, s = best_overlap(block - np.array([x1, y1, x1, y1], np.float32), xyxy, score)
            if box is not None:
                out_xyxy[i], out_score[i] = box + np.array([x1, y1, x1, y1], np.float32), s
        return out_xyxy, out_score

    def detect(self, frame: np.ndarray) -> Regions:
        letter, shrunk, blocks, tiles = self.sources(frame)
        plates = fuse_views(letter, shrunk, self.thresh, tiles)
        confirmed = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        if blocks is not None and len(blocks[0]):
            open_ = uncovered(blocks[0], plates.xyxy)
            todo = blocks[0][open_]
            # the text blocks with the best text scores first, at most MAX_ZOOMS looks a frame (a page of text
            # holds many two-line blocks and no plate; a street scene a few)
            todo = todo[np.argsort(-blocks[1][open_], kind="stable")[:MAX_ZOOMS]]
            confirmed = self.zoom(frame, todo)
        out = combine(plates, confirmed, self.thresh)
        return make_regions(out.xyxy, out.score, PLATE, frame.shape[1], frame.shape[0])

    def detect_quick(self, frame: np.ndarray) -> Regions:
        """The two views without the text blocks and the tiles, for video keyframes between thorough ones: they
        are most of the cost, and a plate they led to is found again at the next thorough pass (at least once a
        second) and carried by the tracker between."""
        h, w = frame.shape[:2]
        letter = self.yolo.raw(frame, self.thresh)
        shrunk = None
        if self.shrunk is not None:
            shrunk = self.shrunk.raw(frame, self.thresh, gain=self.yolo.base_gain(w, h) * self.shrink)
        out = fuse_views(letter, shrunk, self.thresh)
        return make_regions(out.xyxy, out.score, PLATE, w, h)

    def with_threshold(self, thresh: float) -> "MultiScalePlates":
        out = copy.copy(self)
        out.thresh = float(thresh)
        out.yolo = self.yolo.with_threshold(thresh)
        return out

    def __repr__(self) -> str:
        return (f"MultiScalePlates(thresh={self.thresh:g}, shrink={self.shrink:g}, "
                f"shrunk={self.shrunk is not None}, text={self.text is not None}, tiles={self.use_tiles})")
