"""Audio redaction engine (`anonlab.media.audio`): mute, beep, voice disguise on sample arrays, and ranges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonlab.errors import AnonlabError
from anonlab.media import audio as A

RATE = 48000


def sine(freq: float, seconds: float, channels: int = 1, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.repeat((level * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None], channels, axis=0)


def harmonic(f0: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A voiced, speech-like test signal: 19 harmonics of ``f0`` with a 1/k spectrum, (1, n) float32."""
    t = np.arange(int(rate * seconds)) / rate
    x = sum((0.3 / k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 20))
    return x.astype(np.float32)[None]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def peak_hz(x: np.ndarray, rate: int = RATE) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


def acf_f0(x: np.ndarray, rate: int = RATE, lo: float = 60, hi: float = 500) -> float:
    """F0 by autocorrelation: the lag of the highest peak between 1/hi and 1/lo seconds."""
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[:len(x)]
    a, b = int(rate / hi), int(rate / lo)
    return rate / (a + int(np.argmax(ac[a:b])))


def part(x: np.ndarray, start: float, stop: float) -> np.ndarray:
    return x[..., int(start * RATE):int(stop * RATE)]


# --- ranges ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ranges, duration, expected", [
    ([(1, 2)], 5, ((1.0, 2.0),)),
    ([(3, 4), (1, 2)], 5, ((1.0, 2.0), (3.0, 4.0))),
    ([(1, 3), (2, 4)], 5, ((1.0, 4.0),)),                     # overlapping: merged
    ([(1, 2), (2, 3)], 5, ((1.0, 3.0),)),                     # touching: merged
    ([(0, 5)], 5, ((0.0, 5.0),)),                             # the whole track
    ([(0, 5.0005)], 5, ((0.0, 5.0005),)),                     # within the millisecond slack
    ([], 5, ()),
    ([(1, 2)], None, ((1.0, 2.0),)),                          # no duration: upper bound not checked
])
def test_check_ranges_normalises(ranges, duration, expected):
    assert A.check_ranges(ranges, duration) == expected


@pytest.mark.parametrize("ranges, duration, message", [
    ([(2, 1)], 5, "2-1: the start must come before the stop"),
    ([(1, 1)], 5, "start must come before"),
    ([(-1, 1)], 5, "starts before 0"),
    ([(4, 6)], 5, "ends after the end of the media"),
    ([(1, float("nan"))], 5, "finite"),
    ([(1, float("inf"))], None, "finite"),
    ([(1, 2, 3)], 5, "two numbers"),
    (["12"], 5, "two numbers"),
    ([("a", 1)], 5, "two numbers"),
])
def test_check_ranges_refuses(ranges, duration, message):
    with pytest.raises(AnonlabError, match=message) as exc:
        A.check_ranges(ranges, duration)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("text, expected", [
    ("12.5-14,30-31.2", ((12.5, 14.0), (30.0, 31.2))),
    (" 1-2 , 3-4 ", ((1.0, 2.0), (3.0, 4.0))),
    ("1:02.5-1:04", ((62.5, 64.0),)),
    ("", ()),
    ("3-4,1-2,1.5-3.5", ((1.0, 4.0),)),
])
def test_parse_ranges(text, expected):
    assert A.parse_ranges(text) == expected
    assert A.parse_ranges(A.format_ranges(expected)) == expected


@pytest.mark.parametrize("text", ["12", "1-2-3", "a-b", "-1-2", "2-1", "1-", "1-nan", "1:2:3:4-5"])
def test_parse_ranges_refuses_in_one_line(text):
    with pytest.raises(AnonlabError, match="audio range") as exc:
        A.parse_ranges(text)
    assert "\n" not in str(exc.value)


