"""Which detectors a `Settings` asks for, built and combined: the only place that knows every model.

`build_detector` is what the pipeline, the batch workers and the workbench call; `face_detectors` and
`plate_detector` give the parts on their own (the review's disagreement check and the red-team pass compare
them). Defaults are recall-first: see the package docstring and ``models/README.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anonlab.detect.base import Detector, UnionDetector, onnx_session, use_device
from anonlab.detect.centerface import CenterFace
from anonlab.detect.fusion import DEFAULT_THRESH, YUNET_OFFSET, FusedFaces
from anonlab.detect.mediapipe_backend import MediapipeFaceDetector
from anonlab.detect.night import NightView
from anonlab.detect.persons import PersonDetector
from anonlab.detect.plates import TEXT_MAX_SIDE, MultiScalePlates, PlateDetector
from anonlab.detect.scrfd import SCRFD, is_scrfd
from anonlab.detect.text import TextDetector
from anonlab.detect.tiling import AutoScale
from anonlab.detect.yunet import MAX_SIDE, YuNet
from anonlab.errors import AnonlabError
from anonlab.models import model_record
from anonlab.regions import LABELS, TEXT

if TYPE_CHECKING:
    from anonlab.settings import Settings


def _face_model_kind(path: str | None) -> str:
    """``mediapipe`` (.tflite/.task), ``scrfd`` (an ONNX with SCRFD's outputs) or ``centerface``."""
    if path is None:
        return "centerface"
    if str(path).lower().endswith((".tflite", ".task")):
        return "mediapipe"
    record = model_record("centerface", path)  # checks the file exists; its sha256 keys the session cache
    try:
        return "scrfd" if is_scrfd(onnx_session(path, record["sha256"])) else "centerface"
    except AnonlabError:
        return "centerface"  # CenterFace's loader (dims rewritten first) gives the error a user can act on


#: Default small-face strategy: frames smaller than one 720p frame are upscaled (at most 2×) until they
#: reach this many pixels; larger frames run at their own size. See `anonlab.detect.tiling.AutoScale`.
PIXEL_BUDGET = 1280 * 720
MAX_UPSCALE = 2.0


def face_detectors(settings: "Settings", *, pixel_budget: float = PIXEL_BUDGET,
                   max_upscale: float | None = None) -> list[Detector]:
    """The individual face detectors ``settings`` asks for, each ready to run on its own.

    CenterFace (or the user's ``face_model``: a CenterFace- or SCRFD-format ``.onnx``, or a mediapipe
    ``.tflite`` / ``.task``), then YuNet when ``settings.second_face_detector``; each behind the small-face upscale
    (`AutoScale`: frames under ``pixel_budget`` pixels are enlarged, at most ``max_upscale`` times;
    ``max_upscale=1`` turns upscaling off; None: ``settings.max_upscale``, by default `MAX_UPSCALE`). The review's
    disagreement check compares them; `build_detector` unites them.
    """
    max_upscale = float(getattr(settings, "max_upscale", MAX_UPSCALE) if max_upscale is None else max_upscale)
    dets: list[Detector] = []
    kind = _face_model_kind(settings.face_model)
    if kind == "mediapipe":
        dets.append(MediapipeFaceDetector(settings.face_model, thresh=settings.thresh))
    elif kind == "scrfd":
        dets.append(AutoScale(SCRFD(settings.face_model, thresh=settings.thresh), pixel_budget=pixel_budget,
                              max_scale=max_upscale))
    else:
        dets.append(AutoScale(CenterFace(settings.face_model, thresh=settings.thresh, int8=settings.int8),
                              pixel_budget=pixel_budget, max_scale=max_upscale))
    if settings.second_face_detector:
        dets.append(AutoScale(YuNet(thresh=settings.thresh), pixel_budget=pixel_budget, max_scale=max_upscale,
                              max_side=MAX_SIDE))
    return dets


#: On dark frames (`anonlab.detect.night.NightView`) plates and faces are kept at these factors times their
#: threshold, in the frame and in its night view: see models/README.md ("Night").
PLATE_DARK_FACTOR = 0.75
FACE_DARK_FACTOR = 1.0
#: On grey frames (`anonlab.detect.night.is_grey`) faces are kept at this factor times their threshold: the
#: evaluation faces made grey reach the precision they have in colour (0.674) between 0.85 (0.661) and 0.9
#: (0.690) times it; recall 0.918 at 1 (`benchmarks/eval_grey.py`).
FACE_GREY_FACTOR = 0.87


def plate_detector(settings: "Settings") -> Detector:
    """The plate detector: YOLOv8n at the letterbox scale and at a third of it, a zoomed look at two-line text
    blocks, and tiles of frames the letterbox shrinks when ``settings.plate_tiles``
    (`anonlab.detect.plates.MultiScalePlates`).

    With the user's ``plate_model`` (same output format) every model pass runs that file: the bundled weights
    are never mixed in (their licence may be why it was replaced). ``int8`` runs the letterbox pass on the int8
    copy; the shrunk view and the zoomed looks stay float (they cost a small part of a frame). Dark frames are
    also seen denoised and luma-stretched (`anonlab.detect.night.NightView`).
    """
    yolo = PlateDetector(settings.plate_model, thresh=settings.thresh, int8=settings.int8)
    if settings.plate_model is not None:
        shrunk = PlateDetector(settings.plate_model, thresh=settings.thresh)
    else:
        shrunk = PlateDetector(thresh=settings.thresh, name="plate_yolov8n_dynamic")
    return NightView(MultiScalePlates(yolo, shrunk, TextDetector(max_side=TEXT_MAX_SIDE),
                                      tiles=getattr(settings, "plate_tiles", True)), factor=PLATE_DARK_FACTOR)


#: The ``text`` label's detector sees a frame at most this many network pixels on its longer side, and keeps
#: lines scoring at least `TEXT_LABEL_THRESH` (recall first). Chosen from recall against letter height on
#: generated documents, badges and screens (`benchmarks/eval_text.py`): lines under 10 px tall are found
#: 0.64-0.75 of the time at 960 px and at 0.5, every time at 1280 px and 0.3; 1600 px adds nothing and costs
#: about twice as much on 1080p frames.
TEXT_LABEL_MAX_SIDE = 1280
TEXT_LABEL_THRESH = 0.3
#: Frames smaller than `TEXT_LABEL_MAX_SIDE` are enlarged up to this many times, as small faces are
#: (`MAX_UPSCALE`): a name badge in a 600 px photo has letters of 6-7 px, found only once enlarged.
TEXT_LABEL_MAX_UPSCALE = 2.0


def text_detector(settings: "Settings") -> Detector:
    """Lines of text (badges, documents, screens) as ``text`` boxes: the PP-OCRv4 detector, the same model file
    as the plates' second proposer, with its own size and threshold (`TEXT_LABEL_MAX_SIDE`, `TEXT_LABEL_THRESH`;
    ``settings.thresh`` overrides the threshold)."""
    thresh = TEXT_LABEL_THRESH if settings.thresh is None else settings.thresh
    return TextDetector(thresh, label=TEXT, max_side=TEXT_LABEL_MAX_SIDE, max_upscale=TEXT_LABEL_MAX_UPSCALE)


def detector_for(label: str, settings: "Settings", **face_options) -> Detector:
    """The combined detector of one label (one of `anonlab.regions.LABELS`).

    Raises:
        AnonlabError: an unknown label, or a model file that is missing or altered.
    """
    if label == "face":
        faces = face_detectors(settings, **face_options)
        # dark frames are also seen denoised and luma-stretched (`anonlab.detect.night`)
        if _face_model_kind(settings.face_model) == "mediapipe":  # other score scale: plain union
            one = faces[0] if len(faces) == 1 else UnionDetector(faces, name="faces")
            return NightView(one, factor=FACE_DARK_FACTOR)
        # CenterFace (score as it is) [+ YuNet, calibrated]: noisy-or fusion, size-dependent threshold.
        offsets = [0.0, YUNET_OFFSET][: len(faces)]
        thresh = DEFAULT_THRESH if settings.thresh is None else settings.thresh
        return NightView(FusedFaces(faces, offsets, thresh=thresh, name="faces" if len(faces) > 1 else faces[0].name),
                         factor=FACE_DARK_FACTOR, grey_factor=FACE_GREY_FACTOR)
    if label == "plate":
        return plate_detector(settings)
    if label == "text":
        return text_detector(settings)
    if label in ("head", "person"):
        return PersonDetector(settings.thresh, what=(label,))
    raise AnonlabError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")


def build_detector(settings: "Settings", **face_options) -> Detector:
    """The detector for ``settings.what``: faces (CenterFace ∪ YuNet, fused), plates (YOLOv8n), text (PP-OCRv4),
    heads and persons (MoveNet MultiPose: one run gives both).

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
    use_device(getattr(settings, "device", "auto"))
    labels = list(settings.what)
    if "head" in labels and "person" in labels:  # one model gives both: run it once
        labels.remove("person")
    parts = [PersonDetector(settings.thresh, what=("head", "person")) if label == "head" and "person" in settings.what
             else detector_for(label, settings, **face_options) for label in labels]
    return parts[0] if len(parts) == 1 else UnionDetector(parts, name="+".join(settings.what), iou=None)
