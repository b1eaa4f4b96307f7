"""Settings of one anonymisation run: what the CLI flags, the workbench and batch jobs all fill in.

One frozen dataclass, validated on construction, round-trips through JSON (case files, batch ledger,
reports). Unknown keys in a loaded dict are an error, so a typo in a settings file is never ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from anonlab.errors import AnonlabError
from anonlab.regions import LABELS

MASK_STYLES = ("blur", "pixelate", "solid")
#: Fields added after settings digests were first recorded, with their defaults: left out of `Settings.digest`
#: while they hold them.
LATER_FIELDS = {"thorough_per_second": 2.0, "max_upscale": 2.0, "device": "auto", "plate_tiles": True}
#: Where the models run (`anonlab.detect.base.providers_for`).
DEVICES = ("auto", "cpu", "cuda")
MASK_SHAPES = ("rect", "ellipse")


@dataclass(frozen=True)
class Settings:
    """Everything that decides which regions are masked and how.

    Attributes:
        what: labels to find and mask, a subset of `anonlab.regions.LABELS` (``face``, ``plate``, ``head``,
            ``person``, ``text``); default faces and plates.
        thresh: detector score threshold (None: each detector's recall-first default).
        mask: ``blur`` | ``pixelate`` | ``solid``.
        shape: ``rect`` | ``ellipse``.
        mask_scale: boxes are grown by this factor (1.3 = 15 % each side) before masking.
        feather: soften the mask edge (fraction of the box size, 0 = hard edge).
        detect_every: full detection every k frames (1 = every frame); optical flow and the tracker carry
            boxes between, and at least 4 detections run per second whatever k says. Trades recall for
            speed (benchmarks/eval_tracking.py): on semi-synthetic clips per-frame recall 0.884 at k=1,
            0.879 at k=3, 0.856 at k=6; k=6 is the measured >= 2x deface setting. Default 3: recall first.
        max_gap: frames a track that the detector has lost (a partial occlusion, motion blur, a turned head)
            is still masked, carried by optical flow or held where it was last seen, and followed back before
            its first detection; also the longest gap inside a track that interpolation fills. 50 (2 s at 25
            fps): measured on clips where faces are partly hidden for 12-48 frames, the earlier 15 left
            occluded faces bare for up to 26 frames in a row (``benchmarks/eval_tracking.py --sections
            occlusion``). Memory holds about this many grey frames.
        lead: frames a mask starts before a track's first detection.
        trail: frames a mask ends after a track's last detection.
        crf: video quality (lower = better, 18 visually lossless for H.264; the same scale is given to HEVC,
            and VP9/AV1 get crf + 12, their scale's equivalent).
        jpeg_quality: JPEG quality 1-95 for photo outputs; None (default) reuses the source JPEG's own
            quantisation tables and chroma subsampling, so the file stays near its input's size.
        keep_metadata: keep photo EXIF / container metadata (off: stripped).
        face_model / plate_model: model file paths overriding the bundled ones (None: bundled).
        second_face_detector: add the independent YuNet detector to CenterFace (union for recall).
        int8: run the bundled int8 copies of CenterFace and the plate model (faster on CPUs with VNNI; see
            ``models/README.md`` for what they were measured to cost in recall: nothing for plates, 3 faces
            in 2065 for faces). Off by default: recall first.
        thorough_per_second: video keyframes a second that run the detector's thorough pass (every model on the
            whole frame); the keyframes between run its quick pass (`anonlab.track.analyse.thorough_every`).
            Default 2: a face only the second face model sees is found within half a second.
        max_upscale: frames smaller than one 720p frame are enlarged up to this many times for the face models
            (small faces; `anonlab.detect.tiling.AutoScale`); 1 turns the upscale off.
        plate_tiles: frames the plate model's 1280×736 letterbox shrinks (1080p, 4K, large photos) are also seen
            in tiles (four; nine above about 3080×1720 px: 4K) at up to their own size on thorough passes, for far
            plates (`anonlab.detect.plates.tile_windows`); off: faster on such frames, far plates missed more often.
        device: where the ONNX models run: ``auto`` (default: an NVIDIA GPU when the ``gpu`` extra is installed
            and one is present, else the CPU), ``cpu`` or ``cuda`` (`anonlab.detect.base.providers_for`).
        audio: what to do with a video's sound track (`anonlab.media.audio`): ``keep`` (default: packets
            copied untouched, a faithful export), ``mute``, ``beep`` or ``voice`` (disguise). Photos ignore it.
        audio_ranges: ``((start, stop), ...)`` seconds on the video's timeline (frame 0 at 0) where ``audio``
            applies, sorted and merged on construction; empty with a mode other than ``keep``: the whole
            track. A text ``"12.5-14,30-31.2"`` is accepted too. Ranges need a mode other than ``keep``.
    """

    what: tuple[str, ...] = ("face", "plate")
    thresh: float | None = None
    mask: str = "blur"
    shape: str = "rect"
    mask_scale: float = 1.3
    feather: float = 0.0
    detect_every: int = 3
    max_gap: int = 50
    lead: int = 3
    trail: int = 3
    crf: int = 18
    jpeg_quality: int | None = None
    keep_metadata: bool = False
    face_model: str | None = None
    plate_model: str | None = None
    second_face_detector: bool = True
    int8: bool = False
    thorough_per_second: float = 2.0
    max_upscale: float = 2.0
    plate_tiles: bool = True
    device: str = "auto"
    audio: str = "keep"
    audio_ranges: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        what = tuple(self.what.split(",")) if isinstance(self.what, str) else tuple(self.what)
        object.__setattr__(self, "what", what)
        bad = [w for w in what if w not in LABELS]
        if not what or bad:
            got = ",".join(map(str, what)) or "nothing"
            raise AnonlabError(f"--what must name one or more of {', '.join(LABELS)}; got {got!r}")
        if self.thresh is not None and not 0.0 < self.thresh < 1.0:
            raise AnonlabError(f"--thresh must lie between 0 and 1; got {self.thresh}")
        if self.mask not in MASK_STYLES:
            raise AnonlabError(f"--mask must be one of {', '.join(MASK_STYLES)}; got {self.mask!r}")
        if self.shape not in MASK_SHAPES:
            raise AnonlabError(f"--shape must be one of {', '.join(MASK_SHAPES)}; got {self.shape!r}")
        if not 1.0 <= self.mask_scale <= 4.0:
            raise AnonlabError(f"--mask-scale must lie between 1 and 4; got {self.mask_scale}")
        if not 0.0 <= self.feather <= 0.5:
            raise AnonlabError(f"--feather must lie between 0 and 0.5; got {self.feather}")
        for name, least in (("detect_every", 1), ("max_gap", 0), ("lead", 0), ("trail", 0)):
            value = getattr(self, name)
            flag = f"--{name.replace('_', '-')}"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
                raise AnonlabError(f"{flag} must be a whole number; got {value!r}")
            if value < least:
                raise AnonlabError(f"{flag} must be {least} or more")
            object.__setattr__(self, name, int(value))  # 4.0 from a JSON file is 4
        if not 0.05 <= self.thorough_per_second <= 60:
            raise AnonlabError(f"--thorough-per-second must lie between 0.05 and 60; got {self.thorough_per_second}")
        if not 1.0 <= self.max_upscale <= 4.0:
            raise AnonlabError(f"--max-upscale must lie between 1 and 4; got {self.max_upscale}")
        if self.device not in DEVICES:
            raise AnonlabError(f"--device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if not 0 <= self.crf <= 51:
            raise AnonlabError(f"--crf must lie between 0 and 51; got {self.crf}")
        if self.jpeg_quality is not None:
            q = self.jpeg_quality
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not float(q).is_integer() or not 1 <= q <= 95:
                raise AnonlabError(f"--jpeg-quality must be a whole number from 1 to 95; got {q!r}")
            object.__setattr__(self, "jpeg_quality", int(q))
        self._check_audio()

    def _check_audio(self) -> None:
        """``audio`` and ``audio_ranges`` (see the class doc); `AnonlabError` in one line naming the flag."""
        if self.audio == "keep" and not self.audio_ranges:
            object.__setattr__(self, "audio_ranges", ())  # [] from a JSON file is ()
            return  # the default: nothing to import
        # here, not at the top: importing anonlab.media loads PyAV and Pillow, which plain settings never need
        from anonlab.media.audio import AUDIO_MODES, check_ranges, parse_ranges

        if self.audio not in AUDIO_MODES:
            raise AnonlabError(f"--audio must be one of {', '.join(AUDIO_MODES)}; got {self.audio!r}")
        ranges = self.audio_ranges
        try:
            ranges = parse_ranges(ranges) if isinstance(ranges, str) else check_ranges(ranges)
        except AnonlabError as exc:
            raise AnonlabError(f"--audio-ranges: {exc}") from None
        if ranges and self.audio == "keep":
            raise AnonlabError("--audio-ranges needs --audio mute, beep or voice (keep copies the audio untouched)")
        object.__setattr__(self, "audio_ranges", ranges)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["what"] = list(self.what)
        d["audio_ranges"] = [list(r) for r in self.audio_ranges]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        if not isinstance(data, dict):
            raise AnonlabError("settings must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AnonlabError(f"unknown setting(s): {', '.join(repr(k)[:40] for k in unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise AnonlabError(f"invalid settings: {exc}") from None

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    @property
    def digest(self) -> str:
        """Short sha256 of the settings, for ledgers and reports.

        The audio fields, and the speed fields added with the speed profiles (`LATER_FIELDS`), count only when
        they differ from their defaults, so settings that do not touch them keep the digest they had before
        those fields existed (a batch ledger resumes instead of starting again).
        """
        d = self.to_dict()
        if self.audio == "keep" and not self.audio_ranges:
            del d["audio"], d["audio_ranges"]
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --- named speed profiles --------------------------------------------------------------------------------------
#: What each ``--speed`` profile sets, together. ``thorough`` is the defaults (recall first) and the default
#: profile; the others trade per-frame recall for speed. Values given explicitly (a CLI flag, a settings file)
#: override the profile's (`speed_settings`). What each was measured to find and cost is not typed here: see
#: `speed_figures` (written by ``benchmarks/bench_throughput.py --profiles``).
SPEED_PROFILES: dict[str, dict] = {
    "thorough": {"detect_every": 3, "thorough_per_second": 2.0, "int8": False, "max_upscale": 2.0,
                 "second_face_detector": True, "plate_tiles": True},
    "balanced": {"detect_every": 6, "thorough_per_second": 1.0, "int8": True, "max_upscale": 2.0,
                 "second_face_detector": True, "plate_tiles": True},
    "fast": {"detect_every": 6, "thorough_per_second": 0.5, "int8": True, "max_upscale": 1.5,
             "second_face_detector": False, "plate_tiles": False},
}
DEFAULT_SPEED = "thorough"
#: The measured figures of each profile, next to this module so that an installed package carries them.
SPEED_FIGURES = Path(__file__).with_name("speed_profiles.json")


def speed_settings(profile: str = DEFAULT_SPEED, base: "Settings | None" = None, **explicit) -> "Settings":
    """``base`` (default `Settings()`) with ``profile``'s values (`SPEED_PROFILES`), then the ``explicit`` ones.

    Example:
        >>> speed_settings("fast", detect_every=2).detect_every       # an explicit value wins
        2
        >>> speed_settings("fast").int8
        True

    Raises:
        AnonlabError: an unknown profile name.
    """
    if profile not in SPEED_PROFILES:
        raise AnonlabError(f"--speed must be one of {', '.join(SPEED_PROFILES)}; got {profile!r}")
    return (base or Settings()).replace(**{**SPEED_PROFILES[profile], **explicit})


def speed_of(settings: "Settings") -> str | None:
    """The profile whose values ``settings`` hold (None: a mix of them, e.g. a profile with a flag over it)."""
    for name, values in SPEED_PROFILES.items():
        if all(getattr(settings, k) == v for k, v in values.items()):
            return name
    return None


def speed_figures(path: Path | None = None) -> dict:
    """The measured figures per profile (`SPEED_FIGURES`: ``{"profiles": {name: {...}}, "machine": ..., ...}``);
    empty when the file is missing or unreadable (the help then says "not measured")."""
    try:
        data = json.loads(Path(path or SPEED_FIGURES).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("profiles"), dict) else {}


def speed_summary(profile: str, figures: dict | None = None) -> str:
    """One line on ``profile``: what it sets and what it was measured to find and cost (from `speed_figures`).

    Example:
        >>> speed_summary("fast", {})
        'fast: detect every 6, thorough 0.5/s, int8, upscale <= 1.5x, CenterFace alone, no plate tiles: not measured yet'
    """
    v = SPEED_PROFILES[profile]
    what = [f"detect every {v['detect_every']}", f"thorough {v['thorough_per_second']:g}/s"]
    what += ["int8"] if v["int8"] else []
    what += [f"upscale <= {v['max_upscale']:g}x"] if v["max_upscale"] != 2.0 else []
    what += ["CenterFace alone"] if not v["second_face_detector"] else []
    what += ["no plate tiles"] if not v["plate_tiles"] else []
    figures = speed_figures() if figures is None else figures
    row = (figures.get("profiles") or {}).get(profile)
    if not row:
        return f"{profile}: {', '.join(what)}: not measured yet"
    if row.get("settings", v) != v:  # the table changed since the benchmark ran: its figures are another's
        return f"{profile}: {', '.join(what)}: not measured with these settings yet"
    parts = []
    recall = row.get("recall") or {}
    if "all" in recall:
        parts.append(f"per-frame recall {recall['all']:.3f} (faces {recall.get('face', float('nan')):.3f}, "
                     f"plates {recall.get('plate', float('nan')):.3f})")
    photos = row.get("photo_recall") or {}
    if "face" in photos and "plate" in photos:
        parts.append(f"recall on the eval photos: faces {photos['face']:.3f}, plates {photos['plate']:.3f}")
    for size in ("720p", "1080p"):
        if size in (row.get("fps") or {}):
            parts.append(f"{size} {row['fps'][size]:.1f} fps ({row['x_realtime'][size]:.2f}x real time)")
    return f"{profile}: {', '.join(what)}: " + ", ".join(parts)
