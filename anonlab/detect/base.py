"""What every detector is: the ``Detector`` base, the union of several, the turned view, and their plumbing.

A detector is one verb, ``detector(frame_bgr) -> Regions`` (supervision's one ``Detections`` type flowing
through every model). The base class carries what all of them share: a threshold that can be changed on a
copy sharing the loaded model (the red-team pass re-runs detectors lower), a quick variant for tracked frames,
and the orientation choice (``at(turn)``, ``choose(frame)``; `anonlab.detect.orientation` holds the pure
turning functions). `Turned` and `UnionDetector` are detectors built from detectors, so they live here with
the base rather than beside the models. ONNX sessions are made and cached here, offline, from verified files,
on the device chosen once per process (`use_device`: the models' constructors, including ones added later, need
no device argument).
"""

from __future__ import annotations

import copy
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort

from anonlab.detect.orientation import choose_turn, turn_frame, unturn_regions
from anonlab.errors import AnonlabError
from anonlab.regions import DETECTOR, FACE, Regions, merge_regions

# anonlab/__init__.py keeps onnxruntime from recording telemetry; if something imported onnxruntime before
# anonlab, that came too late, and this stops what it would record from here on
ort.disable_telemetry_events()


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

#: Where the ONNX models run: ``auto`` (CUDA when onnxruntime-gpu is installed and an NVIDIA GPU is present,
#: else the CPU), ``cpu``, or ``cuda`` (an error in one line when it cannot be had).
DEVICES = ("auto", "cpu", "cuda")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
_device = "auto"


def use_device(device: str) -> None:
    """Run the ONNX sessions made from now on on ``device`` (one of `DEVICES`); `build_detector` calls it with
    ``settings.device``. Sessions are cached per device, so a change never reuses another device's session."""
    global _device
    if device not in DEVICES:
        raise AnonlabError(f"--device must be one of {', '.join(DEVICES)}; got {device!r}")
    _device = device