# --- mute and beep -----------------------------------------------------------------------------------------
def test_mute_silences_the_range_and_keeps_the_rest():
    x = sine(440, 3, channels=2)
    y = A.mute(x, RATE, [(1.0, 2.0)])
    assert y.shape == x.shape
    assert y.dtype == np.float32
    assert rms(part(y, 1.0 + A.FADE_S, 2.0 - A.FADE_S)) < 1e-6
    assert np.array_equal(part(y, 0, 1.0), part(x, 0, 1.0))
    assert np.array_equal(part(y, 2.0, 3), part(x, 2.0, 3))
    assert np.array_equal(x, sine(440, 3, channels=2))  # the input is not changed


def test_edges_fade_without_a_click():
    x = np.full((1, RATE), 0.5, np.float32)  # DC: a hard cut would be a step of 0.5
    y = A.mute(x, RATE, [(0.25, 0.75)])
    assert np.abs(np.diff(y[0])).max() < 0.5 / (A.FADE_S * RATE) * 2  # spread over the fade


def test_beep_is_the_tone_at_a_moderate_level():
    x = sine(300, 3, channels=2)
    y = A.beep(x, RATE, [(0.5, 2.5)])
    for ch in y:
        seg = part(ch, 0.6, 2.4)
        assert abs(peak_hz(seg) - A.BEEP_HZ) < 2
        assert abs(rms(seg) - A.BEEP_LEVEL / np.sqrt(2)) < 0.01
        assert abs(peak_hz(part(ch, 0, 0.5)) - 300) < 3
    assert np.array_equal(part(y, 2.5, 3), part(x, 2.5, 3))
    assert abs(peak_hz(part(A.beep(x, RATE, [(0.5, 2.5)], freq=440)[0], 0.6, 2.4)) - 440) < 2


def test_whole_track_has_no_fade_at_the_ends():
    x = sine(440, 1)
    y = A.mute(x, RATE, A.whole_track(1.0))
    assert not y.any()


def test_short_range_fades_over_half_its_length():
    x = np.full((1, RATE), 0.5, np.float32)
    y = A.mute(x, RATE, [(0.5, 0.502)])  # 2 ms < two fades
    assert y[0, int(0.501 * RATE)] < 0.01
    assert np.array_equal(y[0, :int(0.5 * RATE)], x[0, :int(0.5 * RATE)])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="shape"):
        A.mute(np.zeros(100, np.float32), RATE, [])
    with pytest.raises(ValueError, match="float32"):
        A.mute(np.zeros((1, 100), np.float64), RATE, [])
    with pytest.raises(AnonlabError, match="ends after"):
        A.mute(np.zeros((1, RATE), np.float32), RATE, [(0.5, 2)])
    with pytest.raises(ValueError, match="freq must lie between"):
        A.beep(np.zeros((1, RATE), np.float32), RATE, [], freq=RATE)


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40), st.sampled_from(["mute", "beep"]))
def test_streaming_equals_one_shot(sizes, mode):
    x = sine(440, 1, channels=2)
    ranges = [(0.1, 0.3), (0.5, 0.9)]
    whole = A._run(mode, x, RATE, ranges)
    red = A.Redactor(mode, RATE, 2, A._to_samples(ranges, RATE))
    pieces, pos = [], 0
    for k in sizes * 20:
        if pos >= x.shape[1]:
            break
        pieces.append(red.push(x[:, pos:pos + k]))
        pos += k
    pieces += [red.push(x[:, pos:]), red.flush()]
    assert np.array_equal(np.concatenate(pieces, axis=1), whole)


def test_redactor_counts_affected_samples_and_offsets():
    red = A.Redactor.from_seconds("mute", RATE, 1, [(1.0, 2.0), (5.0, 6.0)], offset=0.5)
    out = red.run(sine(440, 3))
    assert red.affected == RATE  # 0.5-1.5 s of the stream; the second range lies past its end
    assert rms(out[:, int(0.51 * RATE):int(1.49 * RATE)]) < 1e-6
    assert rms(out[:, :int(0.5 * RATE)]) > 0.1
    whole = A.Redactor.from_seconds("mute", RATE, 1, [], whole=True)
    assert not whole.run(sine(440, 1)).any()
    assert whole.affected == RATE


