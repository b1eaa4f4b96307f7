"""Video reading and writing on PyAV.

Facts measured on this machine (see ../shared/STYLE.md): cv2 and moviepy mis-seek variable-frame-rate
video and moviepy garbles rotated video; PyAV with a timestamp index is exact. So:

* the reader demuxes once to build the index of presentation timestamps (packets flagged *discard* by an
  edit list are skipped, as the decoder drops their frames too); the frame count comes from the index;
* ``get(n)`` seeks to the keyframe before ``index[n]`` and decodes forward to that exact pts;
* rotation (the display matrix) is applied so callers always see the displayed orientation;
* the writer keeps the source time base and every frame's pts, so VFR timing survives, writes the
  display matrix back (the coded pixels keep their orientation), and copies audio packets untouched.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from anonlab.errors import MediaError, OutputError

log = logging.getLogger(__name__)

#: Largest frame we decode; bigger declared sizes are almost certainly corrupt or hostile headers.
MAX_PIXELS = 8192 * 8192


def _open_input(path: Path):
    try:
        return av.open(str(path), "r", metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaError(f"{path.name}: not a video or photo anonlab can read (unknown format, or a corrupt or "
                         "truncated file such as a recording cut off before it was finalised)") from None
    except av.error.FileNotFoundError:
        raise MediaError(f"{path.name}: file not found") from None
    except av.error.PermissionError:
        raise MediaError(f"{path.name}: permission denied; check the file's access rights") from None
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: cannot be opened as video ({exc.strerror or 'ffmpeg error'})") from None


def _displayed(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


@dataclass
class VideoInfo:
    """What the rest of anonlab needs to know about a video, in displayed orientation."""

    width: int
    height: int
    n_frames: int
    fps: float
    duration: float
    rotation: int
    has_audio: bool
    codec: str
    times: np.ndarray = field(repr=False)


class VideoReader:
    """Frame-exact random and sequential access to a video.

    Example:
        >>> with VideoReader("clip.mp4") as video:            # doctest: +SKIP
        ...     frame = video.get(42)                         # BGR uint8, displayed orientation
        ...     for n, frame in video.frames():               # every frame once, in order
        ...         ...
    """

    kind = "video"

    def __init__(self, path: str | Path, cache_size: int = 32) -> None:
        self.path = Path(path)
        self._container = _open_input(self.path)
        if not self._container.streams.video:
            what = "audio only, no picture" if self._container.streams.audio else "no video stream"
            self._container.close()
            raise MediaError(f"{self.path.name}: {what}; anonlab masks videos and photos")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        if ctx.width * ctx.height > MAX_PIXELS:
            raise MediaError(f"{self.path.name}: declared frame size {ctx.width}x{ctx.height} is too large to process")
        self.time_base: Fraction = self._stream.time_base
        self.pts = self._build_index()
        if len(self.pts) == 0:
            raise MediaError(f"{self.path.name}: the video stream holds no frames (truncated or empty file)")
        self._pts_to_index = {int(p): i for i, p in enumerate(self.pts)}
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._decoder = None  # (generator, last index decoded) for cheap forward stepping
        self.damaged: set[int] = set()
        first = self._first_frame()
        self.rotation = int(first.rotation or 0) % 360
        self._turns = (self.rotation // 90) % 4
        coded_h, coded_w = first.height, first.width
        self.width, self.height = (coded_h, coded_w) if self._turns % 2 else (coded_w, coded_h)
        self.coded_size = (coded_w, coded_h)

    # --- index ----------------------------------------------------------------------------------
    def _build_index(self) -> np.ndarray:
        pts = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is None or packet.is_discard:
                    continue
                pts.append(packet.pts)
        except av.FFmpegError:
            # A truncated file: keep what could be demuxed; frames beyond are simply absent.
            log.warning("%s: demuxing stopped early; the file may be truncated", self.path.name)
        return np.unique(np.asarray(pts, dtype=np.int64))

    def _first_frame(self):
        self._container.seek(int(self.pts[0]), stream=self._stream, backward=True)
        try:
            for frame in self._container.decode(self._stream):
                return frame
        except av.FFmpegError:
            pass
        raise MediaError(f"{self.path.name}: the first frame cannot be decoded (corrupt or unsupported codec "
                         f"{self._stream.codec_context.name!r})")

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> np.ndarray:
        """Presentation time of each frame in seconds, the first frame at 0."""
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        if self.n_frames > 1:
            step = float(np.median(np.diff(self.times)))
        else:
            step = 1.0 / self.fps
        return float(self.times[-1] + step)

    @property
    def fps(self) -> float:
        """Average frame rate (VFR video: frames over duration)."""
        if self.n_frames > 1:
            return (self.n_frames - 1) / float(self.times[-1]) if self.times[-1] > 0 else 25.0
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else 25.0

    @property
    def info(self) -> VideoInfo:
        return VideoInfo(
            width=self.width, height=self.height, n_frames=self.n_frames, fps=self.fps, duration=self.duration,
            rotation=self.rotation, has_audio=bool(self._container.streams.audio),
            codec=self._stream.codec_context.name, times=self.times,
        )

    # --- decoding -------------------------------------------------------------------------------
    def _to_bgr(self, frame) -> np.ndarray:
        return _displayed(frame.to_ndarray(format="bgr24"), self._turns)

    def _decode_from(self, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """Seek to the keyframe before ``index`` and yield (n, frame) from ``index`` on, in order.

        Frames the decoder cannot produce (corrupt packets) are yielded as black frames and recorded
        in ``damaged``, so a caller never receives fewer frames than the index promises.
        """
        self._container.seek(int(self.pts[index]), stream=self._stream, backward=True)
        expected = index
        black = np.zeros((self.height, self.width, 3), np.uint8)
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:
                break
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            for frame in decoded:
                n = self._pts_to_index.get(frame.pts)
                if n is None or n < expected:
                    continue
                while expected < n:  # frames lost to corruption
                    self.damaged.add(expected)
                    yield expected, black
                    expected += 1
                if frame.is_corrupt:  # damaged pixels may hide a face from the detector: mask whole
                    self.damaged.add(n)
                    yield n, black
                else:
                    yield n, self._to_bgr(frame)
                expected = n + 1
        while expected < self.n_frames:
            self.damaged.add(expected)
            yield expected, black
            expected += 1

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(n, frame)`` for ``start <= n < stop``, decoding each frame once, in order."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        if start >= stop:
            return
        for n, frame in self._decode_from(start):
            if n >= stop:
                break
            yield n, frame
        self._decoder = None

    def get(self, n: int) -> np.ndarray:
        """Frame ``n`` (0-based) as BGR uint8 in displayed orientation. Cached (LRU)."""
        n = int(n)
        if not 0 <= n < self.n_frames:
            raise IndexError(f"frame {n} outside 0..{self.n_frames - 1}")
        if n in self._cache:
            self._cache.move_to_end(n)
            return self._cache[n]
        # Stepping forward a few frames is cheaper than a seek back to the keyframe.
        if self._decoder is None or not (self._decoder[1] < n <= self._decoder[1] + 30):
            self._decoder = [self._decode_from(n), n - 1]
        gen = self._decoder[0]
        for m, frame in gen:
            self._decoder[1] = m
            self._remember(m, frame)
            if m == n:
                return frame
        self._decoder = None
        raise MediaError(f"{self.path.name}: frame {n} could not be decoded")

    def _remember(self, n: int, frame: np.ndarray) -> None:
        self._cache[n] = frame
        self._cache.move_to_end(n)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        self._decoder = None
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n_frames


def _even(n: int) -> bool:
    return n % 2 == 0


def write_video(
    src: str | Path,
    dst: str | Path,
    render: Callable[[int, np.ndarray], np.ndarray],
    *,
    crf: int = 18,
    preset: str = "veryfast",
    keep_metadata: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Decode ``src`` once, pass each displayed frame through ``render(n, frame)``, encode to ``dst``.

    Audio packets are copied untouched; subtitle and data streams are dropped; every video frame keeps
    its source pts in the source time base; the display matrix is written back. ``dst`` is written
    directly: callers wrap it in `anonlab.media.atomic_output` so no partial file is ever left.

    Returns counts: ``{"frames": n, "damaged": [...], "audio_packets": k}``.
    """
    src, dst = Path(src), Path(dst)
    reader = VideoReader(src)
    n_expected = reader.n_frames
    turns, coded_w, coded_h = reader._turns, *reader.coded_size
    inp = _open_input(src)
    try:
        out = av.open(str(dst), "w")
    except av.FFmpegError as exc:
        raise OutputError(f"{dst.name}: cannot create output ({exc.strerror or exc})") from None
    written = 0
    audio_packets = 0
    try:
        istream = inp.streams.video[0]
        istream.thread_type = "AUTO"
        ostream = out.add_stream("libx264", rate=istream.average_rate or istream.guessed_rate or 25)
        ostream.width, ostream.height = coded_w, coded_h
        # x264 needs even sizes for 4:2:0; odd sizes keep full chroma instead of losing a pixel row.
        ostream.pix_fmt = "yuv420p" if _even(coded_w) and _even(coded_h) else "yuv444p"
        ostream.time_base = istream.time_base
        ostream.codec_context.time_base = istream.time_base
        ostream.options = {"crf": str(crf), "preset": preset}
        # Frame threading lets x264's output depend on thread timing under load; slice threading gives
        # byte-identical files for identical frames (a resumed batch must equal an uninterrupted one).
        ostream.thread_type = "SLICE"
        if reader.rotation:
            ostream.set_display_rotation(reader.rotation)
        audio_map = {}
        for astream in inp.streams.audio:
            audio_map[astream.index] = out.add_stream_from_template(astream)
        if keep_metadata:
            out.metadata.update(inp.metadata)
        selected = [istream, *inp.streams.audio]
        black = np.zeros((reader.height, reader.width, 3), np.uint8)
        pts_index = reader._pts_to_index
        expected = 0

        def emit(n: int, image: np.ndarray, pts: int) -> None:
            nonlocal written
            image = render(n, image)
            coded = np.ascontiguousarray(np.rot90(image, -turns)) if turns else image
            vf = av.VideoFrame.from_ndarray(coded, format="bgr24")
            vf.pts, vf.time_base = pts, istream.time_base
            for packet in ostream.encode(vf):
                out.mux(packet)
            written += 1
            if progress:
                progress(1)

        def demuxed():
            it = inp.demux(selected)
            while True:
                try:
                    yield next(it)
                except StopIteration:
                    return
                except av.FFmpegError:
                    log.warning("%s: demuxing stopped early; the file may be truncated", src.name)
                    return

        for packet in demuxed():
            if packet.stream.type == "audio":
                if packet.dts is None:
                    continue
                packet.stream = audio_map[packet.stream_index]
                out.mux(packet)
                audio_packets += 1
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                n = pts_index.get(frame.pts)
                if n is None or n < expected:
                    continue
                while expected < n:  # lost to corruption: a black frame hides whatever was there
                    reader.damaged.add(expected)
                    emit(expected, black, int(reader.pts[expected]))
                    expected += 1
                if frame.is_corrupt:
                    reader.damaged.add(n)
                    emit(n, black, int(frame.pts))
                else:
                    emit(n, _displayed(frame.to_ndarray(format="bgr24"), turns), int(frame.pts))
                expected = n + 1
        while expected < n_expected:
            reader.damaged.add(expected)
            emit(expected, black, int(reader.pts[expected]))
            expected += 1
        for packet in ostream.encode():
            out.mux(packet)
    except OSError as exc:
        raise OutputError(f"{dst.name}: writing failed ({exc.strerror or exc})") from None
    finally:
        out.close()
        inp.close()
        reader.close()
    return {"frames": written, "damaged": sorted(reader.damaged), "audio_packets": audio_packets}
