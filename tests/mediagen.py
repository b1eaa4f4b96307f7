"""Media the tests make for themselves: every frame carries its own index as a barcode.

A barcode row of 16 black/white blocks along the top edge encodes the frame index, so a test can check
which frame a reader returned (or an exporter wrote) exactly, through compression, rotation and VFR.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 12
BLOCK = 8


def barcode_frame(n: int, width: int = 160, height: int = 96, seed: int = 0) -> np.ndarray:
    """A BGR frame whose top row of blocks encodes ``n``; the rest is a smooth gradient with a square."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = 128
    bits = [(n >> b) & 1 for b in range(BITS)]
    img[:BLOCK, : BITS * BLOCK] = 0
    for b, bit in enumerate(bits):
        img[:BLOCK, b * BLOCK : (b + 1) * BLOCK] = 255 if bit else 0
    return img


def read_barcode(frame: np.ndarray) -> int:
    """Inverse of `barcode_frame` (robust to compression: samples block centres)."""
    row = frame[BLOCK // 2, BLOCK // 2 : BITS * BLOCK : BLOCK].mean(axis=1)
    return int(sum(1 << b for b, v in enumerate(row) if v > 127))


def make_clip(
    path: str | Path,
    n_frames: int = 30,
    width: int = 160,
    height: int = 96,
    fps: int = 25,
    *,
    vfr: bool = False,
    rotation: int = 0,
    audio: bool = False,
    gop: int = 12,
    frame_fn=None,
    audio_codec: str = "aac",
    audio_rate: int = 48000,
    audio_layout: str = "mono",
    audio_fn=None,
    audio_bit_rate: int | None = None,
    video_codec: str = "libx264",
) -> Path:
    """Write an H.264 clip whose *displayed* frames are ``barcode_frame(n)`` (or ``frame_fn(n)``).

    ``rotation`` stores coded pixels turned back and a display matrix, as phones do. ``vfr`` draws
    irregular frame durations in a 1/1000 time base. ``audio`` adds a sine track (440 Hz, 0.2 peak, on every
    channel; ``audio_fn(t)`` gives other samples: ``t`` seconds, shape ``(n,)``, returns ``(channels, n)``
    float) encoded with ``audio_codec`` (AAC) at ``audio_rate`` Hz in ``audio_layout``, lasting as long as
    the video. ``video_codec`` replaces H.264 (``libvpx-vp9`` for WebM).
    """
    path = Path(path)
    frame_fn = frame_fn or (lambda n: barcode_frame(n, width, height))
    turns = (rotation // 90) % 4
    out = av.open(str(path), "w")
    vs = out.add_stream(video_codec, rate=fps)
    coded_w, coded_h = (height, width) if turns % 2 else (width, height)
    vs.width, vs.height, vs.pix_fmt = coded_w, coded_h, "yuv420p"
    vs.options = ({"crf": "12", "g": str(gop), "preset": "ultrafast"} if video_codec == "libx264"
                  else {"g": str(gop), "deadline": "realtime", "cpu-used": "8"})
    if rotation:
        vs.set_display_rotation(rotation)
    tb = Fraction(1, 1000) if vfr else Fraction(1, fps)
    vs.time_base = tb
    vs.codec_context.time_base = tb
    rng = np.random.default_rng(7)
    pts = 0
    a_stream = None
    if audio:
        a_stream = out.add_stream(audio_codec, rate=audio_rate)
        a_stream.layout = audio_layout
        if audio_bit_rate:
            a_stream.bit_rate = audio_bit_rate
        if av.codec.Codec(audio_codec, "w").experimental:  # FFmpeg's own Vorbis encoder
            a_stream.codec_context.options = {"strict": "experimental"}
    for n in range(n_frames):
        img = frame_fn(n)
        coded = np.ascontiguousarray(np.rot90(img, -turns)) if turns else img
        vf = av.VideoFrame.from_ndarray(coded, format="bgr24")
        vf.pts, vf.time_base = pts, tb
        for p in vs.encode(vf):
            out.mux(p)
        pts += int(rng.choice([20, 40, 80])) if vfr else 1
    for p in vs.encode():
        out.mux(p)
    if a_stream is not None:
        duration = pts * float(tb)
        samples = int(audio_rate * duration)
        t = np.arange(samples) / audio_rate
        channels = av.AudioLayout(audio_layout).nb_channels
        if audio_fn is None:
            wave = np.repeat((0.2 * np.sin(2 * np.pi * 440 * t))[None], channels, axis=0)
        else:
            wave = np.asarray(audio_fn(t), np.float64).reshape(channels, samples)
        wave = wave.astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = np.ascontiguousarray(wave[:, start : start + 1024])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=audio_layout)
            af.sample_rate = audio_rate
            af.pts = start
            af.time_base = Fraction(1, audio_rate)
            for p in a_stream.encode(af):
                out.mux(p)
        for p in a_stream.encode():
            out.mux(p)
    out.close()
    return path


def ffmpeg_exe() -> str | None:
    """The ffmpeg binary imageio-ffmpeg ships (a dev dependency through moviepy), if any."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # pragma: no cover - optional
        return None
