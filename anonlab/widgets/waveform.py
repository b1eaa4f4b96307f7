"""The workbench's sound-track strip: a waveform under the player with the audio ranges drawn over it.

`waveform_peaks` decodes the first audio stream once and keeps, per pixel column, the lowest and highest
sample (channels mixed): memory is two floats a column whatever the duration, and the decode streams.
`draw_strip` paints the strip as an RGB image from those peaks, the case's ranges (coloured by mode), the
in/out marks being set and the current frame. Plain numpy, no widgets: the view (`anonlab.widgets.workbench`)
shows the image and the tests read it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

__all__ = ["MODE_COLORS", "STRIP_HEIGHT", "draw_strip", "waveform_peaks"]

log = logging.getLogger(__name__)

#: Height of the strip, pixels.
STRIP_HEIGHT = 32
#: RGB of the ranges per audio mode (``keep``: ranges marked but not applied).
MODE_COLORS = {"keep": (150, 150, 150), "mute": (200, 40, 40), "beep": (230, 140, 0), "voice": (130, 60, 200)}
_BACKGROUND = (245, 245, 245)
_WAVE = (90, 110, 130)
_NOW = (0, 0, 0)
_MARK = (0, 140, 70)


def waveform_peaks(path: str | Path, columns: int, duration: float, origin: float = 0.0) -> np.ndarray | None:
    """Lowest and highest sample per column of the first audio stream of ``path``, channels averaged.

    Args:
        path: the video.
        columns: pixel columns of the strip; column ``k`` covers ``[k, k + 1) * duration / columns`` seconds.
        duration: seconds the strip spans (the video's).
        origin: the video's first frame on the file's timeline, seconds (the strip's 0).

    Returns:
        ``(2, columns)`` float32 (row 0 the minima, row 1 the maxima, in [-1, 1]; 0 where no sample fell),
        or None when the file has no audio stream or it cannot be decoded.
    """
    columns = max(1, int(columns))
    lo = np.zeros(columns, np.float32)
    hi = np.zeros(columns, np.float32)
    scale = columns / max(duration, 1e-9)
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.audio:
                return None
            stream = c.streams.audio[0]
            rate = stream.codec_context.sample_rate or 48000
            to_float = av.AudioResampler(format="fltp", layout="mono", rate=rate)
            pos = None
            for frame in c.decode(stream):
                for f in to_float.resample(frame):
                    x = f.to_ndarray()[0]
                    start = float(f.pts * f.time_base) if f.pts is not None else pos
                    if start is None:
                        start = origin
                    pos = start + len(x) / rate
                    cols = np.floor((start - origin + np.arange(len(x)) / rate) * scale).astype(np.int64)
                    keep = (cols >= 0) & (cols < columns)
                    if not keep.any():
                        continue
                    x, cols = x[keep], cols[keep]
                    starts = np.r_[0, np.flatnonzero(np.diff(cols)) + 1]
                    np.minimum.at(lo, cols[starts], np.minimum.reduceat(x, starts))
                    np.maximum.at(hi, cols[starts], np.maximum.reduceat(x, starts))
    except av.FFmpegError as exc:
        log.warning("%s: the sound track cannot be drawn (%s)", Path(path).name, exc)
        return None
    return np.stack([lo, hi])


def draw_strip(peaks: np.ndarray | None, width: int, duration: float, *, ranges: Iterable[Sequence[float]] = (),
               mode: str = "keep", marks: Sequence[float | None] = (None, None), now: float | None = None,
               height: int = STRIP_HEIGHT) -> np.ndarray:
    """The strip as an RGB uint8 image of ``(height, width, 3)``.

    Args:
        peaks: `waveform_peaks`' result for ``width`` columns (None: no waveform, only ranges and marks).
        duration: seconds the strip spans.
        ranges: ``[(start, stop), ...]`` seconds, shaded in `MODE_COLORS` [``mode``]; with a mode other than
            ``keep`` and no ranges, the whole strip is shaded (the whole track).
        marks: the in and out marks being set (seconds, None: not set), drawn as green ticks.
        now: the current frame's time (seconds), a black line.
    """
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _BACKGROUND
    px = width / max(duration, 1e-9)
    color = np.array(MODE_COLORS.get(mode, MODE_COLORS["keep"]), np.float32)
    spans = list(ranges) or ([(0.0, duration)] if mode != "keep" else [])
    for a, b in spans:
        x0, x1 = int(np.floor(a * px)), int(np.ceil(b * px))
        x0, x1 = max(0, min(width, x0)), max(0, min(width, max(x1, x0 + 1)))
        img[:, x0:x1] = (img[:, x0:x1] * 0.55 + color * 0.45).astype(np.uint8)
        img[:2, x0:x1] = color.astype(np.uint8)  # a solid band on top: readable even over a loud waveform
    if peaks is not None and peaks.shape[1] == width:
        mid = (height - 1) / 2
        top = np.clip(np.round(mid - peaks[1] * mid), 0, height - 1).astype(int)
        bottom = np.clip(np.round(mid - peaks[0] * mid), 0, height - 1).astype(int)
        rows = np.arange(height)[:, None]
        wave = (rows >= top[None, :]) & (rows <= bottom[None, :])
        img[wave] = _WAVE
    for t in marks:
        if t is not None:
            x = int(min(max(round(t * px), 0), width - 1))
            img[:, x] = _MARK
            img[-6:, max(0, x - 2):x + 3] = _MARK
    if now is not None:
        x = int(min(max(round(now * px), 0), width - 1))
        img[:, x] = _NOW
    return img
