"""Audio redaction from the outside: `Settings.audio` / ``audio_ranges``, the ``--audio`` flags, the report."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from mediagen import make_clip

from anonlab.cli import build_parser, settings_from_args
from anonlab.errors import AnonlabError
from anonlab.settings import Settings


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "anonlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for f in fragments:
        assert f in err[0], err[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("audio-cli") / "talk.mp4", n_frames=50, audio=True)


# --- settings ----------------------------------------------------------------------------------------------
def test_settings_round_trip_through_json():
    s = Settings(audio="beep", audio_ranges=((30, 31.2), (12.5, 14), (13, 14.5)))
    assert s.audio_ranges == ((12.5, 14.5), (30.0, 31.2))  # sorted and merged
    d = json.loads(json.dumps(s.to_dict()))
    assert d["audio"] == "beep"
    assert d["audio_ranges"] == [[12.5, 14.5], [30.0, 31.2]]
    assert Settings.from_dict(d) == s
    assert Settings.from_dict(d).digest == s.digest
    assert Settings.from_dict(Settings().to_dict()) == Settings()


def test_digest_changes_with_the_audio_and_not_otherwise():
    # the digest of settings that leave the audio alone is what it was before audio redaction existed
    assert Settings().digest == "e54ba64f4f33aa00"
    assert Settings(what=("face",), crf=20).digest == "db8cca2b16093e35"
    digests = {Settings(audio=a, audio_ranges=r).digest
               for a, r in [("keep", ()), ("mute", ()), ("beep", ()), ("voice", ()), ("mute", ((1, 2),)),
                            ("mute", ((1, 3),))]}
    assert len(digests) == 6


def test_settings_accept_range_text():
    assert Settings(audio="mute", audio_ranges="12.5-14, 1:00-1:01.5").audio_ranges == ((12.5, 14.0), (60.0, 61.5))


@pytest.mark.parametrize("changes, fragment", [
    ({"audio": "bleep"}, "--audio must be one of keep, mute, beep, voice"),
    ({"audio": "keep", "audio_ranges": ((1, 2),)}, "--audio-ranges needs --audio mute, beep or voice"),
    ({"audio": "mute", "audio_ranges": ((2, 1),)}, "--audio-ranges: audio range 2-1: the start must come before"),
    ({"audio": "mute", "audio_ranges": ((-1, 1),)}, "starts before 0"),
    ({"audio": "mute", "audio_ranges": "1-x"}, "expected START-STOP"),
    ({"audio": "mute", "audio_ranges": [[1, "a"]]}, "two numbers"),
])
def test_settings_refuse_bad_audio(changes, fragment):
    with pytest.raises(AnonlabError, match=fragment) as exc:
        Settings(**changes)
    assert "\n" not in str(exc.value)
    with pytest.raises(AnonlabError, match=fragment):
        Settings.from_dict({**Settings().to_dict(), **changes})


def test_flags_fill_the_settings():
    p = build_parser()
    s = settings_from_args(p.parse_args(["anonymize", "x.mp4", "--audio", "voice", "--audio-ranges", "12.5-14,30-31.2"]))
    assert s.audio == "voice"
    assert s.audio_ranges == ((12.5, 14.0), (30.0, 31.2))
    s = settings_from_args(p.parse_args(["batch", "in", "out", "--audio", "mute"]))
    assert s.audio == "mute"
    assert s.audio_ranges == ()
    s = settings_from_args(p.parse_args(["anonymize", "x.mp4", "--audio", "beep", "--audio-ranges", ""]))
    assert s.audio == "beep"
    assert s.audio_ranges == ()  # empty: the whole track
    assert settings_from_args(p.parse_args(["anonymize", "x.mp4"])).audio == "keep"


# --- the command line --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--audio", "mute", "--audio-ranges", "14-12.5"], "audio range 14-12.5: the start must come before the stop"),
    (["--audio", "mute", "--audio-ranges", "12.5"], "audio range '12.5': expected START-STOP"),
    (["--audio", "beep", "--audio-ranges", "1-2,a-3"], "expected START-STOP"),
    (["--audio-ranges", "1-2"], "--audio-ranges needs --audio mute, beep or voice"),
    (["--audio", "mute", "--audio-ranges", "1.5-9"], "talk.mp4: audio range 1.5-9: ends after the end of the media"),
])
def test_bad_ranges_are_one_line_and_exit_2(tmp_path, clip, args, fragment):
    out = tmp_path / "o.mp4"
    assert_one_line_error(run("anonymize", clip, "-o", out, *args), fragment)
    assert not out.exists()


def test_bad_mode_is_refused_by_the_parser(tmp_path, clip):
    proc = run("anonymize", clip, "-o", tmp_path / "o.mp4", "--audio", "bleep")
    assert proc.returncode == 2
    assert "--audio" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_anonymize_beeps_and_reports_it(tmp_path, clip):
    """The whole path (analysis with the streaming render): the beep is in the output and in the report."""
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    proc = run("anonymize", clip, "-o", out, "--report", report, "--audio", "beep", "--audio-ranges", "0.5-1.2",
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "audio: beep over 1 range(s), 0.70 s changed, re-encoded as aac" in proc.stdout
    rep = json.loads(report.read_text())
    assert rep["extra"]["audio"] == {"mode": "beep", "ranges": 1, "whole_track": False, "seconds": 0.7,
                                     "codec": "aac", "streams": 1}
    assert rep["settings"]["audio"] == "beep"
    assert rep["settings"]["audio_ranges"] == "1 range(s), 0.70 s"
    assert "0.5" not in json.dumps(rep["settings"])  # times of redactions stay in the case file, not the report
    with av.open(str(out)) as c:
        s = c.streams.audio[0]
        x = np.concatenate([f.to_ndarray() for f in c.decode(s)], axis=1)[0]
    seg = x[int(0.55 * 48000):int(1.15 * 48000)]
    assert abs(np.fft.rfftfreq(len(seg), 1 / 48000)[np.argmax(np.abs(np.fft.rfft(seg)))] - 1000) < 5
    assert "audio" in (tmp_path / "r.md").read_text()


def test_regions_in_render_takes_the_audio_settings(tmp_path, clip):
    """The render path without analysis (``--regions-in``) redacts too; a photo ignores the audio flags."""
    regions = tmp_path / "none.jsonl"
    regions.write_text("")
    out = tmp_path / "o.mp4"
    proc = run("anonymize", clip, "-o", out, "--regions-in", regions, "--audio", "mute", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "audio: mute over the whole track, 2.00 s changed" in proc.stdout
    with av.open(str(out)) as c:
        x = np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1)
    assert float(np.sqrt(np.mean(x ** 2))) < 0.005


def test_no_audio_stream_is_fine(tmp_path):
    src = make_clip(tmp_path / "silent.mp4", n_frames=10)
    regions = tmp_path / "none.jsonl"
    regions.write_text("")
    proc = run("anonymize", src, "-o", tmp_path / "o.mp4", "--regions-in", regions, "--audio", "mute", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "audio: no audio stream: nothing to do" in proc.stdout


def test_photos_ignore_audio_settings(tmp_path):
    import cv2

    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    regions = tmp_path / "none.jsonl"
    regions.write_text("")
    proc = run("anonymize", photo, "-o", tmp_path / "o.jpg", "--regions-in", regions, "--audio", "mute",
               "--audio-ranges", "1-2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "audio:" not in proc.stdout


# --- verify ------------------------------------------------------------------------------------------------
def test_verify_passes_redacted_audio_only_with_the_runs_report(tmp_path, clip):
    regions = tmp_path / "none.jsonl"
    regions.write_text("")
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert run("anonymize", clip, "-o", out, "--regions-in", regions, "--report", report, "--audio", "beep",
               "--audio-ranges", "0.5-1.2", "--quiet").returncode == 0
    plain = run("verify", clip, out)
    assert plain.returncode == 1
    assert "FAIL audio packets identical" in plain.stdout
    assert "--report REPORT.json" in plain.stdout
    for line in ("ok   audio codec: aac -> aac", "ok   audio sample rate: 48000 Hz -> 48000 Hz",
                 "ok   audio channels: 1 (mono) -> 1 (mono)", "ok   audio duration: 2.000s -> 2.000s"):
        assert line in plain.stdout, plain.stdout
    with_report = run("verify", clip, out, "--report", report)
    assert with_report.returncode == 0, with_report.stdout
    assert "ok   audio redacted: beep over 1 range(s), 0.7 s, as the report says" in with_report.stdout
    # the report of another output does not vouch for this one
    other = tmp_path / "other.mp4"
    other.write_bytes(out.read_bytes() + b"\0")
    assert_one_line_error(run("verify", clip, other, "--report", report), "r.json: is the report of another output")


def test_verify_keep_output_and_a_report_that_says_keep(tmp_path, clip):
    regions = tmp_path / "none.jsonl"
    regions.write_text("")
    out, report = tmp_path / "o.mp4", tmp_path / "r.json"
    assert run("anonymize", clip, "-o", out, "--regions-in", regions, "--report", report, "--quiet").returncode == 0
    proc = run("verify", clip, out, "--report", report)
    assert proc.returncode == 0, proc.stdout
    assert "ok   audio packets identical" in proc.stdout, proc.stdout


def test_verify_names_a_changed_rate_and_duration(tmp_path):
    from anonlab.report.verify import verify_video

    src = make_clip(tmp_path / "a.mp4", n_frames=25, audio=True)
    resampled = make_clip(tmp_path / "b.mp4", n_frames=25, audio=True, audio_rate=44100)
    failed = {name for name, ok, _ in verify_video(src, resampled) if not ok}
    assert failed == {"audio sample rate", "audio packets identical"}

    short = tmp_path / "short.mp4"  # the same picture, the audio cut short
    with av.open(str(src)) as inp, av.open(str(short), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for pkt in inp.demux():
            if pkt.dts is None or (pkt.stream.type == "audio" and pkt.pts * pkt.stream.time_base > 0.5):
                continue
            pkt.stream = streams[pkt.stream_index]
            out.mux(pkt)
    failed = {name for name, ok, _ in verify_video(src, short) if not ok}
    assert failed == {"audio duration", "audio packets identical"}


def test_an_opus_track_redacted_passes_verify(tmp_path):
    """A newcomer beeped a second of an Opus track (MKV, from FFmpeg 5.1): anonymize said ok and verify failed the
    output's duration (3.021 s -> 3.008 s) although it held the same samples: the source's last packet said 20 ms
    (a whole Opus frame), the re-encode's 7 (its real length). A re-encode may end anywhere in its last frame."""
    from anonlab.report.verify import verify_video

    video = make_clip(tmp_path / "v.mkv", n_frames=75, width=160, height=96)
    src = tmp_path / "talk.mkv"
    with av.open(str(video)) as inp, av.open(str(src), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        a = out.add_stream("libopus", rate=48000, layout="mono")
        t = np.arange(3 * 48000) / 48000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        packets = []
        for i in range(0, samples.shape[1], 4800):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i:i + 4800]), format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            packets += a.encode(frame)
        packets += a.encode(None)
        packets[-1].duration = 960  # the last packet claims a whole 20-ms frame, as FFmpeg 5.1's muxing left it
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = v
                out.mux(packet)
        for packet in packets:
            out.mux(packet)
    out_path, report = tmp_path / "o.mkv", tmp_path / "r.json"
    proc = run("anonymize", src, "-o", out_path, "--report", report, "--audio", "beep", "--audio-ranges", "0.5-1.5",
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    failed = [(name, detail) for name, ok, detail in verify_video(src, out_path, report) if not ok]
    assert failed == []


def test_ranges_on_a_file_whose_picture_starts_late_say_where_they_count_from(tmp_path):
    """A camera file whose sound starts 0.84 s before its picture: 0.5-1.5 beeped 1.34-2.34 s of the file as a
    player counts, as documented (the ranges count from the first picture) but unsaid. The CLI now says it."""
    from mediagen import ffmpeg_exe

    from anonlab.media.audiotrack import picture_start

    plain = make_clip(tmp_path / "plain.mp4", n_frames=50, width=160, height=96, audio=True)
    late = tmp_path / "late.mkv"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-itsoffset", "0.8", "-i", str(plain), "-i", str(plain),
                    "-map", "0:v", "-map", "1:a", "-c", "copy", str(late)], check=True)
    assert picture_start(late) == pytest.approx(0.8, abs=0.05)
    assert picture_start(plain) < 0.05
    proc = run("anonymize", late, "-o", tmp_path / "o.mkv", "--audio", "beep", "--audio-ranges", "0.2-0.6",
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "count from the first picture, which starts 0.8" in proc.stderr
    proc = run("anonymize", plain, "-o", tmp_path / "o.mp4", "--audio", "beep", "--audio-ranges", "0.2-0.6",
               "--quiet")
    assert proc.returncode == 0 and "first picture" not in proc.stderr