def gpu_present() -> bool:
    """An NVIDIA GPU and its driver are visible (the driver's device node or its GPU list)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return Path("/dev/nvidiactl").exists() or (gpus.is_dir() and any(gpus.iterdir()))


def providers_for(device: str | None = None) -> list[str]:
    """The onnxruntime execution providers for ``device`` (default: the one `use_device` chose), best first.

    ``auto`` takes CUDA when this onnxruntime has it (the ``gpu`` extra: onnxruntime-gpu) and a GPU is present,
    else the CPU; ``cuda`` without both is an `AnonlabError` naming what is missing. The CPU provider always
    comes last, for the operators CUDA does not run.
    """
    device = _device if device is None else device
    if device not in DEVICES:
        raise AnonlabError(f"--device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return [CPU]
    has_cuda = CUDA in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise AnonlabError("--device cuda: this onnxruntime has no CUDA provider; install anonlab[gpu] "
                           "(onnxruntime-gpu in place of onnxruntime), or use --device auto or cpu")
    if device == "cuda" and not gpu_present():
        raise AnonlabError("--device cuda: no NVIDIA GPU or driver found on this machine; use --device auto or cpu")
    return [CUDA, CPU] if has_cuda and gpu_present() else [CPU]


def onnx_session(path: Path, digest: str, transform: Callable[[bytes], bytes] | None = None):
    """An onnxruntime session for a verified model file on the chosen device (`providers_for`), cached by (file,
    sha256, transform, providers).

    ``transform`` rewrites the model bytes before loading (e.g. CenterFace's dynamic input dims).
    Offline by construction: the bytes come from a local file.
    """
    providers = providers_for()
    key = (str(Path(path).resolve()), digest, getattr(transform, "__qualname__", None), tuple(providers))
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
            session = ort.InferenceSession(data, sess_options=opts, providers=providers)
        except AnonlabError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types; protobuf errors too
            raise AnonlabError(f"cannot load model {Path(path).name}: {str(exc).strip().splitlines()[0][:200]}") from None
        if _device == "cuda" and CUDA not in session.get_providers():  # the CUDA libraries failed to load
            raise AnonlabError(f"--device cuda: {Path(path).name} could not start on the GPU (CUDA or cuDNN "
                               "libraries missing?); use --device auto or cpu")
        _sessions[key] = session
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
        return self if int(turn) % 4 == 0 else Turned(self, turn)

    def choose(self, frame) -> tuple[int, Regions]:
        """Which way up the content stands: the turn (0-3) under which faces are most plainly upright, and the
        detections made that way (`anonlab.detect.orientation.choose_turn`: this detector on the frame as it is,
        its face part turned three ways, and this detector again at a turn that wins)."""
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


#: Threads that run the members of unions beside the calling thread (`run_together`), made once: a thread made
#: per call gets a malloc arena of its own each time, and the process grew by 400 MB on a 300-frame clip.
_POOL_SIZE = 3
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_pool = threading.local()


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's threads: it makes its own pool when it needs one


os.register_at_fork(after_in_child=_forget_pool)


def _run_in_pool(call: Callable[[], object]):
    _in_pool.active = True  # a member that is itself a union runs its own members one after another
    return call()


def run_together(calls: Sequence[Callable[[], object]]) -> list:
    """Each call's result, in order: the first call runs in this thread, the others side by side in a small pool.

    For the members of a `UnionDetector`: onnxruntime and OpenCV release the GIL while a model runs, and one model
    alone does not keep two cores busy (its own threads wait on each other between layers), so the face and the
    plate models side by side finish a 720p keyframe sooner (measured on 2 cores, a 300-frame 720p clip, ``--speed
    balanced`` end to end, A B A B: 8-13 % less wall time, the same CPU time, 40 MB more memory). Results do not depend on the timing: each call returns its own
    boxes. An exception in any call is raised here, once all have ended. Calls made from a pool thread run
    one after another (nothing in the pool ever waits on the pool).
    """
    global _pool
    if len(calls) < 2 or getattr(_in_pool, "active", False):
        return [c() for c in calls]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="anonlab-detect")
    futures = [_pool.submit(_run_in_pool, c) for c in calls[1:]]
    try:
        first = calls[0]()
    finally:
        wait(futures)
    return [first] + [f.result() for f in futures]


class UnionDetector(Detector):
    """Runs several detectors on the same frame and merges their boxes per label.

    Overlapping boxes of one label (IoU above ``iou``) are fused into one box (weighted box fusion,
    `anonlab.detect.tiling.merge_regions`): a union for recall that does not double-count a face found by
    both models. ``iou=None`` only concatenates (detectors of different labels). Threshold changes are
    passed on to every member. The members run side by side (`run_together`).
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
        return self._union(run_together([lambda d=d: d(frame) for d in self.detectors]))

    def detect_quick(self, frame: np.ndarray) -> Regions:
        return self._union(run_together([lambda d=d: d.quick(frame) for d in self.detectors]))

    def _union(self, parts: list[Regions]) -> Regions:
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


def face_part(detector) -> "Detector | None":
    """The part of ``detector`` that finds faces (itself, a face member of a union, or None)."""
    if isinstance(detector, UnionDetector):
        faces = [d for d in detector.detectors if d.label == FACE]
        if len(faces) == len(detector.detectors):
            return detector
        return faces[0] if len(faces) == 1 else (UnionDetector(faces, iou=detector.iou) if faces else None)
    return detector if getattr(detector, "label", FACE) == FACE else None


class Turned(Detector):
    """``base`` run on the frame turned by ``turn`` quarter turns; boxes mapped back to the frame's pixels."""

    def __init__(self, base: Detector, turn: int) -> None:
        self.base, self.turn = base, int(turn) % 4
        self.name, self.label, self.models = base.name, base.label, base.models
        self.default_thresh, self.thresh = base.default_thresh, base.thresh

    def _run(self, detect, frame: np.ndarray) -> Regions:
        if self.turn == 0:
            return detect(frame)
        h, w = frame.shape[:2]
        r = detect(np.ascontiguousarray(turn_frame(frame, self.turn)))
        # the rows remember the turn that stood their content upright: the masker extends faces towards the chin
        return unturn_regions(r, self.turn, w, h).clip(w, h)

    def detect(self, frame: np.ndarray) -> Regions:
        return self._run(self.base, frame)

    def detect_quick(self, frame: np.ndarray) -> Regions:
        return self._run(self.base.quick, frame)

    def with_threshold(self, thresh: float) -> "Turned":
        return Turned(self.base.with_threshold(thresh), self.turn)

    def lowered(self, factor: float = 0.5) -> "Turned":
        return Turned(self.base.lowered(factor), self.turn)

    def __repr__(self) -> str:
        return f"Turned({self.base!r}, turn={self.turn})"
