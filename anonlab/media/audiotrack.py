"""Writing a video's sound track: copied untouched (``keep``) or decoded, redacted and re-encoded.

`AudioPlan` says what to do: a mode of `anonlab.media.audio.AUDIO_MODES` and ranges in seconds on the
video's timeline (frame 0 at 0 s, what the workbench and `VideoReader.times` show); no ranges with a mode
other than ``keep`` means the whole track. `write_video` copies audio packets byte for byte under ``keep``
(the default, a faithful export); otherwise each audio stream goes through an `AudioRewriter`:

* decoding is streaming: each packet is decoded when the demuxer reaches it, redacted by a
  `anonlab.media.audio.Redactor` and encoded at once (memory: a packet, or one voice block);
* the re-encode keeps the source's codec, sample rate, channel layout, sample format (where the encoder
  takes it) and bit rate (`plan_audio_stream`). A codec this FFmpeg build cannot encode (or only with an
  experimental encoder, such as its own Vorbis) is written as the container's usual one (AAC; Opus in
  WebM), and `AudioEncoding.reasons` says so, for `RenderInfo` and the audit report;
* samples keep their time: each decoded frame is placed by its timestamp (a gap in the source becomes
  silence, an overlap is dropped), the encoder's frames are stamped from the source's first sample, and the
  track ends where the source's last packet ends (decoders return whole frames: AAC's last one is padding
  past the end), so the output's audio has the source's start and duration and cannot drift from the video.

Audio outside the ranges is unchanged in content but, in a lossy codec, re-encoded: it is close to the
source, not bit-identical (`tests/test_audio_export.py` measures it). PCM outside the ranges is identical.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

import av
import numpy as np

from anonlab.errors import AnonlabError
from anonlab.media.audio import AUDIO_MODES, Redactor, check_ranges

log = logging.getLogger(__name__)

__all__ = ["AudioPlan", "AudioEncoding", "AudioRewriter", "audio_summary", "check_voice", "plan_audio_stream"]

#: Decoder name -> encoder in this FFmpeg build, where the name differs or the encoder is a library's.
ENCODERS = {"opus": "libopus", "mp3": "libmp3lame", "mp3float": "libmp3lame", "aac_fixed": "aac",
            "ac3_fixed": "ac3", "mp2float": "mp2", "vorbis": "libvorbis", "amr_nb": "libopencore_amrnb"}
#: The container's usual audio codec, for a source codec without an encoder here.
USUAL = {"webm": "libopus"}
USUAL_DEFAULT = "aac"
#: Two decoded frames this close (seconds) to where the previous one ended are contiguous (container time
#: bases such as Matroska's 1 ms round frame starts); further apart is a gap (filled with silence) or an
#: overlap (dropped).
CONTIGUOUS_S = 0.02


@dataclass(frozen=True)
class AudioPlan:
    """What to do with a video's audio.

    Attributes:
        mode: ``keep`` (copy packets untouched), ``mute``, ``beep`` or ``voice`` (`anonlab.media.audio`).
        ranges: ``((start, stop), ...)`` seconds on the video's timeline (frame 0 at 0), checked and merged
            by `anonlab.media.audio.check_ranges`; empty with a mode other than ``keep``: the whole track.
            With ``keep`` they are dropped (nothing is redacted).

    Raises:
        AnonlabError: an unknown mode, or a range `check_ranges` refuses.
    """

    mode: str = "keep"
    ranges: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in AUDIO_MODES:
            raise AnonlabError(f"--audio must be one of {', '.join(AUDIO_MODES)}; got {self.mode!r}")
        # keep copies the packets: ranges mean nothing to it (a case file keeps them while the mode is keep)
        object.__setattr__(self, "ranges", () if self.mode == "keep" else check_ranges(self.ranges))

    @classmethod
    def from_settings(cls, settings) -> "AudioPlan":
        """The plan of an `anonlab.settings.Settings` (its ``audio`` and ``audio_ranges``)."""
        return cls(getattr(settings, "audio", "keep"), tuple(getattr(settings, "audio_ranges", ())))

    @property
    def keep(self) -> bool:
        return self.mode == "keep"

    @property
    def whole(self) -> bool:
        """The whole track is redacted (a mode other than keep, no ranges)."""
        return not self.keep and not self.ranges

    def check_duration(self, duration: float, name: str = "") -> None:
        """Refuse (one line) ranges that end after ``duration`` seconds (the media's).

        Raises:
            AnonlabError: naming the file and the range.
        """
        try:
            check_ranges(self.ranges, duration)
        except AnonlabError as exc:
            raise AnonlabError(f"{name}: {exc}" if name else str(exc)) from None


def check_voice() -> None:
    """Raise `AnonlabError` (one line, how to install it) if the voice disguise's ``pyworld`` is missing."""
    try:
        import pyworld  # noqa: F401
    except ImportError:
        raise AnonlabError("--audio voice needs the pyworld package: pip install 'anonlab[voice]'") from None


@dataclass(frozen=True)
class AudioEncoding:
    """How one source audio stream is re-encoded.

    Attributes:
        encoder: FFmpeg encoder (``aac``, ``libopus``, ``pcm_s16le``...); ``codec`` the stream's codec name.
        rate: sample rate, Hz; ``layout`` the channel layout's name (``mono``, ``stereo``, ``5.1``...).
        format: the encoder's sample format (``fltp``, ``s16``...).
        bit_rate: bits per second (the source's; None for lossless and PCM codecs, or when unknown).
        reasons: one line per property that differs from the source's.
    """

    encoder: str
    codec: str
    rate: int
    layout: str
    format: str
    bit_rate: int | None
    reasons: tuple[str, ...] = ()


def _encoder(name: str):
    """The FFmpeg encoder ``name``, or None if this build has none (or only an experimental one)."""
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return None
    return None if codec.experimental else codec


def plan_audio_stream(stream, container: str) -> AudioEncoding:
    """Choose the encoder and its parameters for re-encoding ``stream`` (an opened PyAV input audio stream)
    into ``container`` (an FFmpeg muxer name): the source's own codec, rate, layout, format and bit rate where
    this build can encode them (see the module doc)."""
    ctx = stream.codec_context
    src = ctx.name
    reasons = []
    codec = _encoder(ENCODERS.get(src, src))
    if codec is None:
        usual = USUAL.get(container, USUAL_DEFAULT)
        codec = _encoder(usual)
        reasons.append(f"{src} audio re-encoded as {codec.canonical_name}: this FFmpeg has no {src} encoder")
    rate = int(ctx.sample_rate or 48000)
    rates = list(codec.audio_rates or ())
    if rates and rate not in rates:
        higher = sorted(r for r in rates if r >= rate)
        new = higher[0] if higher else max(rates)
        reasons.append(f"sample rate {rate} Hz written as {new} Hz ({codec.name} does not take {rate} Hz)")
        rate = new
    channels = ctx.channels or 2
    layout = ctx.layout.name if ctx.layout is not None and ctx.layout.nb_channels == channels else None
    try:
        layout = av.AudioLayout(layout).name if layout else av.AudioLayout(channels).name
    except (ValueError, av.FFmpegError):
        layout = av.AudioLayout(channels).name
    formats = [f.name for f in (codec.audio_formats or ())]
    want = ctx.format.name if ctx.format is not None else None
    fmt = want if want in formats else None
    if fmt is None and want:  # the same sample type, planar or packed
        twin = want[:-1] if want.endswith("p") else want + "p"
        fmt = twin if twin in formats else None
    fmt = fmt or (formats[0] if formats else "fltp")
    bit_rate = None
    if codec.lossy and not codec.name.startswith("pcm_"):
        bit_rate = int(ctx.bit_rate or stream.bit_rate or 0) or None
    profile = (ctx.profile or "").upper()
    if codec.name == "aac" and profile and profile not in ("LC", "MAIN"):
        reasons.append(f"AAC profile {ctx.profile} written as AAC LC (the only AAC this FFmpeg encodes)")
    return AudioEncoding(encoder=codec.name, codec=codec.canonical_name, rate=rate, layout=layout, format=fmt,
                         bit_rate=bit_rate, reasons=tuple(reasons))


@dataclass
class _Counts:
    packets: int = 0
    samples_in: int = 0
    affected: int = 0
    gaps: int = 0


class AudioRewriter:
    """Decode one source audio stream, redact it (`anonlab.media.audio.Redactor`), encode it into ``out``.

    Make it before the first packet is muxed (it adds the output stream), `feed` it every demuxed packet of
    its stream in order, and `finish` it once demuxing ends (flushes the decoder, the redactor and the
    encoder).

    Args:
        out: the output container (PyAV, opened for writing).
        stream: the source audio stream (PyAV, opened for reading).
        plan: the `AudioPlan` (not ``keep``).
        container: the output's muxer name (chooses the usual codec if the source's has no encoder).
        origin: seconds of the source timeline where the video's frame 0 is (the ranges' 0).
        name: the source's file name, for messages.
    """

    def __init__(self, out, stream, plan: AudioPlan, container: str, origin: float = 0.0, name: str = "") -> None:
        if plan.keep:
            raise ValueError("AudioRewriter is for plans that change the audio; keep copies packets")
        self.stream, self.plan, self.origin, self.name = stream, plan, float(origin), name
        self.encoding = enc = plan_audio_stream(stream, container)
        self.out = out
        ostream = out.add_stream(enc.encoder, rate=enc.rate)
        ctx = ostream.codec_context
        ctx.layout = enc.layout
        ctx.format = enc.format
        if enc.bit_rate:
            ctx.bit_rate = enc.bit_rate
        ostream.time_base = ctx.time_base = Fraction(1, enc.rate)
        self.ostream = ostream
        self.rate = int(stream.codec_context.sample_rate or enc.rate)
        self.layout = enc.layout
        self.channels = av.AudioLayout(enc.layout).nb_channels
        self.counts = _Counts()
        self._to_float = av.AudioResampler(format="fltp", layout=enc.layout, rate=self.rate)
        self._redactor: Redactor | None = None
        self._start: int | None = None  # the first sample's position, samples on the source timeline
        self._next = 0  # samples placed (pushed to the redactor, or held back in _pending)
        self._pending: np.ndarray | None = None
        self._out = 0  # samples handed to the encoder
        self._end_at: Fraction | None = None  # where the last packet fed ends (seconds), if it says
        self._tb = stream.time_base

    # --- input -------------------------------------------------------------------------------------------
    def feed(self, packet) -> None:
        """Decode one demuxed packet of the source stream and pass its samples on."""
        if packet.pts is not None and packet.duration:
            self._end_at = (packet.pts + packet.duration) * self._tb
        elif packet.size:
            self._end_at = None  # this packet's end is unknown: do not trim the end
        if not packet.size:
            return
        try:
            frames = self.stream.codec_context.decode(packet)
        except av.FFmpegError:
            log.warning("%s: an audio packet could not be decoded; its time is filled with silence", self.name)
            return
        for frame in frames:
            self._frame(frame)

    def _frame(self, frame) -> None:
        for f in self._to_float.resample(frame):
            x = f.to_ndarray()
            if x.dtype != np.float32:  # pragma: no cover - fltp always is
                x = x.astype(np.float32)
            at = None if f.pts is None else f.pts * f.time_base
            self._place(np.ascontiguousarray(x), at)

    def _place(self, x: np.ndarray, at: Fraction | None) -> None:
        """Hand ``x`` (channels, n) to the redactor at source time ``at`` (seconds; None: right after the last)."""
        if self._start is None:
            start = 0 if at is None else int(round(at * self.rate))
            self._start = start
            offset = start / self.rate - self.origin  # the stream's first sample on the ranges' timeline
            self._redactor = Redactor.from_seconds(self.plan.mode, self.rate, self.channels, self.plan.ranges,
                                                   offset=offset, whole=self.plan.whole)
        pos = self._next if at is None else int(round(at * self.rate)) - self._start
        tol = int(CONTIGUOUS_S * self.rate)
        if pos > self._next + tol:  # a gap in the source: silence keeps the rest in its place
            self.counts.gaps += 1
            self._queue(np.zeros((self.channels, pos - self._next), np.float32))
        elif pos < self._next - tol:  # overlaps what was already placed: drop the overlap
            x = x[:, self._next - pos:]
        if x.shape[1]:
            self._queue(x)

    def _queue(self, x: np.ndarray) -> None:
        """Place ``x`` after what came before. The latest chunk is held back until the next one comes or the
        stream ends: the decoder returns the last frame whole, padding past the track's end included, and
        only at the end is it known where to cut it (`finish`)."""
        if self._pending is not None:
            self._push(self._pending)
        self._pending = x
        self._next += x.shape[1]

    def _push(self, x: np.ndarray) -> None:
        self.counts.samples_in += x.shape[1]
        self._encode(self._redactor.push(x))

    # --- output ------------------------------------------------------------------------------------------
    def _encode(self, y: np.ndarray | None) -> None:
        if y is not None and y.shape[1] == 0:
            return
        if y is None:
            packets = self.ostream.encode(None)
        else:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y), format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.time_base = Fraction(1, self.rate)
            frame.pts = self._start + self._out
            self._out += y.shape[1]
            packets = self.ostream.encode(frame)
        for p in packets:
            self.out.mux(p)
            self.counts.packets += 1

    def finish(self) -> None:
        """Flush the decoder, the redactor and the encoder (call once, after the last `feed`)."""
        try:
            for frame in self.stream.codec_context.decode(None):
                self._frame(frame)
        except av.FFmpegError:
            pass
        if self._pending is not None:
            x = self._pending
            if self._end_at is not None:  # cut the last frame where the source's last packet ends
                end = int(round(self._end_at * self.rate)) - self._start
                x = x[:, :max(0, x.shape[1] - max(0, self._next - end))]
            self._pending = None
            if x.shape[1]:
                self._push(x)
        if self._redactor is not None:
            self._encode(self._redactor.flush())
            self.counts.affected = self._redactor.affected
        self._encode(None)

    def summary(self) -> dict:
        """What was done, in counts and names (for `RenderInfo`): codec, seconds affected, reasons."""
        enc = self.encoding
        return {"codec": enc.codec, "rate": enc.rate, "layout": enc.layout,
                "seconds": round(self.counts.affected / self.rate, 3),
                "reasons": list(enc.reasons) + ([f"{self.counts.gaps} gap(s) in the source's audio filled with "
                                                 "silence"] if self.counts.gaps else [])}


