"""Optional mediapipe face detector (the ``[mediapipe]`` extra), never the default.

mediapipe 1.2.x ships no model: the user supplies a FaceDetector ``.tflite`` / ``.task`` file with the
metadata mediapipe's Tasks API requires (``--face-model face_detector.tflite``). Measured on this project:
BlazeFace finds no face under 24 px in 720p frames, so this backend is for users who have chosen it, with
the recall figures of the evaluation harness in front of them. mediapipe is imported only when this
backend is built, so the core install never needs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anonlab.detect.base import Detector, make_regions
from anonlab.errors import AnonlabError
from anonlab.models import sha256_file
from anonlab.regions import FACE, Regions

SUFFIXES = (".tflite", ".task")


def _import_mediapipe():
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError:
        raise AnonlabError(
            "the mediapipe face backend needs mediapipe, which is not installed: pip install 'anonlab[mediapipe]' "
            "(or use the bundled CenterFace model: leave --face-model out)"
        ) from None
    return mp, BaseOptions, vision


class MediapipeFaceDetector(Detector):
    """mediapipe Tasks FaceDetector on a user-supplied model file.

    Args:
        model: path of a FaceDetector ``.tflite`` or ``.task`` file (required; nothing is downloaded).
        thresh: minimum detection confidence (None: `default_thresh`).

    Raises:
        AnonlabError: no file given, file missing or of the wrong kind, mediapipe not installed, or
            mediapipe rejecting the file.
    """
    name = "mediapipe"
    label = FACE
    default_thresh = 0.3

    def __init__(self, model: str | None, thresh: float | None = None) -> None:
        super().__init__(thresh)
        if not model:
            raise AnonlabError(
                "the mediapipe backend needs a face detector model file: --face-model PATH.tflite|.task "
                "(mediapipe ships none and anonlab downloads nothing)"
            )
        path = Path(model).expanduser()
        if path.suffix.lower() not in SUFFIXES:
            raise AnonlabError(f"mediapipe model {path.name!r} must be a .tflite or .task file")
        if not path.is_file():
            raise AnonlabError(f"mediapipe model file {str(path)!r} does not exist")
        self.path = path
        self.models = [{"name": "mediapipe", "file": path.name, "sha256": sha256_file(path),
                        "licence": "user-supplied", "source": "user-supplied", "bundled": False}]
        self._mp, base_options, vision = _import_mediapipe()
        self._vision = vision
        self._base_options = base_options
        self._detectors: dict[float, object] = {}
        self._get(self.thresh)  # fail now, not on the first frame, if mediapipe rejects the file

    def _get(self, thresh: float):
        if thresh not in self._detectors:
            options = self._vision.FaceDetectorOptions(
                base_options=self._base_options(model_asset_path=str(self.path)),
                running_mode=self._vision.RunningMode.IMAGE,
                min_detection_confidence=float(thresh),
            )
            try:
                self._detectors[thresh] = self._vision.FaceDetector.create_from_options(options)
            except Exception as exc:  # mediapipe raises RuntimeError/ValueError with long messages
                raise AnonlabError(
                    f"mediapipe cannot use {self.path.name}: {str(exc).strip().splitlines()[0][:200]}"
                ) from None
        return self._detectors[thresh]

    def detect(self, frame: np.ndarray) -> Regions:
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        result = self._get(self.thresh).detect(image)
        xyxy, score = [], []
        for det in result.detections:
            b = det.bounding_box
            xyxy.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height])
            score.append(det.categories[0].score if det.categories else 1.0)
        return make_regions(np.asarray(xyxy, np.float32), np.asarray(score, np.float32), FACE,
                            frame.shape[1], frame.shape[0])
