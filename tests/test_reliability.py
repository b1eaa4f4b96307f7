"""The bad-input corpus through the real CLI: a correct output or one clear line, never a traceback,
never a modified input, never a partial output."""

import errno
import json
import subprocess
import sys

import pytest

from anonlab import cli
from anonlab.media import sha256_file
from anonlab.report.verify import verify_photo, verify_video
from badinputs import CORPUS


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "anonlab", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def snapshot(folder):
    return sorted(p.name for p in folder.rglob("*"))


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus(tmp_path, name):
    maker, expectation = CORPUS[name]
    src = maker(tmp_path)
    if src is None:
        pytest.skip("no ffmpeg binary to make this input")
    before_hash = sha256_file(src)
    out_dir = tmp_path / "out dir ü"
    out_dir.mkdir()
    dst = out_dir / f"result{src.suffix}"
    proc = run_cli("anonymize", src, "-o", dst, "--quiet", "--report", out_dir / "report.json")
    assert "Traceback" not in proc.stderr
    assert sha256_file(src) == before_hash  # the input is never modified
    if expectation == "ok":
        assert proc.returncode == 0, proc.stderr
        checks = verify_video(src, dst) if src.suffix.lower() in (".mp4", ".mov", ".mkv") else verify_photo(src, dst)
        failed = [c for c in checks if not c[1]]
        if name == "truncated_mid_stream":  # written whole as far as it goes; verify says the input is cut off
            assert [c[0] for c in failed] == ["input read to its end"], failed
        else:
            assert not failed, failed
        if name == "subtitles":  # subtitle and data streams are dropped (they can carry names, places)
            import av

            with av.open(str(dst)) as c:
                assert not c.streams.subtitles
                assert not c.streams.data
                assert len(c.streams.audio) == 1
        report = json.loads((out_dir / "report.json").read_text())
        assert report["input"]["frames"] == report["output"]["frames"]
        assert report["frames_match"]
    else:
        fragment = expectation.split(":", 1)[1]
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert fragment in lines[0], lines[0]
        assert src.name in lines[0], lines[0]
        assert snapshot(out_dir) == []  # no partial output, no temp file


