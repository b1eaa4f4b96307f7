"""Faults a newcomer found in ``anonlab anonymize``: every path a run writes is checked before any work, the
streams an output leaves out are announced and counted, and a killed writer's temporaries are cleared."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from anonlab import cli
from anonlab.media import sha256_file
from mediagen import ffmpeg_exe, make_clip


@pytest.fixture()
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", n_frames=8, audio=True)


@pytest.fixture()
def no_regions(tmp_path):
    """An empty regions file: ``--regions-in`` with it runs no model, only the export."""
    path = tmp_path / "none.jsonl"
    path.write_text("")
    return path


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


# --- 1. every path the run writes is checked before any work -------------------------------------------------

def _read_only(monkeypatch, folder):
    """Make ``folder`` look like a read-only file system to `os.access` and `os.statvfs` (root writes anywhere,
    so a chmod cannot show it in a suite run as root)."""
    folder = os.path.realpath(folder)
    real_access, real_statvfs = os.access, os.statvfs

    def access(path, mode, *a, **k):
        if os.path.realpath(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, *a, **k)

    class ReadOnly:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, name):
            return getattr(self._st, name)

        @property
        def f_flag(self):
            return self._st.f_flag | os.ST_RDONLY

    def statvfs(path):
        st = real_statvfs(path)
        return ReadOnly(st) if os.path.realpath(path) == folder else st

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "statvfs", statvfs)


def test_report_on_read_only_folder_is_refused_before_any_work(tmp_path, clip, no_regions, monkeypatch, capsys):
    """The newcomer's run: the whole job ran, then exit 2 with 'rofs: cannot create the output', the video left
    without its report."""
    (tmp_path / "out").mkdir()
    (tmp_path / "rofs").mkdir()
    _read_only(monkeypatch, tmp_path / "rofs")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["anonymize", clip, "-o", "out/rr.mp4", "--report", "rofs/r.json", "--quiet",
                        "--regions-in", no_regions], capsys)
    assert code == cli.EXIT_USER_ERROR
    assert err == ["anonlab: error: --report rofs/r.json: cannot write there (read-only file system); choose a "
                   "folder you can write to"]
    assert list((tmp_path / "out").iterdir()) == []  # no work was done


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o555 folder anyway")
def test_report_in_a_folder_without_write_permission(tmp_path, clip, no_regions, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run(["anonymize", clip, "-o", tmp_path / "o.mp4", "--report", locked / "r.json", "--quiet",
                            "--regions-in", no_regions], capsys)
    finally:
        locked.chmod(0o755)
    assert code == cli.EXIT_USER_ERROR
    assert err[0].startswith(f"anonlab: error: --report {locked / 'r.json'}: cannot write there (permission denied)")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("option", ["-o", "--report", "--regions-out"])
def test_each_output_whose_folder_is_a_file_is_named(tmp_path, clip, no_regions, option, capsys):
    (tmp_path / "afile").write_text("not a folder")
    paths = {"-o": tmp_path / "o.mp4", "--report": tmp_path / "r.json", "--regions-out": tmp_path / "g.jsonl"}
    paths[option] = tmp_path / "afile" / paths[option].name
    argv = ["anonymize", clip, "--quiet", "--regions-in", no_regions]
    for opt, path in paths.items():
        argv += [opt, path]
    code, _, err = run(argv, capsys)
    assert code == cli.EXIT_USER_ERROR
    assert len(err) == 1
    assert err[0].startswith(f"anonlab: error: {option} {paths[option]}: cannot write there ({tmp_path / 'afile'} "
                             "is a file, not a folder)"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "clip.mp4", "none.jsonl"]


def test_read_only_output_folder_is_named_before_any_work(tmp_path, clip, no_regions, monkeypatch, capsys):
    (tmp_path / "rofs").mkdir()
    _read_only(monkeypatch, tmp_path / "rofs")
    code, _, err = run(["anonymize", clip, "-o", tmp_path / "rofs" / "o.mp4", "--quiet", "--regions-in", no_regions,
                        "--report", tmp_path / "r.json"], capsys)
    assert code == cli.EXIT_USER_ERROR
    assert err == [f"anonlab: error: -o {tmp_path / 'rofs' / 'o.mp4'}: cannot write there (read-only file system); "
                   "choose a folder you can write to"]
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("option,name,fragment", [
    ("--report", "clip.mp4", "is the input file"),      # an atomic replace would have put JSON over the input
    ("--regions-out", "clip.mp4", "is the input file"),
    ("--report", "o.mp4", "is also the -o output"),
    ("--regions-out", "r.json", "is also the --report file"),
    ("--regions-out", "r.md", "is also the --report file's Markdown twin"),
    ("--report", "sub", "is a folder"),
    ("--report", "r2.md", "use a .json name"),
])
def test_report_and_regions_paths_checked_first(tmp_path, clip, no_regions, option, name, fragment, capsys):
    (tmp_path / "sub").mkdir()
    before = sha256_file(clip)
    paths = {"-o": tmp_path / "o.mp4", "--report": tmp_path / "r.json", "--regions-out": tmp_path / "g.jsonl"}
    paths[option] = tmp_path / name
    argv = ["anonymize", clip, "--quiet", "--regions-in", no_regions]
    for opt, path in paths.items():
        argv += [opt, path]
    code, _, err = run(argv, capsys)
    assert code == cli.EXIT_USER_ERROR
    assert len(err) == 1 and err[0].startswith(f"anonlab: error: {option} {tmp_path / name}: "), err
    assert fragment in err[0], err
    assert sha256_file(clip) == before
    assert not (tmp_path / "o.mp4").exists()


def test_batch_output_folder_under_a_file_is_refused_first(tmp_path, clip, capsys):
    """A folder run's one output path, its folder, was already checked before work (the lock file is made
    first); kept here beside the single-file checks."""
    (tmp_path / "in").mkdir()
    shutil.copy(clip, tmp_path / "in" / "a.mp4")
    (tmp_path / "afile").write_text("")
    code, _, err = run(["batch", tmp_path / "in", tmp_path / "afile" / "out", "--quiet"], capsys)
    assert code == cli.EXIT_USER_ERROR
    assert len(err) == 1 and str(tmp_path / "afile" / "out") in err[0], err


# --- 2. the streams an output leaves out are said and counted --------------------------------------------------

def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg") or ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg binary to make the input")
    return exe


def _with_streams(tmp_path, clip, name, *args):
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nJane Doe, 12 Main Street\n")
    dst = tmp_path / name
    subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(clip), *[a.replace("SRT", str(srt)) for a in args],
                    str(dst)], check=True)
    return dst


SUBTITLE_NOTE = ("note: 1 subtitle stream dropped (subtitles can name people and are not checked: add them back "
                 "yourself after review)")


@pytest.mark.parametrize("name,args,counts", [
    ("sub.mp4", ["-f", "srt", "-i", "SRT", "-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text"],
     {"subtitle": 1}),
    ("sub.mkv", ["-f", "srt", "-i", "SRT", "-map", "0", "-map", "1", "-c", "copy", "-c:s", "ass"], {"subtitle": 1}),
    ("two.mkv", ["-f", "srt", "-i", "SRT", "-map", "0", "-map", "1", "-map", "1", "-c", "copy", "-c:s", "srt",
                 "-attach", "SRT", "-metadata:s:t", "mimetype=text/plain"], {"subtitle": 2, "attachment": 1}),
    ("tc.mov", ["-map", "0", "-c", "copy", "-timecode", "00:00:00:00"], {"data": 1}),
    ("angles.mkv", ["-map", "0:v", "-map", "0:v", "-map", "0:a", "-c", "copy"], {"extra_video": 1}),
])
def test_dropped_streams_are_announced_and_counted(tmp_path, clip, no_regions, name, args, counts, capsys):
    import av

    src = _with_streams(tmp_path, clip, name, *args)
    dst = tmp_path / f"o{src.suffix}"
    code, out, err = run(["anonymize", src, "-o", dst, "--quiet", "--report", tmp_path / "r.json",
                          "--regions-in", no_regions], capsys)
    assert code == 0, err
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]  # what the notes say was left out
    report = json.loads((tmp_path / "r.json").read_text())
    expected = {"subtitle": 0, "data": 0, "attachment": 0, "extra_video": 0, "other": 0, **counts}
    assert report["extra"]["dropped_streams"] == expected
    notes = [line for line in err if line.startswith("note: ")]
    assert len(notes) == len(counts) and len(err) == len(notes), err
    if name == "sub.mp4":
        assert notes == [SUBTITLE_NOTE]
    if name == "two.mkv":
        assert notes[0].startswith("note: 2 subtitle streams dropped (subtitles can name people")
        assert notes[1].startswith("note: 1 attachment dropped (")
    assert "Jane" not in (tmp_path / "r.json").read_text() + (tmp_path / "r.md").read_text() + "\n".join(err) + out


def test_nothing_dropped_says_nothing(tmp_path, clip, no_regions, capsys):
    code, _, err = run(["anonymize", clip, "-o", tmp_path / "o.mp4", "--quiet", "--report", tmp_path / "r.json",
                        "--regions-in", no_regions], capsys)
    assert code == 0 and err == []
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["extra"]["dropped_streams"].values()) == {0}


# --- 3. a killed writer's temporaries are cleared before the next run writes ------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return proc.pid
    pytest.skip("the finished process's id was taken again at once")


def _temps(folder, dead):
    """A killed writer's temporaries (``atomic_output``'s names) for the run's output, report and regions, and a
    live process's (this test's) for the output."""
    stale = [folder / f".o.{dead}-k1ll3d0a.part.mp4", folder / f".r.{dead}-k1ll3d0b.part.json",
             folder / f".r.{dead}-k1ll3d0c.part.md", folder / f".g.{dead}-k1ll3d0d.part.jsonl"]
    live = folder / f".o.{os.getpid()}-l1ve0000.part.mp4"
    for path in [*stale, live]:
        path.write_bytes(b"\0" * 36)
    return stale, live


def test_stale_temps_are_cleared_before_any_work(tmp_path, clip, no_regions, monkeypatch, capsys):
    """The newcomer's ``.p2.12460-...part.mov`` stayed when the next run stopped before its own write (here: at
    its first work); it is cleared when the run starts, a live writer's temporary kept."""
    import anonlab.pipeline as pipeline
    from anonlab.errors import AnonlabError

    stale, live = _temps(tmp_path, _dead_pid())
    seen = {}

    def describe(*a, **k):  # the first work of a run with --regions-in
        seen["left"] = [p.name for p in stale if p.exists()]
        raise AnonlabError("stopped before writing")

    monkeypatch.setattr(pipeline, "describe", describe)
    code, _, err = run(["anonymize", clip, "-o", tmp_path / "o.mp4", "--quiet", "--report", tmp_path / "r.json",
                        "--regions-out", tmp_path / "g.jsonl", "--regions-in", no_regions], capsys)
    assert code == cli.EXIT_USER_ERROR and err == ["anonlab: error: stopped before writing"], err
    assert seen["left"] == []
    assert not any(p.exists() for p in stale)
    assert live.exists()


