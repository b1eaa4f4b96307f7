"""anonlab masks as a moviepy effect, for people who edit with moviepy.

moviepy stays optional: it is imported only when an effect is made, and a missing install gives one clear
line (``pip install 'anonlab[moviepy]'``). PyAV remains anonlab's own reader and writer; use this when
moviepy is already your editing tool.

moviepy hands frames over as RGB; anonlab works in BGR. The effect converts both ways, so regions,
detectors and `Settings` mean exactly what they mean everywhere else in anonlab.

Where the regions come from, per frame of the clip (``t`` in seconds from the clip's start):

- a `Regions` of the whole video (e.g. ``analysis.regions`` or `anonlab.report.interchange.read_cvat_xml`): rows
  whose ``frame`` is ``int(t * fps + 1e-5)``, moviepy's own rule for the frame shown at ``t``. ``fps`` is the
  effect's ``fps`` or else the clip's. This assumes a constant frame rate: moviepy mis-seeks variable-frame-
  rate video, so for VFR footage use anonlab's own export instead;
- a callable ``t -> Regions``;
- a detector (``frame_bgr -> Regions``, e.g. ``anonlab.detect.build_detector(settings)``), run on every frame.
  Several sources may be combined; their regions are all masked.

Example:
    >>> from moviepy import VideoFileClip                                   # doctest: +SKIP
    >>> from anonlab.render.fx import AnonymizeEffect
    >>> from anonlab.settings import Settings
    >>> from anonlab.detect import build_detector                           # doctest: +SKIP
    >>> clip = VideoFileClip("street.mp4")                                  # doctest: +SKIP
    >>> settings = Settings(mask="blur", shape="ellipse")
    >>> effect = AnonymizeEffect(detector=build_detector(settings), settings=settings)  # doctest: +SKIP
    >>> masked = clip.with_effects([effect])                                # doctest: +SKIP
    >>> masked.write_videofile("street_anonymized.mp4")                     # doctest: +SKIP

    With regions corrected in CVAT (frame indices of the same video):

    >>> from anonlab.report.interchange import read_cvat_xml                       # doctest: +SKIP
    >>> masked = clip.with_effects([AnonymizeEffect(read_cvat_xml("tracks.xml"))])  # doctest: +SKIP

    Or as a plain image function with ``image_transform``, which hands over no time, so only with a
    detector (regions by frame index need ``with_effects``):

    >>> masked = clip.image_transform(AnonymizeEffect(detector=detect).mask_rgb)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

from anonlab.errors import AnonlabError
from anonlab.render.mask import mask_frame
from anonlab.regions import Regions
from anonlab.settings import Settings

__all__ = ["AnonymizeEffect", "anonymize_clip", "require_moviepy"]

_FRAME_EPS = 1e-5  # moviepy's FFMPEG_VideoReader.get_frame_number: int(fps * t + 0.00001)


def require_moviepy():
    """Import and return the ``moviepy`` module, or raise one actionable `AnonlabError`."""
    try:
        return importlib.import_module("moviepy")
    except ImportError:
        raise AnonlabError(
            "the moviepy effect needs moviepy 2.x: pip install 'anonlab[moviepy]' (anonlab itself does not need it)"
        ) from None


class AnonymizeEffect:
    """A moviepy effect that masks faces and plates in every frame of a clip.

    Use it with ``clip.with_effects([AnonymizeEffect(...)])``. It is registered as a (virtual) subclass of
    ``moviepy.Effect`` when created, so moviepy treats it as one of its own; only the clip's image is
    changed (its mask and audio are left as they are).

    Args:
        regions: a `Regions` of the whole video (``frame`` = frame index), or a callable ``t -> Regions``
            (``t`` in seconds), or None.
        settings: mask settings (style, shape, padding, feather); default `Settings()`.
        detector: a callable ``frame_bgr -> Regions`` run on every frame, or None.
        fps: frame rate that maps ``t`` to a frame index of ``regions``; default the clip's ``fps``.

    Raises:
        AnonlabError: moviepy not installed, or neither regions nor a detector given.
    """

    def __init__(self, regions: Regions | Callable[[float], Regions] | None = None, settings: Settings | None = None,
                 *, detector: Callable[[np.ndarray], Regions] | None = None, fps: float | None = None) -> None:
        moviepy = require_moviepy()
        effect_base = getattr(moviepy, "Effect", None)
        if effect_base is not None and not issubclass(AnonymizeEffect, effect_base):
            effect_base.register(AnonymizeEffect)
        if regions is None and detector is None:
            raise AnonlabError("AnonymizeEffect needs regions, a detector, or both")
        if regions is not None and not (isinstance(regions, Regions) or callable(regions)):
            raise AnonlabError("AnonymizeEffect regions must be a Regions or a function t -> Regions")
        self.regions = regions
        self.settings = settings or Settings()
        self.detector = detector
        self.fps = fps
        self._by_frame: dict[int, Regions] | None = None

    # moviepy's Effect protocol: ``copy()`` then ``apply(clip)``.
    def copy(self) -> "AnonymizeEffect":
        import copy

        return copy.copy(self)

    def apply(self, clip):
        """Return a copy of ``clip`` whose frames are masked (moviepy calls this from ``with_effects``)."""
        if self.fps is None and isinstance(self.regions, Regions):
            self.fps = getattr(clip, "fps", None)
            if not self.fps:
                raise AnonlabError("the clip has no fps; give AnonymizeEffect(fps=...) to place regions in time")
        return clip.transform(lambda get_frame, t: self.mask_rgb(get_frame(t), t))

    # --- the per-frame work ---------------------------------------------------------------------------
    def regions_at(self, t: float, frame_bgr: np.ndarray | None = None) -> Regions:
        """The regions to mask at time ``t`` (seconds), from every source given."""
        parts = []
        if isinstance(self.regions, Regions):
            if self.fps is None:
                raise AnonlabError("AnonymizeEffect(fps=...) is needed to place regions in time")
            if self._by_frame is None:
                frames = self.regions.frame
                self._by_frame = {int(f): self.regions[frames == f] for f in np.unique(frames).tolist()}
            parts.append(self._by_frame.get(int(float(t) * float(self.fps) + _FRAME_EPS), Regions.empty()))
        elif self.regions is not None:
            parts.append(self.regions(t))
        if self.detector is not None and frame_bgr is not None:
            parts.append(self.detector(frame_bgr))
        return Regions.merge(parts)

    def mask_rgb(self, frame: np.ndarray, t: float = 0.0) -> np.ndarray:
        """Mask one moviepy (RGB) frame shown at ``t`` seconds; returns a new uint8 RGB frame."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        bgr = np.ascontiguousarray(frame[..., 2::-1]) if frame.ndim == 3 else frame
        regions = self.regions_at(t, bgr)
        if not len(regions):
            return frame.copy()
        out = mask_frame(bgr, regions, self.settings)
        if frame.ndim != 3:
            return out
        rgb = np.empty_like(frame)
        rgb[..., :3] = out[..., ::-1]
        if frame.shape[2] > 3:
            rgb[..., 3:] = frame[..., 3:]
        return rgb

    def __repr__(self) -> str:
        src = type(self.regions).__name__ if self.regions is not None else None
        return f"AnonymizeEffect(regions={src}, detector={self.detector!r}, mask={self.settings.mask})"


def anonymize_clip(clip, regions=None, settings: Settings | None = None, *, detector=None, fps: float | None = None):
    """``clip.with_effects([AnonymizeEffect(regions, settings, detector=..., fps=...)])`` in one call."""
    return clip.with_effects([AnonymizeEffect(regions, settings, detector=detector, fps=fps)])
