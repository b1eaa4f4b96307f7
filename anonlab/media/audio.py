"""Audio redaction: mute, beep or disguise the voice in time ranges of a sound track.

Voices and spoken names are personal data like faces. This module changes samples and nothing else; reading
and writing the track is `anonlab.media.audiotrack`'s job.

Conventions (every function here):

* ``samples``: a float32 numpy array of shape ``(channels, n)``, values in [-1, 1] (FFmpeg's ``fltp``).
  A copy is returned; the input is never changed.
* ``rate``: samples per second (Hz).
* ``ranges``: ``[(start, stop), ...]`` in seconds from the first sample, end-exclusive. They are checked by
  `check_ranges` (``0 <= start < stop <= duration``) and merged where they overlap or touch. The whole track is
  the single range ``(0, duration)`` (`whole_track`).
* Only samples inside a range change. The first and last `FADE_S` (5 ms) of a range crossfade between the
  source and its replacement (raised cosine), so a range does not start or end with a click; a range shorter
  than two fades crossfades over half its length. A range that starts at the first sample (or ends at the
  last) has no fade there.

Modes (`AUDIO_MODES`):

* ``mute``: silence.
* ``beep``: a sine tone at ``freq`` (1 kHz by default) at a fixed, moderate level (`BEEP_LEVEL`, peak
  -12 dBFS), the same on every channel: the broadcast "bleep" that tells a listener something was removed.
* ``voice``: voice disguise with the WORLD vocoder (M. Morise et al., "WORLD: a vocoder-based high-quality
  speech synthesis system for real-time applications", IEICE Trans. Inf. & Syst. E99-D(7), 2016), through the
  ``pyworld`` package (MIT licence; WORLD itself is modified BSD). Speech is split into its pitch contour
  (F0, DIO + StoneMask), spectral envelope (CheapTrick) and aperiodicity (D4C); the pitch is raised by
  `VOICE_SEMITONES` and the envelope is stretched along the frequency axis by `VOICE_FORMANT` (formants move
  up by that factor: the vocal tract sounds shorter), then the speech is synthesised again. The words stay
  intelligible; the voice's pitch and timbre are no longer the speaker's. It does **not** hide what is said
  (a name spoken in a range is still heard) nor the speaker's accent, rhythm or choice of words: for a name,
  use ``mute`` or ``beep``. Inside a range the channels are mixed to mono before the disguise (the speaker's
  position in a stereo image can identify them too, and it halves the cost); outside nothing changes. A
  block never comes out more than 3 dB louder than it went in (`MAX_GAIN`: pure tones came out of WORLD
  twice as loud).
  ``pyworld`` is an optional dependency (``pip install 'anonlab[voice]'``).

`Redactor` is the streaming form of all three (chunks in, chunks out, the same number of samples overall),
which `mute`, `beep` and `voice` call with the whole array, so the two cannot disagree; the writer uses it
so memory is bounded by a chunk (mute, beep) or by one `VOICE_BLOCK_S` block (voice), not by the duration.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from anonlab.errors import AnonlabError

__all__ = ["AUDIO_MODES", "BEEP_HZ", "BEEP_LEVEL", "FADE_S", "VOICE_FORMANT", "VOICE_SEMITONES", "Redactor",
           "beep", "check_ranges", "format_ranges", "mute", "parse_ranges", "voice", "whole_track"]

#: ``keep`` copies the audio packets untouched; the others re-encode the track with the ranges changed.
AUDIO_MODES = ("keep", "mute", "beep", "voice")
#: Crossfade at each range edge, seconds.
FADE_S = 0.005
#: Frequency of the beep, Hz.
BEEP_HZ = 1000.0
#: Peak amplitude of the beep (0.25 = -12 dBFS peak, -15 dBFS RMS): clearly heard, never louder than speech.
BEEP_LEVEL = 0.25
#: Pitch raise of the voice disguise, semitones (4 = a major third, F0 x 1.26).
VOICE_SEMITONES = 4.0
#: Formant (spectral envelope) stretch of the voice disguise: 1.15 = formants 15 % higher.
VOICE_FORMANT = 1.15
#: WORLD frame period, milliseconds (its default).
VOICE_FRAME_MS = 5.0
#: A long range is disguised in blocks of this many seconds (memory and latency bound); blocks overlap by
#: `VOICE_CONTEXT_S` on each side and crossfade over `FADE_S` at their seams.
VOICE_BLOCK_S = 4.0
#: Context read before and after a block so WORLD's analysis windows at the block edges see real signal.
VOICE_CONTEXT_S = 0.1
#: The disguised voice is at most this much louder (RMS over a block) than the source: +3 dB.
MAX_GAIN = 2 ** 0.5
#: Slack when checking a range against the duration, seconds (a range typed to the millisecond shown).
RANGE_SLACK_S = 1e-3
#: A range's open end: `whole_track` ranges and ranges clipped by `Redactor` run to the stream's end.
OPEN_END = 2**62


# --- ranges ------------------------------------------------------------------------------------------------
def check_ranges(ranges: Iterable[Sequence[float]], duration: float | None = None) -> tuple[tuple[float, float], ...]:
    """Ranges validated, sorted and merged (overlapping or touching ranges become one).

    Args:
        ranges: ``[(start, stop), ...]`` in seconds.
        duration: the track's length in seconds; None skips the upper bound check (settings are checked
            before the input is known).

    Returns:
        ``((start, stop), ...)`` as floats, sorted, disjoint.

    Raises:
        AnonlabError: a range that is not two finite numbers, starts below 0, does not start before it stops,
            or ends after ``duration`` (one line, naming the range as the user wrote it: ``12.5-14``).
    """
    out: list[list[float]] = []
    for r in ranges:
        try:
            if isinstance(r, (str, bytes)):
                raise TypeError(r)
            start, stop = (float(v) for v in r)
        except (TypeError, ValueError):
            raise AnonlabError(f"audio range {r!r}: expected two numbers, start and stop in seconds") from None
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise AnonlabError(f"audio range {r!r}: expected two finite numbers, start and stop in seconds")
        name = _fmt_range(start, stop)
        if start < 0:
            raise AnonlabError(f"audio range {name}: starts before 0 s")
        if not start < stop:
            raise AnonlabError(f"audio range {name}: the start must come before the stop")
        if duration is not None and stop > duration + RANGE_SLACK_S:
            raise AnonlabError(f"audio range {name}: ends after the end of the media ({duration:.3f} s)")
        out.append([start, stop])
    out.sort()
    merged: list[list[float]] = []
    for start, stop in out:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return tuple((a, b) for a, b in merged)


def whole_track(duration: float) -> tuple[tuple[float, float], ...]:
    """The whole track as ranges: ``((0.0, duration),)``."""
    return ((0.0, float(duration)),)


def _fmt_num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") or "0"


def _fmt_range(start: float, stop: float) -> str:
    return f"{_fmt_num(start)}-{_fmt_num(stop)}"


def format_ranges(ranges: Iterable[Sequence[float]]) -> str:
    """Ranges as the CLI writes them: ``12.5-14,30-31.2`` (the inverse of `parse_ranges`)."""
    return ",".join(_fmt_range(float(a), float(b)) for a, b in ranges)


def parse_ranges(text: str) -> tuple[tuple[float, float], ...]:
    """``"12.5-14,30-31.2"`` -> ``((12.5, 14.0), (30.0, 31.2))`` (seconds), checked by `check_ranges`.

    Each range is ``START-STOP`` in seconds; ``m:ss.s`` is accepted for either end (``1:02.5-1:04``). An empty
    or blank text gives no ranges.

    Raises:
        AnonlabError: a part that is not ``START-STOP``, or a range `check_ranges` refuses.
    """
    ranges = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) != 2 or not all(e.strip() for e in ends):
            raise AnonlabError(f"audio range {part!r}: expected START-STOP in seconds, e.g. 12.5-14")
        try:
            ranges.append(tuple(_seconds(e) for e in ends))
        except ValueError:
            raise AnonlabError(f"audio range {part!r}: expected START-STOP in seconds, e.g. 12.5-14") from None
    return check_ranges(ranges)


def _seconds(text: str) -> float:
    fields = text.strip().split(":")
    if len(fields) > 3:
        raise ValueError(text)
    value = 0.0
    for f in fields:
        value = value * 60 + float(f)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _to_samples(ranges, rate: float, n: int | None = None) -> list[tuple[int, int]]:
    """Second ranges as sample ranges ``[a, b)`` (rounded to the nearest sample), clipped to ``n`` samples."""
    out = []
    for start, stop in ranges:
        a = max(0, int(round(start * rate)))
        b = OPEN_END if math.isinf(stop) else int(round(stop * rate))
        if n is not None:
            b = min(b, n)
        if b > a:
            out.append((a, b))
    return out


# --- the redactor ------------------------------------------------------------------------------------------
def _ramp(x: np.ndarray) -> np.ndarray:
    """Raised cosine 0 -> 1 over ``x`` in [0, 1] (clipped)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


