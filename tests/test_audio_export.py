"""Audio redaction in the export (`write_video` with an `AudioPlan`): what the output's sound track holds.

Clips are made here with PyAV (`mediagen.make_clip`: a barcode video and a sine or harmonic sound track in
the codec under test); outputs are decoded again with PyAV (and probed with ffprobe where it is installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from mediagen import make_clip

from anonlab.errors import AnonlabError
from anonlab.media import write_video
from anonlab.media.audio import BEEP_HZ, VOICE_SEMITONES
from anonlab.media.audiotrack import AudioPlan, plan_audio_stream

#: Margin around a range edge where a lossy codec's window smears the change (AAC: 2048-sample MDCT).
EDGE = 0.05


def decoded(path: Path) -> tuple[np.ndarray, float, int]:
    """The first audio stream decoded: ``(samples (channels, n) float32, start (seconds after the video's
    first frame), rate)``; samples are placed by their timestamps."""
    with av.open(str(path)) as c:  # (a seek back to the start would change how AAC decodes its first frame)
        v = c.streams.video[0]
        v0 = min(p.pts for p in c.demux(v) if p.pts is not None) * v.time_base
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        chunks, start = [], None
        resampler = av.AudioResampler(format="fltp", layout=s.codec_context.layout.name, rate=s.codec_context.sample_rate)
        for frame in c.decode(s):
            for f in resampler.resample(frame):
                if start is None:
                    start = f.pts * f.time_base
                chunks.append(f.to_ndarray())
        return np.concatenate(chunks, axis=1), float(start - v0), s.codec_context.sample_rate


def stream_facts(path: Path) -> dict:
    """Codec, rate, channels, layout and duration (seconds, from the packets) of the first audio stream."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        ctx = s.codec_context
        ends, starts = [], []
        for p in c.demux(s):
            if p.pts is not None and p.size:
                starts.append(p.pts * s.time_base)
                ends.append((p.pts + (p.duration or 0)) * s.time_base)
        return {"codec": ctx.name, "rate": ctx.sample_rate, "channels": ctx.channels, "layout": ctx.layout.name,
                "duration": float(max(ends) - min(starts))}


def window(x: np.ndarray, start: float, rate: int, a: float, b: float) -> np.ndarray:
    """Samples of ``x`` (which starts at ``start`` s) between ``a`` and ``b`` seconds."""
    return x[..., max(0, int(round((a - start) * rate))):max(0, int(round((b - start) * rate)))]


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    n = min(ref.shape[-1], test.shape[-1])
    ref, test = ref[..., :n].astype(np.float64), test[..., :n].astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - test) ** 2), 1e-20)))


