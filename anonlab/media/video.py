"""Video reading and writing on PyAV.

Facts measured on this machine: cv2 and moviepy mis-seek variable-frame-rate
video and moviepy garbles rotated video; PyAV with a timestamp index is exact. So:

* the reader demuxes once to build the index of presentation timestamps (packets flagged *discard* by an
  edit list are skipped, as the decoder drops their frames too); the frame count comes from the index;
* ``get(n)`` seeks to the keyframe before ``index[n]`` and decodes forward to that exact pts;
* rotation (the display matrix) is applied so callers always see the displayed orientation;
* the writer keeps the source time base and every frame's pts, so VFR timing survives, writes the
  display matrix back (the coded pixels keep their orientation), and copies audio packets untouched, unless
  an `anonlab.media.audiotrack.AudioPlan` asks for audio redaction (then the track is re-encoded in its own
  codec with the ranges muted, beeped or disguised: `anonlab.media.audiotrack`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, TypedDict

import av
import cv2
import numpy as np

from anonlab.errors import MediaError, OutputError
from anonlab.media.audiotrack import AudioPlan, AudioRewriter, audio_summary, check_voice
from anonlab.media.pixels import Converter, coded_boxes, pq_view_lut
from anonlab.media.streams import (EncodePlan, VideoProps, carry_stream_facts, check_audio, cut_short,
                                   declared_colors, media_duration, plan_video, props_from)

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


def one_field(image: np.ndarray, field: int) -> np.ndarray:
    """The rows of one field (0: top, 1: bottom) of a woven frame, line-doubled back to the frame's height."""
    rows = image[field::2]
    return cv2.resize(rows, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


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

    Interlaced video is returned one field at a time (``analysis_view``, see `one_field`), and PQ (HDR10)
    video through an SDR-looking view (`anonlab.media.pixels.pq_view_lut`): the frames the analysis and the
    workbench see are free of combing and not dark; `write_video` masks the video's own frames.

    Example:
        >>> with VideoReader("clip.mp4") as video:            # doctest: +SKIP
        ...     frame = video.get(42)                         # BGR uint8, displayed orientation
        ...     for n, frame in video.frames():               # every frame once, in order
        ...         ...
    """

    kind = "video"

    def __init__(self, path: str | Path, cache_size: int = 32, *, analysis_view: bool = True) -> None:
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
        declared = declared_colors(self._stream)  # before anything is decoded (see there)
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
        self.props: VideoProps = props_from(self._stream, first, declared)
        self._converter = Converter(self.props.colorspace, self.props.color_range)
        # Interlaced video is seen one field at a time (the first, line-doubled): woven fields comb every moving
        # edge, and a face moving 8 px between fields lost a third of its detector score (0.97 -> 0.68 for a
        # 77-px face; 0.96 from one field). Masks are still drawn on the woven frame, over both fields.
        interlaced = self.props.field_order in ("tt", "bb", "tb", "bt", "interlaced")
        self._first_field = (0 if self.props.field_order in ("tt", "tb", "interlaced") else 1) if (
            interlaced and analysis_view) else None
        # PQ (HDR10) video is seen through an SDR-looking view (`pq_view_lut`): decoded as it is, it is dark.
        self._pq_lut = pq_view_lut() if self.props.color_trc == 16 and analysis_view else None
        self.rotation = int(first.rotation or 0) % 360
        self._turns = (self.rotation // 90) % 4
        coded_h, coded_w = first.height, first.width
        self.width, self.height = (coded_h, coded_w) if self._turns % 2 else (coded_w, coded_h)
        self.coded_size = (coded_w, coded_h)

    # --- index ----------------------------------------------------------------------------------
    def _build_index(self) -> np.ndarray:
        pts = []
        self.last_duration = 0  # the last frame's duration (stream time base) as its packet states it; 0: unknown
        self.discarded = 0  # packets an edit list hides (a clip cut with -ss and -c copy starts at a keyframe before)
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is None or packet.is_discard:
                    self.discarded += bool(packet.is_discard)
                    continue
                if not pts or packet.pts >= latest:  # the latest timestamp's packet holds the last frame
                    latest, self.last_duration = packet.pts, int(packet.duration or 0)
                pts.append(packet.pts)
        except av.FFmpegError:
            # A truncated file: keep what could be demuxed; frames beyond are simply absent.
            log.warning("%s: demuxing stopped early; the file may be truncated", self.path.name)
        return np.unique(np.asarray(pts, dtype=np.int64))

    def frame_duration(self, n: int) -> int:
        """Frame ``n``'s duration (stream time base): to the next frame, or the last one's packet's (0: unknown)."""
        if n + 1 < len(self.pts) and n >= 0:  # n < 0: not a frame of the index
            return int(self.pts[n + 1] - self.pts[n])
        return self.last_duration if n >= 0 else 0

    def _first_frame(self):
        for _, frame in self._start_at(0):
            return frame
        raise MediaError(f"{self.path.name}: the first frame cannot be decoded (corrupt or unsupported codec "
                         f"{self._stream.codec_context.name!r})")

    #: How far before a frame a seek starts, in frames, when a seek to the frame itself lands after it.
    SEEK_BACKOFF = (0, 16, 128, 1024)

    def _decoded_after_seek(self, target: int | None) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to ``target`` (stream time base; None: the start of the file) and yield ``(n, frame)`` for
        the decoded frames that are in the index, in decoding order, until the end or a demuxing error."""
        try:
            if target is None:
                self._container.seek(0)
            else:
                self._container.seek(target, stream=self._stream, backward=True)
        except av.FFmpegError:
            return
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.FFmpegError):
                return
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            for frame in decoded:
                n = self._pts_to_index.get(frame.pts)
                if n is not None:
                    yield n, frame

    def _start_at(self, index: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded ``(n, frame)`` from the keyframe at or before frame ``index`` on.

        A backward seek can land after the frame asked for: in MPEG-TS (broadcast and camcorder .ts/.mts)
        libavformat compares the target with decoding timestamps, so a seek to a keyframe's own presentation
        time went to the next keyframe, and every frame of the GOP before it came out black. When the first
        frame decoded is after ``index``, the seek starts earlier, and at last from the start of the file.
        """
        step = max(int(np.median(np.diff(self.pts[:64]))) if self.n_frames > 1 else 1, 1)
        targets: list[int | None] = []
        for back in self.SEEK_BACKOFF:
            target = int(self.pts[index]) - back * step
            # before the first frame: from the start of the file, the one seek every demuxer gets right
            targets.append(None if back and target < int(self.pts[0]) - 2 * step else target)
            if targets[-1] is None:
                break
        for i, target in enumerate(targets):
            last = i == len(targets) - 1  # a damaged stretch of a long file: not decoded from its start
            frames = self._decoded_after_seek(target)
            first = next(frames, None)
            if first is not None and (first[0] <= index or last):
                yield first
                yield from frames
                return
            if first is None and last:
                return

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
        image = self._converter.to_bgr(frame)
        if self._pq_lut is not None:
            image = cv2.LUT(image, self._pq_lut)
        if self._first_field is not None:
            image = one_field(image, self._first_field)
        return _displayed(image, self._turns)

    def _decode_from(self, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """Seek to the keyframe before ``index`` and yield (n, frame) from ``index`` on, in order.

        Frames the decoder cannot produce (corrupt packets) are yielded as black frames and recorded
        in ``damaged``, so a caller never receives fewer frames than the index promises.
        """
        expected = index
        black = np.zeros((self.height, self.width, 3), np.uint8)
        for n, frame in self._start_at(index):
            if n < expected:
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


class RenderInfo(TypedDict, total=False):
    """What writing an output returns: counts and names, never coordinates (it goes into the audit report).

    ``frames``, ``damaged`` (frame numbers masked whole because they could not be decoded) and
    ``audio_packets`` always; ``source`` (the input's stream properties, `VideoProps.summary`) and ``output``
    (the encoding plan, or a photo's format, pages and mode) as names; ``audio`` (videos: what was done to
    the sound track, `anonlab.media.audiotrack.audio_summary`: mode, number of ranges, seconds affected,
    codec, never what was said); ``render_s`` (seconds) once `anonlab.pipeline.render` has timed it.
    """

    frames: int
    damaged: list[int]
    audio_packets: int
    audio: dict
    source: dict
    output: dict
    render_s: float


def write_video(
    src: str | Path,
    dst: str | Path,
    render: Callable[[int, np.ndarray], np.ndarray],
    *,
    crf: int = 18,
    preset: str | None = None,
    keep_metadata: bool = False,
    progress: Callable[[int], None] | None = None,
    needs_render: Callable[[int], bool] | None = None,
    container_name: str | Path | None = None,
    audio: AudioPlan | None = None,
    changed_boxes: Callable[[int], np.ndarray | None] | None = None,
) -> RenderInfo:
    """Decode ``src`` once, pass each displayed frame through ``render(n, frame)``, encode to ``dst``.

    The output keeps the source's stream properties (`anonlab.media.streams.plan_video`: bit depth, chroma,
    colour tags, HDR metadata, SAR, field order, rotation) and every frame's pts in the source time base;
    only the pixels ``render`` changed are converted back into the source's pixel format
    (`anonlab.media.pixels.Converter.composite`). Frames for which ``needs_render(n)`` is False are passed
    through without any conversion. Audio packets are copied untouched, unless ``audio`` (an
    `anonlab.media.audiotrack.AudioPlan`) says to mute, beep or disguise ranges of it: then each audio
    stream is decoded, redacted and re-encoded as it is demuxed (`anonlab.media.audiotrack.AudioRewriter`:
    same codec, rate, layout and bit rate, same start and duration). Subtitle and data streams, and the
    frames' side data (captions), are dropped. ``dst`` is written directly: callers wrap it in
    `anonlab.media.atomic_output` so no partial file is ever left; ``container_name`` is the final name
    whose extension chooses the container (default ``dst``). ``changed_boxes(n)``, asked after
    ``render(n, frame)``, says where (``(N, 4)`` end-exclusive displayed pixels) that render may have changed
    frame ``n`` (None: anywhere): only there are the masked and decoded pixels compared and converted back,
    which cost 25 ms a 720p frame when done over the whole frame.

    Returns:
        ``{"frames": n, "damaged": [...], "audio_packets": k, "source": {...}, "output": {...}, "audio": {...}}``:
        counts and the source's properties, the encoding plan and what was done to the audio as names (no
        coordinates).

    Raises:
        OutputError: the output's container cannot hold the source (see `plan_video`, `check_audio`), or
            writing failed.
        AnonlabError: an audio range ends after the media, or ``voice`` without its optional dependency.
    """
    src, dst = Path(src), Path(dst)
    audio = audio or AudioPlan()
    reader = VideoReader(src)
    n_expected = reader.n_frames
    turns = reader._turns
    props = reader.props
    try:
        plan = plan_video(props, container_name or dst, crf=crf, preset=preset)
        inp = _open_input(src)
    except BaseException:
        reader.close()
        raise
    try:
        check_audio(inp.streams.audio, plan.container, container_name or dst)
        origin = float(reader.pts[0] * reader.time_base)  # the video's frame 0: 0 s of the audio ranges
        if not audio.keep:
            audio.check_duration(media_duration(reader, inp), src.name)
            if inp.streams.audio and audio.mode == "voice":
                check_voice()
        # bitexact: Matroska/WebM would otherwise write a random segment UID and the time of writing, so the
        # same input rendered twice gave different files (40 renders of a WebM: 40 different files).
        out = av.open(str(dst), "w", format=plan.container, container_options={"fflags": "+bitexact"})
    except av.FFmpegError as exc:
        inp.close()
        reader.close()
        raise OutputError(f"{dst.name}: cannot create output ({exc.strerror or exc})") from None
    except BaseException:
        inp.close()
        reader.close()
        raise
    written = 0
    audio_packets = 0
    converter = Converter(props.colorspace, props.color_range)
    try:
        istream = inp.streams.video[0]
        istream.thread_type = "AUTO"
        ostream = _video_stream(out, istream, props, plan)
        audio_map = {}
        rewriters: dict[int, AudioRewriter] = {}
        for astream in inp.streams.audio:
            if audio.keep:
                audio_map[astream.index] = out.add_stream_from_template(astream)
            else:
                rewriters[astream.index] = AudioRewriter(out, astream, audio, plan.container, origin, src.name)
        carry_stream_facts(istream, ostream)
        for astream in inp.streams.audio:
            carry_stream_facts(astream, audio_map[astream.index] if audio.keep else rewriters[astream.index].ostream)
        copied = [s.codec_context.name for s in inp.streams.audio] if audio.keep else []
        if keep_metadata:
            out.metadata.update(inp.metadata)
        selected = [istream, *inp.streams.audio]
        black = np.zeros((reader.height, reader.width, 3), np.uint8)
        pts_index = reader._pts_to_index
        expected = 0

        def timed(packet: av.Packet) -> av.Packet:  # unset on the last ones: a VFR clip's last frame lost 33 ms
            if packet.pts is not None and not packet.duration:
                tb = packet.time_base or istream.time_base
                step = reader.frame_duration(pts_index.get(int(round(packet.pts * tb / istream.time_base)), -1))
                if step:
                    packet.duration = max(1, int(round(step * istream.time_base / tb)))
            return packet

        def encode(frame: av.VideoFrame, pts: int) -> None:
            nonlocal written
            frame.pts, frame.time_base = pts, istream.time_base
            frame.pict_type = 0  # let the encoder choose its own frame types (not the source's GOP)
            _tag(frame, props)
            for packet in ostream.encode(frame):
                out.mux(timed(packet))
            written += 1
            if progress:
                progress(1)

        template: list = []  # the last decoded frame: a lost frame takes its properties (field order flags)

        def emit_lost(n: int, pts: int) -> None:  # no decoded picture: the renderer decides over black
            image = render(n, black)
            coded = np.ascontiguousarray(np.rot90(image, -turns)) if turns else image
            if template:
                base = converter.convert(template[0], plan.pix_fmt)  # may be that frame itself: made writable
                converter.composite(base, coded, None)
            else:
                base = converter.from_bgr(coded, plan.pix_fmt)
            encode(base, pts)

        def emit(n: int, decoded: av.VideoFrame) -> None:
            template[:] = [decoded]
            base = converter.convert(decoded, plan.pix_fmt)
            if needs_render is None or needs_render(n):
                coded = converter.to_bgr(decoded)
                shown = _displayed(coded, turns)
                masked = render(n, shown)
                if masked is not shown:
                    boxes = None if changed_boxes is None else changed_boxes(n)
                    if boxes is not None and turns:
                        boxes = coded_boxes(boxes, turns, coded.shape[1], coded.shape[0])
                    masked = np.ascontiguousarray(np.rot90(masked, -turns)) if turns else masked
                    converter.composite(base, masked, coded, boxes)
            encode(base, int(decoded.pts))

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
                if packet.stream_index in rewriters:
                    rewriters[packet.stream_index].feed(packet)
                    continue
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
                    emit_lost(expected, int(reader.pts[expected]))
                    expected += 1
                if frame.is_corrupt:
                    reader.damaged.add(n)
                    emit_lost(n, int(frame.pts))
                else:
                    emit(n, frame)
                expected = n + 1
        while expected < n_expected:
            reader.damaged.add(expected)
            emit_lost(expected, int(reader.pts[expected]))
            expected += 1
        for packet in ostream.encode():
            out.mux(timed(packet))
        for rewriter in rewriters.values():
            rewriter.finish()
            audio_packets += rewriter.counts.packets
        short = cut_short(reader, inp)
    except OSError as exc:
        raise OutputError(f"{dst.name}: writing failed ({exc.strerror or exc})") from None
    finally:
        out.close()
        inp.close()
        reader.close()
    return {"frames": written, "damaged": sorted(reader.damaged), "audio_packets": audio_packets,
            "source": props.summary(), "output": plan.summary(),
            "audio": audio_summary(audio, rewriters.values(), copied), **short}


def _video_stream(out, istream, props: VideoProps, plan: EncodePlan):
    """The output video stream, carrying the source's properties (see `anonlab.media.streams`)."""
    ostream = out.add_stream(plan.encoder, rate=istream.average_rate or istream.guessed_rate or 25)
    ostream.width, ostream.height = props.width, props.height
    ostream.pix_fmt = plan.pix_fmt
    ostream.time_base = istream.time_base
    ctx = ostream.codec_context
    ctx.time_base = istream.time_base
    ctx.color_primaries, ctx.color_trc, ctx.colorspace = props.color_primaries, props.color_trc, props.colorspace
    ctx.color_range = props.color_range
    if props.sar:
        ctx.sample_aspect_ratio = props.sar
    if plan.interlaced and props.field_order in ("tt", "bb", "tb", "bt"):
        # the container's flag (MKV FieldOrder, MOV fiel); x264 codes each frame by the frame's own flag
        ctx.field_order = {"tt": 2, "bb": 3, "tb": 4, "bt": 5}[props.field_order]
    elif props.field_order == "progressive":  # said so too (MKV FlagInterlaced, MOV fiel), as the source says
        ctx.field_order = 1
    if plan.codec_tag:
        ostream.codec_tag = plan.codec_tag
    ostream.options = dict(plan.options)
    if plan.encoder == "libx264":
        # Frame threading lets x264's output depend on thread timing under load; slice threading gives
        # byte-identical files for identical frames (a resumed batch must equal an uninterrupted one).
        ostream.thread_type = "SLICE"
        if plan.interlaced:
            # Interlaced (MBAFF) coding with x264's slice threads is not reproducible either: 1 of 60 renders of
            # a TFF clip and 25 of 30 of a DV BFF clip differed under load; one thread: 60 of 60 and 30 of 30.
            ostream.thread_count = 1
    if props.rotation:
        ostream.set_display_rotation(props.rotation)
    return ostream


def _tag(frame: av.VideoFrame, props: VideoProps) -> None:
    """Give a frame for the encoder the source's colour tags (encoders read them from frames too)."""
    frame.color_range = props.color_range
    frame.colorspace = props.colorspace
    frame.color_primaries = props.color_primaries
    frame.color_trc = props.color_trc