class Redactor:
    """Streaming redaction of one track: `push` chunks in order, `flush` at the end.

    Args:
        mode: ``mute``, ``beep`` or ``voice`` (`AUDIO_MODES` less ``keep``).
        rate: sample rate, Hz.
        channels: channel count.
        ranges: sample ranges ``[(a, b), ...]`` (end-exclusive sample indices from the first sample pushed,
            sorted and disjoint; ``b`` may be `OPEN_END`: up to the end of the stream). `from_seconds` makes
            them from second ranges.
        freq: the beep's frequency, Hz.
        semitones, formant: the voice disguise's pitch raise and formant stretch.

    Output sample ``k`` (counting over all returned chunks) is input sample ``k`` redacted: mute and beep
    return each chunk at once; voice holds back up to one `VOICE_BLOCK_S` block (plus context) while inside a
    range, so the returned chunks may be shorter or longer than the ones pushed. ``affected`` counts the
    samples that changed (inside a range).

    Raises:
        ValueError: an unknown mode, or chunks of the wrong shape or dtype (programming errors).
        AnonlabError: ``voice`` without ``pyworld`` installed (when the first range is reached).
    """

    def __init__(self, mode: str, rate: int, channels: int, ranges: Sequence[tuple[int, int]], *,
                 freq: float = BEEP_HZ, semitones: float = VOICE_SEMITONES, formant: float = VOICE_FORMANT) -> None:
        if mode not in AUDIO_MODES or mode == "keep":
            raise ValueError(f"Redactor mode must be one of mute, beep, voice; got {mode!r}")
        if rate <= 0 or channels <= 0:
            raise ValueError("rate and channels must be positive")
        self.mode, self.rate, self.channels = mode, int(rate), int(channels)
        self.ranges = [(int(a), int(b)) for a, b in ranges]
        if any(b <= a for a, b in self.ranges) or any(
                b1 > a2 for (_, b1), (a2, _) in zip(self.ranges, self.ranges[1:])):
            raise ValueError("sample ranges must be non-empty, sorted and disjoint")
        self.freq, self.semitones, self.formant = float(freq), float(semitones), float(formant)
        self.fade = max(1, int(round(FADE_S * rate)))
        self.pos_in = 0  # samples pushed
        self.affected = 0
        # voice only: input not yet emitted (plus context), as chunks starting at sample `_buf_start`
        self._chunks: list[np.ndarray] = []
        self._buf_start = 0
        self._buf_len = 0
        self._pos_out = 0
        self._carry: np.ndarray | None = None  # the previous block's processed tail, crossfaded into the next
        self._carry_end = 0

    @classmethod
    def from_seconds(cls, mode: str, rate: int, channels: int, ranges, *, offset: float = 0.0,
                     whole: bool = False, **kw) -> "Redactor":
        """A redactor for second ``ranges`` on a timeline where the stream's first sample is at ``offset`` s.

        ``whole``: the whole stream, whatever ``ranges`` says. Ranges (or parts) before the first sample are
        dropped; a range's end past the stream's end is simply never reached.
        """
        if whole:
            sample_ranges = [(0, OPEN_END)]
        else:
            shifted = [(a - offset, b - offset) for a, b in ranges if b - offset > 0]
            sample_ranges = _to_samples(shifted, rate)
        return cls(mode, rate, channels, sample_ranges, **kw)

    # --- public --------------------------------------------------------------------------------------------
    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Redact the next ``(channels, n)`` float32 chunk; returns the samples ready to go out (see class doc)."""
        chunk = self._check(chunk)
        start = self.pos_in
        self.pos_in += chunk.shape[1]
        if self.mode != "voice":
            return self._per_sample(chunk, start)
        self._chunks.append(chunk)
        self._buf_len += chunk.shape[1]
        return self._emit(final=False)

    def flush(self) -> np.ndarray:
        """The samples still held back (voice); an empty array for mute and beep."""
        if self.mode != "voice":
            return np.zeros((self.channels, 0), np.float32)
        return self._emit(final=True)

    def run(self, samples: np.ndarray) -> np.ndarray:
        """Redact a whole track at once (`push` then `flush`)."""
        parts = [self.push(samples), self.flush()]
        return np.concatenate(parts, axis=1)

    # --- internals -----------------------------------------------------------------------------------------
    def _check(self, chunk) -> np.ndarray:
        if not isinstance(chunk, np.ndarray) or chunk.ndim != 2 or chunk.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, n) float32 array")
        if chunk.dtype != np.float32:
            raise ValueError(f"expected float32 samples, got {chunk.dtype}")
        return chunk

    def _weight(self, lo: int, hi: int, a: int, b: int) -> np.ndarray:
        """Replacement weight (0 = source, 1 = replacement) of samples ``lo..hi-1`` for the range ``[a, b)``."""
        idx = np.arange(lo, hi, dtype=np.float64)
        length = b - a
        fade = min(self.fade, max(1, length // 2))
        w = np.ones(hi - lo)
        if a > 0:
            w = np.minimum(w, _ramp((idx - a + 0.5) / fade))
        if b < OPEN_END:
            w = np.minimum(w, _ramp((b - idx - 0.5) / fade))
        return w

    def _per_sample(self, chunk: np.ndarray, start: int) -> np.ndarray:
        """Mute and beep: each sample depends only on its own value and index."""
        n = chunk.shape[1]
        out = chunk
        for a, b in self.ranges:
            lo, hi = max(a, start), min(b, start + n)
            if lo >= hi:
                continue
            if out is chunk:
                out = chunk.copy()
            w = self._weight(lo, hi, a, b)
            seg = out[:, lo - start:hi - start]
            repl = 0.0
            if self.mode == "beep":
                t = np.arange(lo - a, hi - a, dtype=np.float64) / self.rate
                repl = BEEP_LEVEL * np.sin(2 * np.pi * self.freq * t)
            seg[:] = (seg * (1.0 - w) + repl * w).astype(np.float32)
            self.affected += hi - lo
        return out

    # voice: blocks of a range, each disguised with context on both sides, crossfaded at the seams
    def _buffer(self, lo: int, hi: int) -> np.ndarray:
        """Input samples ``lo..hi-1`` (all held in the buffer)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks, axis=1)]
        buf = self._chunks[0] if self._chunks else np.zeros((self.channels, 0), np.float32)
        return buf[:, lo - self._buf_start:hi - self._buf_start]

    def _trim(self, keep_from: int) -> None:
        """Forget input before sample ``keep_from``."""
        drop = keep_from - self._buf_start
        if drop <= 0:
            return
        buf = self._buffer(self._buf_start, self._buf_start + self._buf_len)
        self._chunks = [buf[:, drop:]]
        self._buf_start += drop
        self._buf_len -= drop

    def _emit(self, final: bool) -> np.ndarray:
        out: list[np.ndarray] = []
        context = int(round(VOICE_CONTEXT_S * self.rate))
        block = int(round(VOICE_BLOCK_S * self.rate))
        end_in = self.pos_in
        while self._pos_out < end_in:
            pos = self._pos_out
            rng = next(((a, b) for a, b in self.ranges if b > pos), None)
            if rng is None or pos < rng[0]:  # outside every range: the source as it is
                stop = end_in if rng is None else min(end_in, rng[0])
                out.append(self._buffer(pos, stop))
                self._pos_out = stop
                self._trim(stop - context)
                continue
            a, b = rng
            stop = b if b - pos <= block + block // 4 else pos + block  # never leave a sliver for the next block
            if final:
                stop = min(stop, end_in)
            elif stop + context > end_in:  # wait for the context after the block
                break
            lo, hi = max(pos - context, self._buf_start), min(stop + context, end_in)
            x = self._buffer(lo, hi)
            y = _disguise(x.mean(axis=0), self.rate, self.semitones, self.formant)  # (hi - lo,)
            head = pos - lo
            body = y[head:head + (stop - pos)]
            src = self._buffer(pos, stop)
            w = self._weight(pos, stop, a, b)
            if self._carry is not None and self._carry_end == pos:  # seam with the previous block
                k = min(self._carry.shape[0], stop - pos)
                seam = _ramp((np.arange(k) + 0.5) / k)
                body = body.copy()
                body[:k] = self._carry[:k] * (1 - seam) + body[:k] * seam
            res = (src * (1.0 - w) + body[None, :] * w).astype(np.float32)
            out.append(res)
            self.affected += stop - pos
            tail = y[head + (stop - pos):head + (stop - pos) + self.fade]
            self._carry, self._carry_end = (tail, stop) if stop < b and tail.shape[0] else (None, 0)
            self._pos_out = stop
            self._trim(stop - context)
        if not out:
            return np.zeros((self.channels, 0), np.float32)
        return np.concatenate(out, axis=1)


