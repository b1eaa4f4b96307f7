"""The bad-input corpus: every awkward file a body camera, dashcam or phone can produce, made on the fly.

Each maker writes one file into a folder and returns its path. No binaries are committed.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from mediagen import barcode_frame, ffmpeg_exe, make_clip


def zero_byte(d: Path) -> Path:
    p = d / "empty.mp4"
    p.write_bytes(b"")
    return p


def text_as_mp4(d: Path) -> Path:
    p = d / "notes.mp4"
    p.write_text("meeting notes, not a video\n" * 50)
    return p


def truncated_moov_missing(d: Path) -> Path:
    src = make_clip(d / "_full1.mp4", n_frames=30)
    p = d / "truncated_moov.mp4"
    data = src.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])  # ffmpeg writes moov at the end: it is cut away
    src.unlink()
    return p


def truncated_mid_stream(d: Path) -> Path:
    """moov first (faststart), mdat cut: the index promises frames whose data is missing."""
    src = make_clip(d / "_full2.mp4", n_frames=40)
    fast = d / "_fast.mp4"
    with av.open(str(src)) as inp, av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                out.mux(pkt)
    data = fast.read_bytes()
    p = d / "truncated_mid.mp4"
    p.write_bytes(data[: int(len(data) * 0.7)])
    src.unlink()
    fast.unlink()
    return p


def corrupt_frames(d: Path) -> Path:
    """Garbage written over part of the mdat: some frames fail to decode."""
    src = make_clip(d / "_full3.mkv", n_frames=40, gop=10)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(3)
    start = len(data) // 2
    data[start : start + 1500] = rng.integers(0, 256, 1500, dtype=np.uint8).tobytes()
    p = d / "corrupt_frames.mkv"
    p.write_bytes(bytes(data))
    src.unlink()
    return p


def audio_only(d: Path) -> Path:
    p = d / "voice.m4a"
    with av.open(str(p), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        wave = (0.1 * np.sin(np.arange(48000) / 10)).astype(np.float32)
        for start in range(0, 48000, 1024):
            f = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, start, Fraction(1, 48000)
            for pkt in a.encode(f):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return p


def photo_wrong_extension(d: Path) -> Path:
    p = d / "holiday.png"
    Image.fromarray(barcode_frame(3, 64, 48)).save(p, format="JPEG")
    return p


def decompression_bomb(d: Path) -> Path:
    """A tiny PNG whose header declares 100000 x 100000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1000)
    p = d / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return p


def _encode(path: Path, width: int, height: int, pix_fmt: str, n_frames: int = 10) -> Path:
    """An H.264 clip of barcode frames in a given pixel format (odd sizes need 4:4:4)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        for n in range(n_frames):
            f = av.VideoFrame.from_ndarray(barcode_frame(n, width, height), format="bgr24").reformat(format=pix_fmt)
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


def _odd_clip(d: Path) -> Path:
    return _encode(d / "odd_97x33.mkv", 97, 33, "yuv444p")


def tiny_photo(d: Path) -> Path:
    p = d / "tiny.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(p)
    return p


def grayscale_photo(d: Path) -> Path:
    p = d / "gray.jpg"
    Image.fromarray(barcode_frame(4, 64, 48)[:, :, 0]).save(p)
    return p


def cmyk_photo(d: Path) -> Path:
    p = d / "cmyk.jpg"
    Image.fromarray(barcode_frame(4, 64, 48)).convert("CMYK").save(p)
    return p


def sixteen_bit_photo(d: Path) -> Path:
    p = d / "sixteen.png"
    Image.fromarray(barcode_frame(4, 64, 48)[:, :, 1].astype(np.uint16) * 257).save(p)
    return p


def alpha_photo(d: Path) -> Path:
    p = d / "alpha.png"
    rgba = np.dstack([barcode_frame(4, 64, 48), np.full((48, 64), 128, np.uint8)])
    Image.fromarray(rgba).save(p)
    return p


def _animated(path: Path) -> Path:
    frames = [Image.fromarray(barcode_frame(i, 64, 48)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


def animated_gif(d: Path) -> Path:
    return _animated(d / "anim.gif")


def animated_webp(d: Path) -> Path:
    return _animated(d / "anim.webp")


def ten_bit_video(d: Path) -> Path:
    return _encode(d / "tenbit.mp4", 160, 96, "yuv420p10le")


def rotated_vfr_video(d: Path) -> Path:
    return make_clip(d / "phone_rotated_vfr.mov", n_frames=20, rotation=90, vfr=True, audio=True)


def two_audio_streams(d: Path) -> Path:
    src = make_clip(d / "_a.mp4", n_frames=20, audio=True)
    p = d / "two_audio.mkv"
    with av.open(str(src)) as inp, av.open(str(p), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        a1 = out.add_stream_from_template(inp.streams.audio[0])
        a2 = out.add_stream_from_template(inp.streams.audio[0])
        for pkt in inp.demux():
            if pkt.dts is None:
                continue
            if pkt.stream.type == "video":
                pkt.stream = v
                out.mux(pkt)
            else:
                data, pts, dts = bytes(pkt), pkt.pts, pkt.dts
                tb = pkt.time_base
                pkt.stream = a1
                out.mux(pkt)
                twin = av.Packet(data)
                twin.pts, twin.dts, twin.time_base, twin.stream = pts, dts, tb, a2
                out.mux(twin)
    src.unlink()
    return p


def subtitle_stream(d: Path) -> Path | None:
    exe = ffmpeg_exe()
    if exe is None:
        return None
    src = make_clip(d / "_s.mp4", n_frames=20, audio=True)
    srt = d / "_s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nJane Doe, 12 Main Street\n")
    p = d / "with_subtitles.mkv"
    subprocess.run([exe, "-v", "error", "-y", "-i", str(src), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy",
                    str(p)], check=True)
    src.unlink()
    srt.unlink()
    return p


def non_ascii_path(d: Path) -> Path:
    sub = d / "Überwachung – Bahnhof 北"
    sub.mkdir(exist_ok=True)
    return make_clip(sub / "Kamera 1 (Straße).mp4", n_frames=10)


#: name -> (maker, expectation): "ok" = a correct output; "error:<fragment>" = one clear line containing it.
CORPUS = {
    "zero_byte": (zero_byte, "error:empty"),
    "text_as_mp4": (text_as_mp4, "error:not a video or photo"),
    "truncated_moov": (truncated_moov_missing, "error:truncated_moov.mp4"),
    "truncated_mid_stream": (truncated_mid_stream, "ok"),
    "corrupt_frames": (corrupt_frames, "ok"),
    "audio_only": (audio_only, "error:audio only"),
    "photo_wrong_extension": (photo_wrong_extension, "ok"),
    "decompression_bomb": (decompression_bomb, "error:too large"),
    "odd_dimensions": (_odd_clip, "ok"),
    "tiny_photo": (tiny_photo, "ok"),
    "grayscale": (grayscale_photo, "ok"),
    "cmyk": (cmyk_photo, "ok"),
    "sixteen_bit": (sixteen_bit_photo, "ok"),
    "alpha": (alpha_photo, "ok"),
    "animated_gif": (animated_gif, "error:animated"),
    "animated_webp": (animated_webp, "error:animated"),
    "ten_bit": (ten_bit_video, "ok"),
    "rotated_vfr": (rotated_vfr_video, "ok"),
    "two_audio_streams": (two_audio_streams, "ok"),
    "subtitles": (subtitle_stream, "ok"),
    "non_ascii_path": (non_ascii_path, "ok"),
}
