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


def test_output_folder_for_one_file_writes_into_it(tmp_path, clips):
    """A newcomer wrote `-o out/` for one clip: an error about extensions, and for an existing folder "pass
    --overwrite to replace it" (a folder). A folder now means "into it", named as the default output is."""
    src = tmp_path / "in.mp4"
    src.write_bytes(clips["plain"].read_bytes())
    out = tmp_path / "out"
    assert_one_line_error(run("anonymize", src, "-o", f"{out}/", "--quiet"), "no such folder")
    out.mkdir()
    proc = run("anonymize", src, "-o", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == ["in_anonymized.mp4"]


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


# --- named speed profiles (issue 18) --------------------------------------------------------------------------
from anonlab.settings import SPEED_PROFILES, Settings, speed_of, speed_settings  # noqa: E402


def parsed(*argv):
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_thorough_is_the_default_and_the_defaults():
    assert speed_of(Settings()) == "thorough"
    assert speed_of(parsed("anonymize", "x.mp4")) == "thorough"
    assert parsed("anonymize", "x.mp4") == Settings()
    # settings that leave the new speed fields alone keep the digest batch ledgers recorded before them
    assert Settings().digest == "e54ba64f4f33aa00"
    assert Settings(thorough_per_second=1.0).digest != Settings().digest


@pytest.mark.parametrize("command", ["anonymize", "batch"])
@pytest.mark.parametrize("profile", sorted(SPEED_PROFILES))
def test_speed_sets_the_profiles_values(command, profile):
    args = ["anonymize", "x.mp4"] if command == "anonymize" else ["batch", "in", "out"]
    s = parsed(*args, "--speed", profile)
    assert {k: getattr(s, k) for k in SPEED_PROFILES[profile]} == SPEED_PROFILES[profile]
    assert speed_of(s) == profile
    assert s.what == ("face", "plate")
    assert s.mask == "blur"  # what is masked, and how, stays


def test_explicit_flags_override_the_profile():
    s = parsed("anonymize", "x.mp4", "--speed", "fast", "--detect-every", "2", "--no-int8", "--max-upscale", "1.5")
    assert (s.detect_every, s.int8, s.max_upscale) == (2, False, 1.5)
    assert s.thorough_per_second == SPEED_PROFILES["fast"]["thorough_per_second"]
    assert speed_of(s) is None
    s = parsed("anonymize", "x.mp4", "--int8", "--thorough-per-second", "4")
    assert (s.detect_every, s.int8, s.thorough_per_second) == (3, True, 4.0)
    assert speed_settings("balanced", base=Settings(what=("plate",)), crf=20).what == ("plate",)
    assert not parsed("anonymize", "x.mp4", "--speed", "fast").second_face_detector
    assert parsed("anonymize", "x.mp4", "--speed", "fast", "--second-face-detector").second_face_detector
    assert not parsed("anonymize", "x.mp4", "--no-second-face-detector").second_face_detector


def test_unknown_speed_is_refused():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["anonymize", "x.mp4", "--speed", "ludicrous"])
    assert exc.value.code == 2  # argparse's usage error
    with pytest.raises(AnonlabError, match="--speed must be one of"):
        speed_settings("ludicrous")
    with pytest.raises(AnonlabError, match="--thorough-per-second"):
        Settings(thorough_per_second=0)


def test_help_shows_each_profiles_figures_from_the_data_file(tmp_path, monkeypatch, capsys):
    import json

    import anonlab.settings as settings_module
    from anonlab.cli import main

    rows = {name: {"recall": {"all": 0.8 + i / 1000, "face": 0.7, "plate": 0.9}, "fps": {"720p": 5 + i, "1080p": 2.5},
                   "x_realtime": {"720p": (5 + i) / 25, "1080p": 0.1}, "photo_recall": {"face": 0.91 + i / 1000,
                                                                                       "plate": 0.97}}
            for i, name in enumerate(SPEED_PROFILES)}
    data = tmp_path / "speed_profiles.json"
    data.write_text(json.dumps({"profiles": rows, "measured": "on a test machine"}))
    monkeypatch.setattr(settings_module, "SPEED_FIGURES", data)
    with pytest.raises(SystemExit, match="^0$"):
        main(["anonymize", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (and breaks them at hyphens)
    for i, name in enumerate(SPEED_PROFILES):
        assert f"{name}:detectevery{SPEED_PROFILES[name]['detect_every']}" in text
        assert f"per-framerecall{0.8 + i / 1000:.3f}" in text
        assert f"720p{5 + i:.1f}fps" in text
        assert f"evalphotos:faces{0.91 + i / 1000:.3f},plates0.970" in text
    assert "onatestmachine" in text
    data.unlink()  # no file: the help says so rather than guessing
    with pytest.raises(SystemExit, match="^0$"):
        main(["anonymize", "--help"])
    assert "notmeasuredyet" in "".join(capsys.readouterr().out.split())


def test_the_profiles_upscale_reaches_the_face_models():
    from anonlab.detect.build import face_detectors

    assert [d.max_scale for d in face_detectors(speed_settings("thorough"))] == [2.0, 2.0]
    assert [d.max_scale for d in face_detectors(Settings(max_upscale=1.0))] == [1.0, 1.0]


def test_the_shipped_figures_are_of_the_profiles_as_they_are():
    """anonlab/speed_profiles.json is the benchmark's output for this very table (re-run it after a change)."""
    from anonlab.settings import speed_figures, speed_summary

    figures = speed_figures()
    assert set(figures["profiles"]) == set(SPEED_PROFILES)
    for name, row in figures["profiles"].items():
        assert row["settings"] == SPEED_PROFILES[name], name
        assert {"720p", "1080p"} <= set(row["fps"])
        assert 0 < row["recall"]["all"] <= 1
        assert "not measured" not in speed_summary(name, figures)
    changed = {"profiles": {"fast": {**figures["profiles"]["fast"], "settings": {"detect_every": 2}}}}
    assert speed_summary("fast", changed).endswith("not measured with these settings yet")


def test_progress_in_a_log_is_plain_lines(tmp_path):
    """Where stderr is a file or a pipe (cron, ``2> log``) progress is a line per quarter, not a bar's redraws."""
    proc = run("anonymize", "sample_media/street.mp4", "-o", tmp_path / "s.mp4", "--speed", "fast")
    assert proc.returncode == 0 and "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert "render s.mp4: 100/100 frames (100 %)" in proc.stderr.splitlines()
    import io

    from anonlab import progress

    log = io.StringIO()
    old, progress.sys.stderr = progress.sys.stderr, log
    try:
        with progress.progress_bar(100, "render o.mp4") as bar:
            for _ in range(100):
                bar.update(1)
    finally:
        progress.sys.stderr = old
    assert log.getvalue().splitlines() == [f"render o.mp4: {n}/100 frames ({n} %)" for n in (25, 50, 75, 100)]
