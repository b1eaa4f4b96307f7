"""Media the tests make for themselves, of the kinds real archives hold (PyAV only, no external tools).

Each maker writes a short clip with one property set the way a camera or phone sets it: an odd frame size
(VP9, as screen recorders write), a 10-bit HLG HEVC phone clip with HDR metadata, BT.709 tags, an anamorphic
SAR, interlaced top-field-first video, a WebM screen recording with Opus audio. Frames carry the barcode of
`mediagen.barcode_frame` and a bright square at a known place, so a test can mask it through ``regions_in``
and look at the pixels of each field.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mediagen import barcode_frame

#: Where the bright "face" square sits in every frame (x1, y1, x2, y2), displayed pixels.
SQUARE = (40, 40, 88, 88)


def frame_with_square(n: int, width: int, height: int) -> np.ndarray:
    img = barcode_frame(n, width, height)
    x1, y1, x2, y2 = SQUARE
    img[y1:y2, x1:x2] = (230, 240, 250)
    img[y1 + 8 : y2 - 8 : 4, x1 + 4 : x2 - 4] = (20, 20, 20)  # a striped texture a blur must remove
    return img


def _sine(stream, seconds: float, rate: int) -> None:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(wave), 960):
        chunk = wave[start : start + 960]
        if len(chunk) < 960:
            chunk = np.pad(chunk, (0, 960 - len(chunk)))
        af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
        yield from stream.encode(af)
    yield from stream.encode()


def write_clip(path: Path, *, codec: str = "libx264", width: int = 160, height: int = 96, n_frames: int = 12,
               fps: int | Fraction = 25, pix_fmt: str = "yuv420p", options: dict | None = None, tags: dict | None = None,
               sar: Fraction | None = None, field_order: int | None = None, codec_tag: str | None = None,
               audio: str | None = None, container: str | None = None) -> Path:
    """Write a clip of `frame_with_square` frames with the given encoder, format, tags and audio."""
    path = Path(path)
    out = av.open(str(path), "w", format=container)
    vs = out.add_stream(codec, rate=fps)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    vs.options = dict(options or {})
    ctx = vs.codec_context
    for key, value in (tags or {}).items():
        setattr(ctx, key, value)
    if sar:
        ctx.sample_aspect_ratio = sar
    if field_order:
        ctx.field_order = field_order
    if codec_tag:
        vs.codec_tag = codec_tag
    astream = None
    if audio:
        astream = out.add_stream(audio, rate=48000)
        astream.layout = "mono"
    for n in range(n_frames):
        vf = av.VideoFrame.from_ndarray(frame_with_square(n, width, height), format="bgr24").reformat(
            format=pix_fmt, dst_colorspace=(tags or {}).get("colorspace") if (tags or {}).get("colorspace") in (1, 9) else None)
        for key, value in (tags or {}).items():
            setattr(vf, key, value)
        vf.pts = n
        vf.time_base = 1 / Fraction(fps)
        for p in vs.encode(vf):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    if astream is not None:
        for p in _sine(astream, n_frames / fps, 48000):
            out.mux(p)
    out.close()
    return path


def encode_bgr(path: Path, frames: list[np.ndarray], *, pix_fmt: str = "yuv444p", crf: int = 0,
               tags: dict | None = None) -> Path:
    """Write BGR ``frames`` with x264 (``crf`` 0: lossless in 4:4:4), the stream tagged with ``tags``."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.options = {"crf": str(crf), "preset": "ultrafast"}
        for key, value in (tags or {}).items():
            setattr(vs.codec_context, key, value)
        for n, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = n
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return Path(path)


BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
HLG = {"color_primaries": 9, "color_trc": 18, "colorspace": 9, "color_range": 1}
#: An iPhone-like mastering display (P3 primaries in BT.2020 container, 1000 nits) and light levels.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def odd_size_vp9(d: Path) -> Path:
    return write_clip(d / "odd.webm", codec="libvpx-vp9", width=161, height=97, options={"crf": "20", "b": "0"},
                      audio="libopus")