def test_corrupt_frames_are_masked_whole_and_reported(tmp_path):
    from anonlab.media import VideoReader

    src = CORPUS["corrupt_frames"][0](tmp_path)
    dst = tmp_path / "o.mkv"
    proc = run_cli("anonymize", src, "-o", dst, "--quiet", "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    with VideoReader(src) as inp:
        list(inp.frames())
        damaged = sorted(inp.damaged)
    assert damaged
    assert report["extra"]["damaged_frames"] >= 1
    with VideoReader(dst) as out:
        for n in damaged:
            assert out.get(n).max() < 40  # black: nothing from a frame that could not be analysed


def test_read_only_output_folder(tmp_path, clips, monkeypatch, capsys):
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # root ignores chmod, so simulate the refusal
    code = cli.main(["anonymize", str(clips["plain"]), "-o", str(tmp_path / "o.mp4"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1
    assert "not writable" in err[0]
    assert not (tmp_path / "o.mp4").exists()


def test_full_disk_leaves_no_partial_output(tmp_path, clips, monkeypatch, capsys):
    import anonlab.pipeline as pipeline

    real = pipeline.write_video

    def fill_disk(src, dst, render, **kw):
        def render_then_fail(n, frame):
            if n == 5:
                raise OSError(errno.ENOSPC, "No space left on device")
            return render(n, frame)
        kw["needs_render"] = None  # every frame goes through render, so the failure comes at frame 5
        return real(src, dst, render_then_fail, **kw)

    monkeypatch.setattr(pipeline, "write_video", fill_disk)
    before = sha256_file(clips["audio"])
    code = cli.main(["anonymize", str(clips["audio"]), "-o", str(tmp_path / "o.mp4"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0, err
    assert len(err) == 1, err
    assert "No space left" in err[0], err
    assert list(tmp_path.iterdir()) == []
    assert sha256_file(clips["audio"]) == before


def test_debug_shows_the_trace(tmp_path):
    src = tmp_path / "bad.mp4"
    src.write_text("nope")
    proc = run_cli("--debug", "anonymize", src, "-o", tmp_path / "o.mp4")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


KILL_EXPORT = """
import os, sys, time
# The kill must land mid-export whatever the machine's load: the output, written in full to its temporary,
# waits here before it would replace the previous one, until the test kills the process.
_replace = os.replace
def hold(src, dst, *args, **kwargs):
    if str(src).endswith(".part.mp4"):
        time.sleep(3600)
    return _replace(src, dst, *args, **kwargs)
os.replace = hold
from anonlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _export_held_before_rename(tmp_path, src):
    """Start ``anonlab anonymize`` of ``src`` over a previous ``o.mp4`` and return once its temporary holds the
    whole output (`KILL_EXPORT` holds it there): ``(process, dst, args)``."""
    import time

    dst = tmp_path / "o.mp4"
    (tmp_path / "r.jsonl").write_text("")  # no regions: no model needed, only the export runs
    dst.write_bytes(b"previous complete output")
    script = tmp_path / "kill_export.py"
    script.write_text(KILL_EXPORT)
    args = ["anonymize", str(src), "-o", str(dst), "--overwrite", "--quiet", "--regions-in", str(tmp_path / "r.jsonl")]
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 600  # a generous bound only: the child waits for its signal (KILL_EXPORT)
    while time.monotonic() < deadline and proc.poll() is None:
        parts = list(tmp_path.glob(".o.*.part.mp4"))
        if parts and parts[0].stat().st_size > 0:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()
    return proc, dst, args


def test_kill_9_during_export_keeps_previous_output(tmp_path, clips):
    import os
    import signal

    src = clips["audio"]
    proc, dst, args = _export_held_before_rename(tmp_path, src)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert dst.read_bytes() == b"previous complete output"  # the previous state is intact
    assert list(tmp_path.glob(".o.*.part.mp4"))  # the killed writer's temporary is still there...
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob(".o.*.part.mp4"))  # ...until the next run sweeps it
    assert all(ok for _, ok, _ in verify_video(src, dst))


def test_sigterm_during_export_cleans_up_and_says_so(tmp_path, clips):
    """``kill`` (SIGTERM: a scheduler's time limit, a closed terminal sends SIGHUP) killed the process at once,
    with no message and its hidden part-written output left beside the target. It is now taken as Ctrl-C is."""
    import os
    import signal

    proc, dst, _ = _export_held_before_rename(tmp_path, clips["audio"])
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["anonlab: stopped (SIGTERM); no partial output was left"]
    assert dst.read_bytes() == b"previous complete output"
    assert not list(tmp_path.glob(".o.*"))  # its temporary went with it


def test_a_matroska_file_cut_off_says_so(tmp_path):
    """A newcomer cut a Matroska clip off (``head -c``): it decoded without an error up to where it stopped, and
    nothing said that the output holds only part of the clip. It does now, in one line, and still writes it."""
    from mediagen import make_clip

    full = make_clip(tmp_path / "full.mkv", n_frames=100, width=160, height=96)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 10])
    proc = run_cli("anonymize", cut, "-o", tmp_path / "o.mkv", "--quiet", "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "cut off" in warning[0] and "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["extra"]["input_cut_short"]["announced_s"] == pytest.approx(4.0, abs=0.1)
    assert report["extra"]["input_cut_short"]["read_s"] < 2.0
    whole = run_cli("anonymize", full, "-o", tmp_path / "w.mkv", "--quiet")  # the whole file: no warning
    assert whole.returncode == 0 and "warning" not in whole.stderr


def test_an_mp4_cut_off_says_so_and_verify_fails_it(tmp_path):
    """A phone clip cut off in a copy (its header first, ``-movflags +faststart``): the header lists 65 frames and
    39 could be read; the seconds missing (0.9 s of 2.2 s) were under the Matroska rule, so nothing was said and
    verify passed the shortened output. The frame list is proof: the CLI warns and verify fails."""
    from mediagen import ffmpeg_exe, make_clip

    raw = make_clip(tmp_path / "raw.mp4", n_frames=50, width=160, height=96)
    full = tmp_path / "full.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(raw), "-c", "copy", "-movflags", "+faststart",
                    str(full)], check=True)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    proc = run_cli("anonymize", cut, "-o", tmp_path / "o.mp4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "cut off: its header lists 50 frames" in warning[0], proc.stderr
    checks = {name: ok for name, ok, _ in verify_video(cut, tmp_path / "o.mp4")}
    assert checks["input read to its end"] is False and checks["frame count"] is True
    whole = run_cli("anonymize", full, "-o", tmp_path / "w.mp4", "--quiet")  # the whole file: no warning
    assert whole.returncode == 0 and "warning" not in whole.stderr
    assert dict((n, ok) for n, ok, _ in verify_video(full, tmp_path / "w.mp4"))["input read to its end"] is True
