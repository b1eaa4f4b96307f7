"""Audio ranges in the case file (the ``audio`` edit), the editing model, the export and the workbench strip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from mediagen import make_clip

from anonlab.case import EDIT_OPS, Case, case_report, render_case
from anonlab.errors import AnonlabError
from anonlab.widgets.editor import EditorModel
from anonlab.widgets.waveform import MODE_COLORS, draw_strip, waveform_peaks


def blank(n_frames=50, fps=25.0) -> Case:
    return Case.blank("clip.mp4", n_frames=n_frames, width=64, height=48, fps=fps)


def half_loud(t):
    """Silence for the first second, a 0.5-peak sine after it: (1, n)."""
    return (np.where(t >= 1.0, 0.5, 0.0) * np.sin(2 * np.pi * 300 * t))[None]


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("case-audio") / "talk.mp4", n_frames=50, audio=True, audio_fn=half_loud)


def decode_audio(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray() for f in c.decode(c.streams.audio[0])], axis=1)


# --- the case ----------------------------------------------------------------------------------------------
def test_audio_is_an_edit_operation():
    assert "audio" in EDIT_OPS


def test_audio_edits_undo_and_redo():
    case = blank()
    assert case.audio == ("keep", ())
    op = case.set_audio(ranges=[(0.5, 1.0), (0.8, 1.2)])
    assert op["op"] == "audio"
    assert op["ranges"] == [[0.5, 1.2]]
    assert case.audio == ("keep", ((0.5, 1.2),))
    case.set_audio(mode="beep")
    assert case.audio == ("beep", ((0.5, 1.2),))
    assert case.edit_count == 2
    assert case.undo()["op"] == "audio"
    assert case.audio == ("keep", ((0.5, 1.2),))
    assert case.undo()["op"] == "audio"
    assert case.audio == ("keep", ())
    case.redo()
    case.redo()
    assert case.audio == ("beep", ((0.5, 1.2),))
    assert case.export_settings().audio == "beep"
    assert case.export_settings().audio_ranges == ((0.5, 1.2),)


def test_ranges_with_keep_are_kept_but_not_exported():
    case = blank()
    case.set_audio(ranges=[(0.5, 1.0)])
    assert case.export_settings() == case.settings  # keep: nothing to redact, the settings as they were


@pytest.mark.parametrize("mode, ranges, fragment", [
    ("bleep", [], "unknown mode"),
    ("mute", [(1.0, 0.5)], "the start must come before the stop"),
    ("mute", [(1.0, 5.0)], "ends after the end of the media"),  # 50 frames at 25 fps: 2 s
])
def test_bad_audio_edits_leave_the_case_unchanged(mode, ranges, fragment):
    case = blank()
    with pytest.raises(AnonlabError, match=fragment if mode != "bleep" else "mode"):
        case.set_audio(mode=mode, ranges=ranges)
    assert case.edit_count == 0
    assert case.audio == ("keep", ())


def test_audio_edits_live_beside_track_edits():
    case = blank()
    t = case.add_track("face", {0: (1, 1, 10, 10), 10: (5, 5, 15, 15)})
    case.set_audio(mode="mute", ranges=[(0.2, 0.4)])
    assert case.next_track_id() == t + 1
    assert case.edited_tracks() == {t}
    assert case.review_edits() == [t]
    case.delete_track(t)
    assert case.audio == ("mute", ((0.2, 0.4),))
    assert case.undo()["op"] == "delete_track"


def test_case_file_round_trip_and_old_files(tmp_path):
    case = blank()
    case.add_track("face", {0: (1, 1, 10, 10)})
    old = tmp_path / "old.case.json"
    case.save(old)  # a case without any audio edit: what older anonlab wrote
    assert Case.load(old).audio == ("keep", ())
    case.set_audio(mode="voice", ranges=[(0.1, 0.3), (1.0, 1.5)])
    new = tmp_path / "new.case.json"
    case.save(new)
    loaded = Case.load(new)
    assert loaded.audio == ("voice", ((0.1, 0.3), (1.0, 1.5)))
    assert loaded.edit_count == 2
    assert loaded.undo()["op"] == "audio"
    assert loaded.audio == ("keep", ())


@pytest.mark.parametrize("op, field", [
    ({"op": "audio", "mode": "mute", "ranges": [[2, 1]]}, "edits[0].ranges"),
    ({"op": "audio", "mode": "loud", "ranges": []}, "edits[0].mode"),
    ({"op": "audio", "mode": "mute", "ranges": [[1]]}, "edits[0].ranges[0]"),
    ({"op": "audio", "mode": "mute"}, "edits[0]"),
    ({"op": "audio", "mode": "mute", "ranges": [], "track": 3}, "edits[0]"),
])
def test_a_damaged_audio_edit_is_refused_by_name(tmp_path, op, field):
    case = blank()
    path = tmp_path / "c.case.json"
    case.save(path)
    data = json.loads(path.read_text())
    data["edits"], data["edit_count"] = [op], 1
    path.write_text(json.dumps(data))
    with pytest.raises(AnonlabError, match=field.replace("[", r"\[").replace("]", r"\]")) as exc:
        Case.load(path)
    assert "\n" not in str(exc.value)


def test_render_case_redacts_the_audio_and_reports_it(tmp_path, talk):
    src = Path(shutil.copy(talk, tmp_path / "talk.mp4"))
    case = Case.new(src)
    case.actor = "A. Analyst"
    case.allow_without_analysis("manual_only", reason="checked every frame; nothing to mask")
    case.set_audio(mode="mute", ranges=[(1.2, 1.6)])
    out = tmp_path / "o.mp4"
    info = render_case(case, out, progress=False)
    assert info["audio"]["mode"] == "mute"
    assert abs(info["audio"]["seconds"] - 0.4) < 1e-3
    x = decode_audio(out)[0]
    assert np.sqrt(np.mean(x[int(1.25 * 48000):int(1.55 * 48000)] ** 2)) < 0.01
    assert np.sqrt(np.mean(x[int(1.65 * 48000):int(1.95 * 48000)] ** 2)) > 0.2
    rep = case_report(case, out, info)
    assert rep["extra"]["audio"]["mode"] == "mute"
    assert rep["settings"]["audio"] == "mute"
    assert rep["settings"]["audio_ranges"] == "1 range(s), 0.40 s"


# --- the editing model -------------------------------------------------------------------------------------
def test_editor_marks_and_adds_ranges():
    m = EditorModel(blank(), None)
    with pytest.raises(AnonlabError, match="mark the range first"):
        m.add_audio_range()
    m.seek(12)
    assert m.mark_audio_in() == pytest.approx(0.48)
    m.seek(24)
    assert m.mark_audio_out() == pytest.approx(1.0)  # the end of frame 24
    assert m.add_audio_range() == pytest.approx((0.48, 1.0))
    assert m.audio == ("keep", ((0.48, 1.0),))
    assert m.audio_in is None
    assert m.audio_out is None
    assert "choose mute, beep or voice" in m.messages["audio"]
    m.set_audio_mode("beep")
    assert m.audio[0] == "beep"
    assert "beep over 1 range(s)" in m.messages["audio"]
    m.add_audio_range(1.5, 2.0)
    assert np.allclose(m.audio[1], ((0.48, 1.0), (1.5, 2.0)))
    m.seek(20)
    assert m.remove_audio_range() == pytest.approx((0.48, 1.0))
    assert m.audio == ("beep", ((1.5, 2.0),))
    with pytest.raises(AnonlabError, match="no audio range at this frame"):
        m.remove_audio_range()
    m.undo()
    assert np.allclose(m.audio[1], ((0.48, 1.0), (1.5, 2.0)))
    assert m.case.edit_count == 3


def test_editor_marks_reset_when_crossed():
    m = EditorModel(blank(), None)
    m.seek(20)
    m.mark_audio_out()
    m.seek(30)
    m.mark_audio_in()  # after the out mark: the out mark goes
    assert m.audio_out is None
    assert m.audio_in == pytest.approx(1.2)
    m.set_audio_mode("mute")
    assert "whole track" in m.messages["audio"]
    with pytest.raises(AnonlabError, match="the start must come before the stop"):
        m.add_audio_range(1.5, 1.0)


# --- the strip ---------------------------------------------------------------------------------------------
def test_waveform_peaks_follow_the_sound(talk):
    peaks = waveform_peaks(talk, 100, 2.0)
    assert peaks.shape == (2, 100)
    assert peaks.dtype == np.float32
    assert np.abs(peaks[:, 2:48]).max() < 0.02  # the silent first second
    assert peaks[1, 52:98].min() > 0.4
    assert peaks[0, 52:98].max() < -0.4  # the loud second one
    assert waveform_peaks(make_clip(talk.with_name("silent.mp4"), n_frames=5), 10, 0.2) is None


def test_draw_strip_shows_ranges_marks_and_now():
    peaks = np.zeros((2, 200), np.float32)
    img = draw_strip(peaks, 200, 2.0, ranges=[(0.5, 1.0)], mode="mute", marks=(1.5, None), now=0.2, height=20)
    assert img.shape == (20, 200, 3)
    assert tuple(img[0, 75]) == MODE_COLORS["mute"]
    assert tuple(img[0, 30]) != MODE_COLORS["mute"]
    assert tuple(img[5, 20]) == (0, 0, 0)  # now
    assert tuple(img[5, 150]) == (0, 140, 70)  # the in mark
    whole = draw_strip(None, 200, 2.0, mode="voice")
    assert all(tuple(whole[0, x]) == MODE_COLORS["voice"] for x in (0, 100, 199))


# --- the view ----------------------------------------------------------------------------------------------
def test_workbench_strip_and_audio_box(tmp_path, talk):
    pytest.importorskip("ipycanvas")
    from anonlab.widgets import Workbench

    src = Path(shutil.copy(talk, tmp_path / "talk.mp4"))
    wb = Workbench(src, proxy=False)
    try:
        assert wb.has_audio
        assert wb.audio_box in wb.side.children
        wb.waveform_thread.join(30)
        wb.poll()
        assert wb.drawn["waveform_peaks"]
        assert wb.drawn["waveform"].shape[1] == wb.model.viewport.canvas_w
        wb.model.seek(10)
        wb.audio_in_button.click()
        wb.model.seek(20)
        wb.audio_out_button.click()
        assert "marked in 0:00.40 · out 0:00.84" in wb.audio_info.value
        wb.audio_add_button.click()
        wb.audio_mode.value = "voice"
        assert wb.case.audio == ("voice", ((0.4, 0.84),))
        assert "1 range(s), 0.44 s" in wb.audio_info.value
        x = int(0.6 / wb.model.duration * wb.model.viewport.canvas_w)
        assert tuple(wb.drawn["waveform"][0, x]) == MODE_COLORS["voice"]
        wb.model.seek(40)
        wb.audio_remove_button.click()  # nothing here: said beside the audio controls, nothing changes
        assert "no audio range at this frame" in wb.audio_msg.value
        assert wb.case.edit_count == 2
        wb.undo_button.click()
        assert wb.audio_mode.value == "keep"
    finally:
        wb.close()


def test_workbench_without_sound_has_no_strip(tmp_path):
    pytest.importorskip("ipycanvas")
    from anonlab.widgets import Workbench

    src = make_clip(tmp_path / "silent.mp4", n_frames=10)
    wb = Workbench(src, proxy=False)
    try:
        assert not wb.has_audio
        assert wb.audio_strip.layout.display == "none"
        assert wb.audio_box not in wb.side.children
    finally:
        wb.close()