def audio_summary(plan: AudioPlan, rewriters: Iterable[AudioRewriter], copied_codecs: Iterable[str] = ()) -> dict:
    """`RenderInfo`'s ``audio`` entry: mode, number of ranges, seconds affected, codec(s); never content.

    ``seconds`` is the most any stream had changed (streams are parallel tracks of one timeline); ``codec``
    names the output codecs (comma-separated when streams differ), None when the input has no audio.
    """
    rewriters = list(rewriters)
    copied = list(copied_codecs)
    parts = [r.summary() for r in rewriters]
    codecs = list(dict.fromkeys([p["codec"] for p in parts] + copied))
    info = {"mode": plan.mode, "ranges": len(plan.ranges), "whole_track": plan.whole,
            "seconds": max((p["seconds"] for p in parts), default=0.0), "codec": ",".join(codecs) or None,
            "streams": len(parts) + len(copied)}
    reasons = [r for p in parts for r in p["reasons"]]
    if reasons:
        info["reasons"] = list(dict.fromkeys(reasons))
    if not info["streams"] and not plan.keep:
        info["note"] = "no audio stream: nothing to do"
    return info


def picture_start(path) -> float:
    """Seconds from a video file's start (its earliest stream) to its first picture, 0 when it has none or it
    cannot be read. ``--audio-ranges`` count from the first picture (the workbench's 0 s); a player counts from
    the file's start, so where the picture starts late (a camera's sound track begun 0.84 s before its video)
    ranges read off a player land that much later than meant: the CLI says so."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return 0.0
            video = c.streams.video[0]
            starts = [float(s.start_time * s.time_base) for s in c.streams if s.start_time is not None]
            first = float(video.start_time * video.time_base) if video.start_time is not None else None
    except (av.FFmpegError, OSError):
        return 0.0
    return max(0.0, first - min(starts)) if first is not None and starts else 0.0