def _disguise(x: np.ndarray, rate: int, semitones: float, formant: float) -> np.ndarray:
    """WORLD analysis and synthesis of mono ``x`` (shape ``(n,)``) with F0 raised by ``semitones`` and the
    spectral envelope and aperiodicity stretched by ``formant`` along frequency; returns ``(n,)`` float64.

    See the module doc for the source of the method.

    Raises:
        AnonlabError: ``pyworld`` is not installed.
    """
    try:
        import pyworld
    except ImportError:
        raise AnonlabError("--audio voice needs the pyworld package: pip install 'anonlab[voice]'") from None
    n = x.shape[0]
    if n == 0:
        return np.zeros(0)
    # WORLD's analysis windows need some signal: a very short piece (a tiny range at the very start or end of
    # a stream) is padded with silence, analysed, and cut back
    xd = np.ascontiguousarray(np.pad(np.asarray(x, np.float64), (0, max(0, int(0.1 * rate) - n))))
    f0, t = pyworld.dio(xd, rate, frame_period=VOICE_FRAME_MS)
    f0 = pyworld.stonemask(xd, f0, t, rate)
    sp = pyworld.cheaptrick(xd, f0, t, rate)
    ap = pyworld.d4c(xd, f0, t, rate)
    y = pyworld.synthesize(np.ascontiguousarray(f0 * 2.0 ** (semitones / 12.0)), _warp(sp, formant),
                           _warp(ap, formant), rate, VOICE_FRAME_MS)
    if y.shape[0] < n:
        y = np.pad(y, (0, n - y.shape[0]))
    y = y[:n]
    # A level guard: speech comes out of WORLD at about its level, but a pure tone came out twice as loud
    # (RMS; peaks up to 5x): never louder than the source by more than 3 dB over a block.
    rx, ry = float(np.sqrt(np.mean(xd[:n] ** 2))), float(np.sqrt(np.mean(y ** 2)))
    if ry > MAX_GAIN * rx:
        y = y * (MAX_GAIN * rx / ry)
    return np.clip(y, -1.0, 1.0)