def outside(x, start, rate, ranges, end):
    """The samples of ``x`` outside ``ranges`` (with `EDGE` around each), as a list of pieces."""
    edges = [0.0] + [t for a, b in ranges for t in (a - EDGE, b + EDGE)] + [end]
    return [window(x, start, rate, edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


def acf_f0(x: np.ndarray, rate: int, lo: float = 60, hi: float = 500) -> float:
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[:len(x)]
    a, b = int(rate / hi), int(rate / lo)
    return rate / (a + int(np.argmax(ac[a:b])))


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def identity(n, frame):
    return frame


RANGES = ((0.5, 1.0), (1.4, 1.7))

#: name -> make_clip arguments: the codecs, rates and layouts the export must keep.
SOURCES = {
    "aac.mp4": {"audio_codec": "aac"},
    "aac44-stereo-vfr.mp4": {"audio_codec": "aac", "audio_rate": 44100, "audio_layout": "stereo", "vfr": True},
    "opus-stereo.mkv": {"audio_codec": "libopus", "audio_layout": "stereo"},
    "mp3.mkv": {"audio_codec": "libmp3lame", "audio_rate": 44100},
    "pcm-stereo.mov": {"audio_codec": "pcm_s16le", "audio_rate": 44100, "audio_layout": "stereo"},
    "flac.mkv": {"audio_codec": "flac"},
    "ac3-51.mkv": {"audio_codec": "ac3", "audio_layout": "5.1"},
    "aac.ts": {"audio_codec": "aac"},  # MPEG-TS: the streams start 1.4 s in, not at 0
}
LOSSLESS = {"pcm-stereo.mov", "flac.mkv"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio-src")
    return {name: make_clip(d / name, n_frames=50, audio=True, **kw) for name, kw in SOURCES.items()}


def test_keep_copies_packets_byte_for_byte(sources, tmp_path):
    src = sources["aac.mp4"]
    for i, plan in enumerate((None, AudioPlan(), AudioPlan("keep", RANGES))):
        out = tmp_path / f"keep{i}.mp4"
        info = write_video(src, out, identity, audio=plan)
        assert packets(out) == packets(src)
        assert info["audio"] == {"mode": "keep", "ranges": 0, "whole_track": False, "seconds": 0.0, "codec": "aac",
                                 "streams": 1}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_mute_keeps_the_stream_and_the_rest_of_the_audio(sources, tmp_path, name):
    src = sources[name]
    out = tmp_path / f"muted{Path(name).suffix}"
    info = write_video(src, out, identity, audio=AudioPlan("mute", RANGES))
    a, b = stream_facts(src), stream_facts(out)
    assert {k: b[k] for k in ("codec", "rate", "channels", "layout")} == {k: a[k] for k in ("codec", "rate", "channels",
                                                                                            "layout")}
    x, xs, rate = decoded(src)
    y, ys, _ = decoded(out)
    # No drift: the track ends where it ended, relative to the video's first frame, and starts there too;
    # except that MPEG-TS cannot say where an AAC encoder's start-up frame ends: there the track starts one
    # (silent) codec frame early, its content in place.
    lead = 1024 / rate if name.endswith(".ts") else 0.0
    assert abs((xs + x.shape[1] / rate) - (ys + y.shape[1] / rate)) < 1e-3
    assert -1e-3 < (xs - ys) < lead + 1e-3
    assert -1e-3 < b["duration"] - a["duration"] < lead + 1e-3, (a, b)
    for lo, hi in RANGES:
        assert rms(window(y, ys, rate, lo + EDGE, hi - EDGE)) < 0.01  # silence
    end = xs + x.shape[1] / rate
    for ref, got in zip(outside(x, xs, rate, RANGES, end), outside(y, ys, rate, RANGES, end)):
        if name in LOSSLESS:
            n = min(ref.shape[1], got.shape[1])
            assert np.array_equal(ref[:, :n], got[:, :n])
        else:
            assert snr_db(ref, got) > 20  # re-encoded, the same sound
    assert info["audio"]["mode"] == "mute"
    assert info["audio"]["ranges"] == 2
    assert abs(info["audio"]["seconds"] - 0.8) < 0.01
    assert info["audio"]["codec"] == b["codec"].replace("mp3float", "mp3")
    assert "reasons" not in info["audio"]


def test_beep_range_decodes_as_the_tone(sources, tmp_path):
    out = tmp_path / "beep.mp4"
    write_video(sources["aac.mp4"], out, identity, audio=AudioPlan("beep", RANGES))
    y, ys, rate = decoded(out)
    for lo, hi in RANGES:
        seg = window(y[0], ys, rate, lo + EDGE, hi - EDGE)
        assert abs(peak_hz(seg, rate) - BEEP_HZ) < 5
        assert 0.1 < rms(seg) < 0.25
    assert abs(peak_hz(window(y[0], ys, rate, 0.0, 0.45), rate) - 440) < 5


def test_bit_rate_is_kept(tmp_path):
    src = make_clip(tmp_path / "br.mp4", n_frames=50, audio=True, audio_bit_rate=96000, audio_layout="stereo")
    out = tmp_path / "o.mp4"
    write_video(src, out, identity, audio=AudioPlan("beep", RANGES))
    with av.open(str(src)) as a, av.open(str(out)) as b:
        ra, rb = a.streams.audio[0].bit_rate, b.streams.audio[0].bit_rate
    assert abs(rb - ra) / ra < 0.1


def test_whole_track_when_no_ranges(sources, tmp_path):
    out = tmp_path / "all.mp4"
    info = write_video(sources["aac.mp4"], out, identity, audio=AudioPlan("mute"))
    y, _, _ = decoded(out)
    assert rms(y) < 0.005
    assert info["audio"]["whole_track"]
    assert info["audio"]["ranges"] == 0
    assert abs(info["audio"]["seconds"] - 2.0) < 0.01


def test_voice_shifts_the_pitch_in_the_range_only(tmp_path):
    pytest.importorskip("pyworld")

    def harmonic(t):
        return (sum((0.3 / k) * np.sin(2 * np.pi * k * 150 * t) for k in range(1, 20)))[None]

    src = make_clip(tmp_path / "voice.mp4", n_frames=75, audio=True, audio_fn=harmonic, audio_bit_rate=128000)
    out = tmp_path / "o.mp4"
    info = write_video(src, out, identity, audio=AudioPlan("voice", ((1.0, 2.0),)))
    y, ys, rate = decoded(out)
    shifted = 150 * 2 ** (VOICE_SEMITONES / 12)
    assert abs(acf_f0(window(y[0], ys, rate, 1.1, 1.9), rate) - shifted) < 0.03 * shifted
    assert abs(acf_f0(window(y[0], ys, rate, 0.1, 0.9), rate) - 150) < 3
    assert abs(acf_f0(window(y[0], ys, rate, 2.1, 2.9), rate) - 150) < 3
    assert info["audio"]["mode"] == "voice"
    assert abs(info["audio"]["seconds"] - 1.0) < 0.01
    assert abs(stream_facts(src)["duration"] - stream_facts(out)["duration"]) < 1e-3


@pytest.mark.parametrize("ext, video_codec, expected, rate", [
    (".mkv", "libx264", "aac", 44100),        # Matroska: AAC, the source's rate
    (".webm", "libvpx-vp9", "opus", 48000),   # WebM holds Opus or Vorbis only; Opus runs at 48 kHz
])
def test_a_codec_without_encoder_becomes_the_containers_usual_one(tmp_path, ext, video_codec, expected, rate):
    src = make_clip(tmp_path / f"vorbis{ext}", n_frames=25, audio=True, audio_codec="vorbis", audio_rate=44100,
                    audio_layout="stereo", video_codec=video_codec)
    out = tmp_path / f"o{ext}"
    info = write_video(src, out, identity, audio=AudioPlan("beep", ((0.2, 0.6),)))
    facts = stream_facts(out)
    assert facts["codec"] == expected
    assert facts["rate"] == rate
    assert facts["channels"] == 2
    assert info["audio"]["codec"] == expected
    assert any("vorbis audio re-encoded as" in r for r in info["audio"]["reasons"])
    (x, xs, xrate), (y, ys, yrate) = decoded(src), decoded(out)
    # The same start; the end within one codec frame (Matroska cannot say where AAC's last frame ends).
    assert abs(xs - ys) < 1e-3
    assert abs(x.shape[1] / xrate - y.shape[1] / yrate) < 1024 / yrate + 1e-3


def test_no_audio_stream_is_nothing_to_do(tmp_path):
    src = make_clip(tmp_path / "silent.mp4", n_frames=10)
    info = write_video(src, tmp_path / "o.mp4", identity, audio=AudioPlan("mute"))
    assert info["audio"]["note"] == "no audio stream: nothing to do"
    assert info["audio"]["codec"] is None


def test_a_range_past_the_end_is_refused_before_writing(sources, tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(AnonlabError, match=r"aac.mp4: audio range 1.5-9: ends after the end of the media") as exc:
        write_video(sources["aac.mp4"], out, identity, audio=AudioPlan("beep", ((1.5, 9.0),)))
    assert "\n" not in str(exc.value)
    assert not out.exists()


def test_redacting_twice_gives_the_same_bytes(sources, tmp_path):
    """The same case file must render to the same bytes (resumed batches rest on it)."""
    outs = []
    for i in range(2):
        out = tmp_path / f"o{i}.mp4"
        write_video(sources["aac.mp4"], out, identity, audio=AudioPlan("beep", RANGES))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_plan_audio_stream_names_reasons(sources):
    with av.open(str(sources["opus-stereo.mkv"])) as c:
        enc = plan_audio_stream(c.streams.audio[0], "matroska")
    assert (enc.encoder, enc.codec, enc.rate, enc.layout, enc.reasons) == ("libopus", "opus", 48000, "stereo", ())


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian's ffmpeg) not installed")
def test_ffprobe_sees_the_same_durations(sources, tmp_path):
    """An independent reader: the audio and video streams' durations are the source's."""
    out = tmp_path / "o.mp4"
    write_video(sources["aac.mp4"], out, identity, audio=AudioPlan("mute", RANGES))

    def durations(path):
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration,start_time",
                            "-of", "json", str(path)], capture_output=True, text=True, check=True)
        return {s["codec_type"]: (float(s["start_time"]), float(s["duration"])) for s in json.loads(r.stdout)["streams"]}

    assert durations(out) == durations(sources["aac.mp4"])