def test_stale_temps_cleared_by_a_real_run(tmp_path, clip, no_regions):
    """End to end, as the newcomer ran it: a separate process whose output folder holds a dead writer's
    temporaries and one of a live process."""
    stale, live = _temps(tmp_path, _dead_pid())
    proc = subprocess.run([sys.executable, "-m", "anonlab", "anonymize", str(clip), "-o", str(tmp_path / "o.mp4"),
                           "--quiet", "--report", str(tmp_path / "r.json"), "--regions-out", str(tmp_path / "g.jsonl"),
                           "--regions-in", str(no_regions)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in stale)
    assert live.exists()


def test_batch_clears_the_temps_atomic_output_names(tmp_path):
    """The batch's sweep looked for ``.<stem>.XXXXXXXX.part<suffix>``, not the ``.<stem>.<pid>-XXXXXXXX`` names
    `atomic_output` writes, so it cleared none; it shares the single-file run's function now."""
    from anonlab.batch.tree import _remove_stale_temps

    dead = _dead_pid()
    stale = tmp_path / f".o.{dead}-k1ll3d00.part.mp4"
    live = tmp_path / f".o.{os.getpid()}-l1ve0000.part.mp4"
    older = tmp_path / ".o.abcd1234.part.mp4"  # an older release's name, without the pid: the batch's lock decides
    other = tmp_path / f".other.{dead}-k1ll3d00.part.mp4"
    for path in (stale, live, older, other):
        path.write_bytes(b"")
    assert _remove_stale_temps(tmp_path / "o.mp4") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_batch_report_counts_dropped_streams_too(tmp_path, clip):
    """`anonlab batch` wrote its reports through its own path: a subtitle stream left out was counted by
    `anonymize` and not by a batch."""
    from test_batch import anonymizer

    from anonlab.batch import run_batch

    folder = tmp_path / "in"
    folder.mkdir()
    _with_streams(folder, clip, "sub.mkv", "-f", "srt", "-i", "SRT", "-map", "0", "-map", "1", "-c", "copy",
                  "-c:s", "srt")
    (folder / "s.srt").unlink()
    out = tmp_path / "out"
    summary = run_batch(folder, out, process_file=anonymizer(), progress=False, echo=False)
    assert summary["done"] == 1, summary
    report = json.loads((out / "sub.mkv.report.json").read_text())
    assert report["extra"]["dropped_streams"]["subtitle"] == 1
