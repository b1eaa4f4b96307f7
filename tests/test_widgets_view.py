"""The workbench view without a browser: widgets are created on a dummy comm, handlers called directly."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipycanvas")
pytest.importorskip("ipywidgets")

from anonlab.case import Case  # noqa: E402
from anonlab.errors import AnonlabError  # noqa: E402
from anonlab.media import open_media  # noqa: E402
from anonlab.pipeline import Analysis  # noqa: E402
from anonlab.regions import Regions  # noqa: E402
from anonlab.settings import Settings  # noqa: E402
from anonlab.widgets import Workbench  # noqa: E402
from anonlab.widgets import launch  # noqa: E402


def moving_square(n, w=320, h=192):
    img = np.full((h, w, 3), 100, np.uint8)
    img[::12] = 80
    x, y = 30 + 5 * n, 50
    img[y : y + 40, x : x + 40] = 240
    img[y + 10 : y + 30, x + 10 : x + 30] = (0, 0, 200)
    return img


@pytest.fixture(scope="module")
def clip_src(tmp_path_factory):
    from mediagen import make_clip

    return make_clip(tmp_path_factory.mktemp("view") / "clip.mp4", n_frames=30, width=320, height=192,
                     frame_fn=moving_square)


@pytest.fixture
def clip(clip_src, tmp_path):
    return Path(shutil.copy(clip_src, tmp_path / "clip.mp4"))


@pytest.fixture
def wb(clip):
    w = Workbench(clip, proxy=False)
    yield w
    w.close()


def drag(wb, a, b):
    wb._on_mouse_down(*a)
    wb._on_mouse_move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    wb._on_mouse_move(*b)
    wb._on_mouse_up(*b)


def test_opens_with_a_new_case_beside_the_input(wb, clip):
    assert wb.case.path == clip.with_name("clip.case.json")
    assert (wb.model.viewport.canvas_w, wb.model.viewport.canvas_h) == (320, 192)
    assert wb.drawn["picture"].shape == (192, 320, 3) and wb.drawn["frame"] == 0
    assert wb.slider.max == 29 and "0 / 29" in wb.frame_label.value
    assert "not analysed yet" in wb.status.value
    assert wb.export_path.value.endswith("clip_anonymized.mp4")


def test_slider_buttons_and_keys_move_the_frame(wb):
    wb.slider.value = 12
    assert wb.model.frame == 12 and wb.drawn["frame"] == 12
    wb.step_buttons[3].click()  # +10
    assert wb.model.frame == 22 and wb.slider.value == 22
    wb._on_key_event({"type": "keydown", "key": "ArrowLeft", "shiftKey": True})
    assert wb.model.frame == 12 and wb.slider.value == 12
    wb._on_key_event({"type": "keyup", "key": "ArrowLeft"})
    assert wb.model.frame == 12
    wb.model.set_flagged([20])
    wb.next_flag_button.click()
    assert wb.model.frame == 20 and "⚑" in wb.frame_label.value
    wb._on_key_event({"type": "keydown", "key": " "})
    assert wb.play.playing


def test_drawing_on_the_canvas_edits_and_autosaves(wb):
    drag(wb, (30, 50), (70, 90))
    assert len(wb.case.tracks) == 1
    box = wb.drawn["boxes"][0]
    assert box["canvas"] == pytest.approx((30, 50, 70, 90)) and box["selected"]
    saved = json.loads(wb.case.path.read_text())
    assert saved["edit_count"] == 1 and saved["edits"][0]["op"] == "add_track"
    assert wb.drawn["drag"] is None
    assert "1 edit(s)" in wb.status.value
    assert len(wb.track_list.children) == 1
    assert wb.track_list.children[0].children[0].value[:2] == b"\xff\xd8"  # a JPEG thumbnail
    wb.undo_button.click()
    assert not wb.case.tracks and wb.drawn["boxes"] == []
    assert json.loads(wb.case.path.read_text())["edit_count"] == 0
    wb.redo_button.click()
    assert len(wb.case.tracks) == 1


def test_drag_preview_on_the_interaction_layer(wb):
    wb._on_mouse_down(10, 10)
    wb._on_mouse_move(60, 70)
    assert wb.drawn["drag"] == pytest.approx((10, 10, 60, 70))
    wb._on_mouse_out(200, 200)
    assert wb.drawn["drag"] is None and not wb.case.tracks


def test_masked_preview_toggle(wb):
    drag(wb, (30, 50), (70, 90))
    plain = wb.drawn["picture"].copy()
    wb.masked_toggle.value = True
    assert wb.drawn["masked"] and wb.model.show_masked
    masked = wb.drawn["picture"]
    assert np.abs(masked[55:85, 35:65].astype(int) - plain[55:85, 35:65]).mean() > 10
    assert np.array_equal(masked[:, 200:], plain[:, 200:])
    wb._on_key_event({"type": "keydown", "key": "m"})
    assert not wb.drawn["masked"]


def test_selected_track_panel_follow_exclude_and_track_list(wb):
    drag(wb, (30, 50), (70, 90))
    t = wb.model.selected
    wb.follow_n.value = 10
    wb.follow_fwd.click()
    assert wb.case.tracks[t].span() == (0, 10)
    wb.reason.value = ""
    wb.exclude_button.click()
    assert "reason" in wb.message.value and wb.case.tracks[t].excluded is None
    wb.reason.value = "consent on file"
    wb.case.actor = "Ann"
    wb.exclude_button.click()
    assert wb.case.tracks[t].excluded == "consent on file"
    assert wb.drawn["boxes"][0]["excluded"] and "unmasked" in wb.track_list.children[0].children[2].value
    wb.include_button.click()
    wb.sel_label.value = "plate"
    assert wb.case.tracks[t].label == 1
    wb.model.select(None)
    wb.delete_box_button.click()
    assert "select a box first" in wb.message.value
    wb.slider.value = 20
    wb.track_list.children[0].children[1].click()  # the row's select button: jumps to the track
    assert wb.model.selected == t and wb.model.frame == 0
    wb.split_button.click()  # at frame 0: nothing before it
    assert "both sides" in wb.message.value
    wb.slider.value = 5
    wb.split_button.click()
    assert len(wb.case.tracks) == 2
    other = max(wb.case.tracks)
    wb.merge_with.value = other
    wb.merge_button.click()
    assert list(wb.case.tracks) == [t]
    wb.track_list.children[0].children[3].value = True  # hide
    assert t in wb.model.hidden and wb.drawn["boxes"] == []


def test_reopening_loads_the_case(clip):
    a = Workbench(clip, proxy=False)
    drag(a, (30, 50), (70, 90))
    a.close()
    b = Workbench(clip, proxy=False)
    assert b.case.edit_count == 1 and len(b.drawn["boxes"]) == 1
    b.close()
    c = Workbench(clip.with_name("clip.case.json"), proxy=False)
    assert c.case.edit_count == 1
    c.close()
    with open(clip, "ab") as f:
        f.write(b"\0")
    with pytest.raises(AnonlabError, match="sha256"):
        Workbench(clip, proxy=False)


def test_export_respects_edits_exactly(wb, tmp_path):
    drag(wb, (30, 50), (70, 90))
    wb.export_path.value = str(tmp_path / "out.mp4")
    assert wb.export() is None and "not analysed" in wb.message.value  # issue 14 item 1
    wb.case.allow_without_analysis("manual_only", "Ann", "a synthetic clip, checked by eye")
    assert wb.export() is None and "export failed" in wb.message.value  # the review queue blocks it
    assert not (tmp_path / "out.mp4").exists()
    session = wb.review.session
    assert session.pending and wb.flagged_frames
    while session.next_pending() is not None:  # the analyst looks at every item and decides
        wb.review._decide("accepted")
    assert not session.pending and wb.flagged_frames == []
    info = wb.export()
    assert info["frames"] == 30 and info["case"]["regions"] == 1 and "exported out.mp4" in wb.message.value
    with open_media(tmp_path / "out.mp4") as out, open_media(wb.input_path) as src:
        a, b = out.get(0), src.get(0)
        assert np.abs(a[55:85, 35:65].astype(int) - b[55:85, 35:65]).mean() > 10  # masked
        assert np.abs(a[:, 150:].astype(int) - b[:, 150:]).mean() < 3  # the rest untouched
        assert np.abs(out.get(1).astype(int) - src.get(1)).mean() < 3  # one-frame track: frame 1 untouched
    wb.export_button.click()  # exists, overwrite off
    assert "exists" in wb.message.value
    wb.export_gate = lambda case: (_ for _ in ()).throw(AnonlabError("3 review items open"))
    wb.overwrite.value = True
    wb.export_button.click()
    assert "3 review items open" in wb.message.value and not wb.export_button.disabled


def test_analyse_button_fills_the_case(wb, monkeypatch):
    import anonlab.pipeline

    drag(wb, (200, 20), (240, 60))  # an analyst box before the analysis: kept

    def fake_analyse(path, settings=None, progress=True, **kw):
        r = Regions(xyxy=[[30 + 5 * n, 50, 70 + 5 * n, 90] for n in range(30)], score=np.full(30, 0.8),
                    track_id=np.full(30, 5), frame=np.arange(30))
        return Analysis(path=Path(path), kind="video", n_frames=30, width=320, height=192, fps=25.0,
                        times=np.arange(30) / 25, regions=r, settings=settings or Settings())

    monkeypatch.setattr(anonlab.pipeline, "analyse", fake_analyse)
    wb.analyse_button.click()
    assert wb.case.analysed and len(wb.case.tracks) == 2
    assert "analysis done: 2 track(s)" in wb.message.value and "not analysed" not in wb.status.value
    assert len(wb.track_list.children) == 2 and len(wb.drawn["boxes"]) == 2
    assert json.loads(wb.case.path.read_text())["analysis"]["tracks"][0]["sources"] == "d" * 30


def test_photo(tmp_path):
    import cv2

    p = tmp_path / "p.jpg"
    cv2.imwrite(str(p), moving_square(0))
    w = Workbench(p)
    assert w.case.input.kind == "photo" and w.slider.max == 0
    drag(w, (30, 50), (70, 90))
    w.export_path.value = str(tmp_path / "p_out.jpg")
    w.review.session.override("nothing to review in a test photo", "Tester")  # recorded, then allowed
    w.case.allow_without_analysis("manual_only", "Tester", "a test picture, checked by eye")
    assert w.export()["frames"] == 1
    w.close()


def test_send_modes_and_proxy(clip):
    w = Workbench(clip, send="image")
    w.frames.wait_proxy(30)
    w.frames.clear()
    for n in range(1, 10):
        w.slider.value = n
    assert w._jpeg_widget.value[:2] == b"\xff\xd8"
    assert w.frames.stats["proxy"] >= 9
    assert len(w.timings["send_ms"]) >= 10
    w.close()


# --- launch (command lines; the servers themselves run in test_browser.py) ---------------------------------
def test_launch_commands_bind_localhost_and_stay_offline(tmp_path):
    nb = launch.workbench_notebook()
    assert nb.name == "workbench.ipynb" and nb.exists()
    app = launch.app_command(nb, 8866, open_browser=False)
    assert app[:3] == [sys.executable, "-m", "voila"] and "--Voila.ip=127.0.0.1" in app
    assert "--Voila.open_browser=False" in app
    lab = launch.lab_command(nb, 8888, open_browser=False, token="t")
    assert "--ServerApp.ip=127.0.0.1" in lab and "--LabApp.news_url=None" in lab
    assert "--LabApp.extension_manager=readonly" in lab and "--IdentityProvider.token=t" in lab
    fallback = launch._fallback_notebook()
    assert json.loads(fallback.read_text())["cells"][1]["source"].count("ANONLAB_MEDIA") == 1
    shutil.rmtree(fallback.parent)


def test_run_app_passes_the_path(monkeypatch, tmp_path, clip):
    seen = {}
    monkeypatch.setattr(launch, "_run", lambda cmd, env: seen.update(cmd=cmd, env=env) or 0)
    assert launch.run_app(clip, port=9999, open_browser=False) == 0
    assert seen["env"][launch.MEDIA_ENV] == str(clip.resolve()) and "--port=9999" in seen["cmd"]
    with pytest.raises(AnonlabError, match="no such file"):
        launch.run_app(tmp_path / "missing.mp4")
    with pytest.raises(AnonlabError, match="folder"):
        launch.run_app(tmp_path)
    assert launch.run_lab(port=9998, open_browser=False) == 0
    assert "--ServerApp.port=9998" in seen["cmd"]


def test_slider_waits_for_release_until_the_proxy_is_ready(clip):
    w = Workbench(clip)
    assert w.slider.continuous_update is False or w.frames.proxy_ready()
    w.frames.wait_proxy(30)
    w.slider.value = 3
    assert w.slider.continuous_update is True
    panel = __import__("ipywidgets").HTML("queue")
    w.add_panel(panel)
    assert w.side.children[-1] is panel
    w.flagged_frames = [9, 4]
    assert w.flagged_frames == [4, 9]
    w.next_flag_button.click()
    assert w.model.frame == 4
    w.close()


def test_folder_of_photos(tmp_path):
    import cv2

    from anonlab.widgets.folder import FolderWorkbench

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"p{i}.jpg"), moving_square(i))
    (tmp_path / "notes.txt").write_text("not a photo")
    fw = Workbench(tmp_path)
    assert isinstance(fw, FolderWorkbench) and [p.name for p in fw.photos] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    fw.current.model.draw_box((10, 10, 40, 40))
    assert (tmp_path / "p0.case.json").exists()  # each photo keeps its own case file
    fw.next_button.click()
    assert fw.chooser.value == 1 and fw.current.case.input.name == "p1.jpg" and not fw.current.case.tracks
    fw.chooser.value = 0
    assert len(fw.current.case.tracks) == 1  # back on the first photo, its edit is still there
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnonlabError, match="no photos"):
        Workbench(empty)