def _warp(env: np.ndarray, factor: float) -> np.ndarray:
    """Stretch a ``(frames, bins)`` spectral envelope along frequency: ``out[:, k] = env[:, k / factor]``
    (linear interpolation between bins; beyond the last bin, the last bin)."""
    bins = env.shape[1]
    src = np.minimum(np.arange(bins) / factor, bins - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    frac = src - lo
    return np.ascontiguousarray(env[:, lo] * (1 - frac) + env[:, hi] * frac)


# --- whole-array forms -------------------------------------------------------------------------------------
def _run(mode: str, samples: np.ndarray, rate: int, ranges, **kw) -> np.ndarray:
    if not isinstance(samples, np.ndarray) or samples.ndim != 2 or samples.dtype != np.float32:
        raise ValueError("samples must be a float32 array of shape (channels, n)")
    n = samples.shape[1]
    ranges = check_ranges(ranges, n / rate)
    # a range that runs to the last sample has no fade-out there (nothing follows it to click against)
    sample_ranges = [(a, OPEN_END if b >= n else b) for a, b in _to_samples(ranges, rate, n)]
    red = Redactor(mode, rate, samples.shape[0], sample_ranges, **kw)
    out = red.run(samples)
    return out if out is not samples else samples.copy()


def mute(samples: np.ndarray, rate: int, ranges) -> np.ndarray:
    """Silence ``ranges`` of ``samples`` (see the module doc for shapes, units and the edge fades).

    Raises:
        AnonlabError: a range `check_ranges` refuses (outside the ``n / rate`` seconds of ``samples``...).
        ValueError: ``samples`` is not a float32 ``(channels, n)`` array.
    """
    return _run("mute", samples, rate, ranges)


def beep(samples: np.ndarray, rate: int, ranges, freq: float = BEEP_HZ) -> np.ndarray:
    """Replace ``ranges`` of ``samples`` by a ``freq`` Hz tone at `BEEP_LEVEL` on every channel.

    Raises:
        AnonlabError: a range `check_ranges` refuses.
        ValueError: ``samples`` is not a float32 ``(channels, n)`` array, or ``freq`` is not below half
            the rate.
    """
    if not 0 < freq < rate / 2:
        raise ValueError(f"freq must lie between 0 and {rate / 2} Hz")
    return _run("beep", samples, rate, ranges, freq=freq)


def voice(samples: np.ndarray, rate: int, ranges, *, semitones: float = VOICE_SEMITONES,
          formant: float = VOICE_FORMANT) -> np.ndarray:
    """Disguise the voice in ``ranges`` of ``samples`` (WORLD vocoder; see the module doc for what it does and
    does not protect): pitch raised by ``semitones``, formants stretched by ``formant``.

    Raises:
        AnonlabError: a range `check_ranges` refuses, or ``pyworld`` is not installed.
        ValueError: ``samples`` is not a float32 ``(channels, n)`` array.
    """
    return _run("voice", samples, rate, ranges, semitones=semitones, formant=formant)