# --- voice -------------------------------------------------------------------------------------------------
def test_voice_shifts_pitch_in_the_range_only():
    pytest.importorskip("pyworld")
    x = harmonic(150, 6)
    y = A.voice(x, RATE, [(2.0, 4.0)])
    shifted = 150 * 2 ** (A.VOICE_SEMITONES / 12)
    assert abs(acf_f0(part(y[0], 2.2, 3.8)) - shifted) < 0.03 * shifted
    assert abs(acf_f0(part(y[0], 0.2, 1.8)) - 150) < 2
    assert abs(acf_f0(part(y[0], 4.2, 5.8)) - 150) < 2
    assert np.array_equal(part(y, 0, 2.0), part(x, 0, 2.0))
    assert np.array_equal(part(y, 4.0, 6), part(x, 4.0, 6))
    assert 0.3 < rms(part(y, 2.2, 3.8)) / rms(part(x, 2.2, 3.8)) < 3  # still heard at about its level


def test_voice_moves_formants():
    """The spectral envelope is stretched: a resonance at 1 kHz moves to about 1 kHz x `VOICE_FORMANT`."""
    pytest.importorskip("pyworld")
    rate = 16000
    t = np.arange(rate * 2) / rate

    def envelope(f):  # a 1/f slope with a resonance (formant) at 1000 Hz
        return 100 / f * (0.2 + 3 * np.exp(-((f - 1000) / 120) ** 2))

    x = sum(envelope(k * 100) * 0.1 * np.sin(2 * np.pi * k * 100 * t) for k in range(1, 60))

    def resonance(z):  # the peak of the spectrum smoothed over two harmonics
        spec = np.abs(np.fft.rfft(z[rate // 2:3 * rate // 2] * np.hanning(rate)))
        freqs = np.fft.rfftfreq(rate, 1 / rate)
        smooth = np.convolve(spec, np.ones(200) / 200, "same")
        band = (freqs > 500) & (freqs < 2500)
        return float(freqs[band][np.argmax(smooth[band])])

    y = A.voice(x.astype(np.float32)[None], rate, [(0, 2)], semitones=0.0)
    assert abs(resonance(x) - 1000) < 50
    assert abs(resonance(y[0]) - 1000 * A.VOICE_FORMANT) < 50


def test_voice_streams_in_blocks_like_one_shot():
    pytest.importorskip("pyworld")
    rate = 16000
    x = np.concatenate([harmonic(120, 11, rate), harmonic(120, 11, rate)])  # stereo, 11 s: three blocks
    ranges = [(0.5, 10.5)]
    whole = A._run("voice", x, rate, ranges)
    red = A.Redactor("voice", rate, 2, A._to_samples(ranges, rate))
    pieces = [red.push(x[:, p:p + 1024]) for p in range(0, x.shape[1], 1024)] + [red.flush()]
    out = np.concatenate(pieces, axis=1)
    assert out.shape == x.shape
    assert np.array_equal(out, whole)
    assert np.array_equal(out[0], out[1])  # mono inside the range
    step = np.abs(np.diff(out[0]))
    block = int(A.VOICE_BLOCK_S * rate)
    seams = [int(0.5 * rate) + k * block for k in (1, 2)]
    assert max(step[s - 20:s + 20].max() for s in seams) <= 1.5 * np.quantile(step, 0.999)  # no click


@pytest.mark.parametrize("freq", [300, 1528])
def test_voice_is_never_much_louder_than_the_source(freq):
    pytest.importorskip("pyworld")
    x = sine(freq, 1, level=0.1)
    y = A.voice(x, RATE, [(0, 1)])
    assert rms(y) <= A.MAX_GAIN * rms(x) * 1.01


def test_voice_without_pyworld_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyworld(name, *args, **kw):
        if name == "pyworld":
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyworld)
    with pytest.raises(AnonlabError, match=r"anonlab\[voice\]"):
        A.voice(harmonic(150, 1), RATE, [(0.2, 0.8)])
