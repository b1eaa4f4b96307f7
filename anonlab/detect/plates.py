"""Licence plates: a YOLOv8n plate detector exported to ONNX, run with onnxruntime.

Input ``images`` ``1×3×H×W`` float32 RGB in [0, 1], the frame letterboxed into it (aspect kept, padded with
grey 114, as Ultralytics trains); by default the grey-level image is fed in all three channels. Output ``1×5×N``: ``cx, cy, w, h, score`` per anchor point in input
pixels; score threshold, then NMS. The bundled model (``plate_yolov8n_1280x736.onnx``) takes 1280×736; a
user model (``--plate-model``) with the same output layout may have another fixed size, or dynamic dims
(then the frame is padded to a multiple of 32, at most 1280 px on the long side).
"""

from __future__ import annotations

import numpy as np

from anonlab.detect import Detector, make_regions, onnx_session
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import PLATE, Regions, nms

PAD_VALUE = 114
NMS_IOU = 0.5
DYNAMIC_LONG_SIDE = 1280


def letterbox(image: np.ndarray, size: tuple[int, int], value: int = PAD_VALUE) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size = (W, H)``, centred.

    Returns:
        ``(padded image, gain, (pad_x, pad_y))``; a point ``p`` of the image lands at ``p * gain + pad``.
    """
    import cv2

    h, w = image.shape[:2]
    tw, th = size
    gain = min(tw / w, th / h)
    nw, nh = max(1, int(round(w * gain))), max(1, int(round(h * gain)))
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
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


class PlateDetector(Detector):
    """YOLOv8n plate detector (bundled, sha256-checked) or a user's YOLOv8-format ONNX file.

    Args:
        model: a model file replacing the bundled one (None: bundled).
        thresh: score threshold (None: `default_thresh`).
        grayscale: feed the grey-level image (replicated to 3 channels). Plates are read by luminance
            contrast; colour casts (night, red brake lights) made the model miss readable plates, and the
            grey input found them at no cost elsewhere (see models/README.md).
        int8: the bundled int8 copy (``--int8``; ignored with ``model``).
    """

    name = "plate_yolov8n"
    label = PLATE
    #: Recall-first default chosen from the threshold curves on ../shared/eval/plates.
    default_thresh = 0.4

    def __init__(self, model: str | None = None, thresh: float | None = None, grayscale: bool = True,
                 int8: bool = False) -> None:
        super().__init__(thresh)
        self.grayscale = grayscale
        name = "plate_yolov8n_int8" if int8 and model is None else "plate_yolov8n"
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

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """Network input ``(W, H)`` for a frame: the model's fixed size, or the frame fitted for dynamic models."""
        if self.input_size is not None:
            return self.input_size
        gain = min(1.0, DYNAMIC_LONG_SIDE / max(width, height))
        return (max(32, -(-int(width * gain) // 32) * 32), max(32, -(-int(height * gain) // 32) * 32))

    def raw(self, frame: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores above ``thresh`` after NMS, in frame pixels (not clipped)."""
        image, gain, (px, py) = letterbox(frame, self.size_for(frame.shape[1], frame.shape[0]))
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