def hlg_hevc_10bit(d: Path) -> Path:
    params = f"log-level=error:master-display={MASTER_DISPLAY}:max-cll=1000,400"
    return write_clip(d / "phone_hlg.mov", codec="libx265", pix_fmt="yuv420p10le", tags=HLG, codec_tag="hvc1",
                      options={"crf": "22", "preset": "ultrafast", "x265-params": params}, audio="aac")


def bt709_tagged(d: Path) -> Path:
    return write_clip(d / "bt709.mp4", tags=BT709, options={"crf": "16", "preset": "ultrafast"})


def anamorphic(d: Path) -> Path:
    return write_clip(d / "anamorphic.mp4", width=176, height=144, sar=Fraction(4, 3),
                      options={"crf": "16", "preset": "ultrafast"})


def interlaced_tff(d: Path) -> Path:
    """Interlaced PAL-style H.264, top field first, with the TFF flag on every frame (as broadcast has).

    PyAV cannot set a frame's field flags, so a progressive clip is re-encoded by the ffmpeg that
    imageio-ffmpeg ships (a dev dependency, through moviepy) with ``setfield=tff``.
    """
    import subprocess

    from mediagen import ffmpeg_exe

    exe = ffmpeg_exe()
    if exe is None:  # pragma: no cover - imageio-ffmpeg is a dev dependency
        raise RuntimeError("interlaced test media needs imageio-ffmpeg")
    progressive = write_clip(d / "progressive.mkv", width=176, height=144, tags=BT709,
                             options={"crf": "4", "preset": "ultrafast"})
    out = d / "interlaced.mkv"
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(progressive), "-vf", "setfield=tff",
                    "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-crf", "14",
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(out)], check=True)
    return out


def webm_vp9_opus(d: Path) -> Path:
    return write_clip(d / "rec.webm", codec="libvpx-vp9", options={"crf": "20", "b": "0"}, audio="libopus")


def dv_pal_widescreen(d: Path) -> Path:
    """A DV camcorder capture: DV25 PAL 720x576, anamorphic 16:9 (SAR 64:45), interlaced, PCM audio in AVI."""
    return write_clip(d / "tape.avi", codec="dvvideo", width=720, height=576, sar=Fraction(64, 45),
                      audio="pcm_s16le")


def webm_vp8_bt709(d: Path) -> Path:
    """A VP8 WebM whose header says BT.709 (a browser or old camera recording): the VP8 decoder itself says
    BT.601 for every VP8 stream, so only a reader that trusts the header keeps the tag."""
    return write_clip(d / "vp8.webm", codec="libvpx", tags=BT709, options={"crf": "10", "b": "1M"},
                      audio="libopus")


def mjpeg_webcam(d: Path) -> Path:
    """A webcam capture: Motion JPEG, full-range 4:2:2 (yuvj422p), NTSC rate 30000/1001, in AVI; the output is
    Matroska, whose 1 ms clock cannot hold 1001/30000 s exactly."""
    return write_clip(d / "webcam.avi", codec="mjpeg", pix_fmt="yuvj422p", fps=Fraction(30000, 1001),
                      options={"q:v": "3"}, audio="pcm_s16le")


def prores_hq(d: Path) -> Path:
    """An editor's master: ProRes 422 HQ, 10-bit, BT.709, PCM audio, in MOV."""
    return write_clip(d / "master.mov", codec="prores_ks", pix_fmt="yuv422p10le", tags=BT709,
                      options={"profile": "3", "vendor": "apl0"}, audio="pcm_s16le")


def ffv1_archive(d: Path) -> Path:
    """An archive copy: FFV1 version 3 (lossless), 10-bit 4:2:2, FLAC audio, in Matroska."""
    return write_clip(d / "archive.mkv", codec="ffv1", pix_fmt="yuv422p10le", options={"level": "3"}, audio="flac")


KINDS = {"dv_pal_widescreen": dv_pal_widescreen, "odd_size_vp9": odd_size_vp9, "hlg_hevc_10bit": hlg_hevc_10bit, "bt709_tagged": bt709_tagged,
         "anamorphic": anamorphic, "interlaced_tff": interlaced_tff, "webm_vp9_opus": webm_vp9_opus,
         "webm_vp8_bt709": webm_vp8_bt709, "mjpeg_webcam": mjpeg_webcam, "prores_hq": prores_hq,
         "ffv1_archive": ffv1_archive}
