"""The CLI answers bad input with one clear line and a non-zero exit, never a traceback."""

import subprocess
import sys

import pytest

from anonlab.cli import build_parser, settings_from_args
from anonlab.errors import AnonlabError


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "anonlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in err[0], err[0]


def test_missing_input(tmp_path):
    assert_one_line_error(run("anonymize", tmp_path / "nope.mp4", "-o", tmp_path / "o.mp4"), "nope.mp4")


@pytest.mark.parametrize("content, name, fragment", [
    (b"", "empty.mp4", "empty"),
    (b"hello, I am a text file\n" * 20, "text.mp4", "not a video or photo"),
])
def test_non_media_input(tmp_path, content, name, fragment):
    src = tmp_path / name
    src.write_bytes(content)
    proc = run("anonymize", src, "-o", tmp_path / "o.mp4")
    assert_one_line_error(proc, name, fragment)
    assert not (tmp_path / "o.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp or partial files


def test_output_equal_to_input_refused(tmp_path, clips):
    src = tmp_path / "in.mp4"
    src.write_bytes(clips["plain"].read_bytes())
    before = src.read_bytes()
    assert_one_line_error(run("anonymize", src, "-o", src, "--overwrite"), "overwrite the input")
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path, clips):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"keep me")
    assert_one_line_error(run("anonymize", clips["plain"], "-o", out), "--overwrite")
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("flag, value, fragment", [
    ("--what", "faces,cats", "--what"),
    ("--thresh", "1.5", "--thresh"),
    ("--crf", "99", "--crf"),
])
def test_bad_settings(tmp_path, clips, flag, value, fragment):
    assert_one_line_error(run("anonymize", clips["plain"], "-o", tmp_path / "o.mp4", flag, value), fragment)


def test_settings_from_args_plural_names():
    args = build_parser().parse_args(["anonymize", "x.mp4", "--what", "faces", "--mask", "solid", "--detect-every", "2"])
    s = settings_from_args(args)
    assert s.what == ("face",)
    assert s.mask == "solid"
    assert s.detect_every == 2
    with pytest.raises(AnonlabError, match="--what must name"):
        settings_from_args(build_parser().parse_args(["anonymize", "x", "--what", "people"]))


def test_version_and_help():
    proc = run("--version")
    assert proc.returncode == 0
    assert "anonlab" in proc.stdout
