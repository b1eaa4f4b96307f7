"""The workbench view without a browser: widgets are created on a dummy comm, handlers called directly."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipycanvas")
pytest.importorskip("ipywidgets")

from anonlab.errors import AnonlabError  # noqa: E402
from anonlab.media import open_media  # noqa: E402
from anonlab.pipeline import Analysis  # noqa: E402
from anonlab.regions import Regions  # noqa: E402
from anonlab.report.audit import earlier_export  # noqa: E402
from anonlab.settings import Settings  # noqa: E402
from anonlab.widgets import Workbench  # noqa: E402
from anonlab.widgets import launch  # noqa: E402
from anonlab.widgets.layout import earlier_export_html  # noqa: E402


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


def fake_analysis(path, settings=None, n=30, tracks=((5, 0, 30),)):
    rows = []
    for tid, a, b in tracks:
        rows.append(Regions(xyxy=[[30 + 5 * k, 50, 70 + 5 * k, 90] for k in range(a, b)], score=np.full(b - a, 0.8),
                            track_id=np.full(b - a, tid), frame=np.arange(a, b)))
    return Analysis(path=Path(path), kind="video", n_frames=n, width=320, height=192, fps=25.0,
                    times=np.arange(n) / 25, regions=Regions.merge(rows), settings=settings or Settings())


def fake_analyse(path, settings=None, progress=True, on_frame=None, **kw):
    class Media:
        n_frames = 30

    class Analyser:
        def __init__(self):
            self.n = 0

        def settled(self):
            return max(0, self.n - 5)

        def settled_rows(self, a, b, n):
            r = fake_analysis(path).regions
            return r[(r.frame >= a) & (r.frame < b)]

    an = Analyser()
    for k in range(30):
        an.n = k + 1
        if on_frame is not None:
            on_frame(an, Media())
    return fake_analysis(path, settings)


def test_opens_with_a_new_case_beside_the_input(wb, clip):
    assert wb.case.path == clip.with_name("clip.case.json")
    # a small picture is enlarged to fill the view (item 17): 320x192 at 2x
    assert (wb.model.viewport.canvas_w, wb.model.viewport.canvas_h) == (640, 384)
    assert wb.drawn["picture"].shape == (384, 640, 3)
    assert wb.drawn["frame"] == 0
    assert wb.slider.max == 29
    assert "0 / 29" in wb.frame_label.value
    assert "not analysed yet" in wb.status.value
    assert wb.export_path.value.endswith("clip_anonymized.mp4")
    assert wb.model.show_masked
    assert wb.masked_toggle.value  # item 16: masked preview on by default


def test_slider_buttons_and_keys_move_the_frame(wb):
    wb.slider.value = 12
    assert wb.model.frame == 12
    assert wb.drawn["frame"] == 12
    wb.step_buttons[3].click()  # +10
    assert wb.model.frame == 22
    assert wb.slider.value == 22
    wb._on_key_event({"type": "keydown", "key": "ArrowLeft", "shiftKey": True})
    assert wb.model.frame == 12
    assert wb.slider.value == 12
    wb._on_key_event({"type": "keyup", "key": "ArrowLeft"})
    assert wb.model.frame == 12
    wb.model.set_flagged([5, 20])
    wb.next_flag_button.click()
    assert wb.model.frame == 20
    assert "⚑" in wb.frame_label.value
    wb.next_flag_button.click()
    assert "no flagged frame after" in wb.player_msg.value
    assert "err" in wb.player_msg.value  # beside the player
    wb.prev_flag_button.click()
    assert wb.player_msg.value == ""  # cleared by the next success there
    wb._on_key_event({"type": "keydown", "key": " "})
    assert wb.play.playing


def test_drawing_on_the_canvas_edits_and_autosaves(wb):
    drag(wb, (60, 100), (140, 180))
    assert len(wb.case.tracks) == 1
    box = wb.drawn["boxes"][0]
    assert box["canvas"] == pytest.approx((60, 100, 140, 180))
    assert box["selected"]
    assert wb.case.tracks[1].value(0)[:4] == pytest.approx((30, 50, 70, 90))  # canvas is 2x the image
    saved = json.loads(wb.case.path.read_text())
    assert saved["edit_count"] == 1
    assert saved["edits"][0]["op"] == "add_track"
    assert wb.drawn["drag"] is None
    assert "1 edit(s)" in wb.status.value
    assert "new face track 1" in wb.tools_msg.value
    assert "this frame only: f follows it" in wb.tools_msg.value  # a newcomer expected it to cover the clip
    assert len(wb.track_list.children) == 1
    assert wb.track_list.children[0].children[0].value[:2] == b"\xff\xd8"  # a JPEG thumbnail
    wb.undo_button.click()
    assert not wb.case.tracks
    assert wb.drawn["boxes"] == []
    assert json.loads(wb.case.path.read_text())["edit_count"] == 0
    wb.redo_button.click()
    assert len(wb.case.tracks) == 1


def test_drag_preview_on_the_interaction_layer(wb):
    wb._on_mouse_down(10, 10)
    wb._on_mouse_move(60, 70)
    assert wb.drawn["drag"] == pytest.approx((10, 10, 60, 70))
    wb._on_mouse_out(200, 200)  # a box being drawn ends where the pointer left (test_widgets_model)
    assert wb.drawn["drag"] is None
    assert len(wb.case.tracks) == 1


def test_masked_preview_toggle_and_the_m_key_agree(wb):
    """Item 9: the m key toggles the masked preview, and the button follows."""
    drag(wb, (60, 100), (140, 180))
    masked = wb.drawn["picture"].copy()
    wb.masked_toggle.value = False
    assert not wb.drawn["masked"]
    assert not wb.model.show_masked
    plain = wb.drawn["picture"]
    assert np.abs(masked[110:170, 70:130].astype(int) - plain[110:170, 70:130]).mean() > 10
    assert np.array_equal(masked[:, 400:], plain[:, 400:])
    wb._on_key_event({"type": "keydown", "key": "m"})
    assert wb.drawn["masked"]
    assert wb.masked_toggle.value is True
    assert wb.masked_toggle.description == "masked"
    wb._on_key_event({"type": "keydown", "key": "m"})
    assert not wb.drawn["masked"]
    assert wb.masked_toggle.value is False
    assert wb.masked_toggle.description == "original"  # it says what the picture shows, not "masked" both ways


def test_selected_track_panel_follow_exclude_and_track_list(wb):
    drag(wb, (60, 100), (140, 180))
    t = wb.model.selected
    wb.follow_n.value = 10
    wb.follow_fwd.click()
    assert wb.case.tracks[t].span() == (0, 10)
    assert "followed track" in wb.tools_msg.value
    wb.reason.value = ""
    wb.exclude_button.click()
    assert "reason" in wb.tools_msg.value
    assert wb.case.tracks[t].excluded is None
    wb.reason.value = "consent on file"
    wb.exclude_button.click()  # item 8: no name typed yet
    assert "your name" in wb.tools_msg.value
    assert wb.case.tracks[t].excluded is None
    wb.analyst.value = "Ann Analyst"
    wb.exclude_button.click()
    assert wb.case.tracks[t].excluded == "consent on file"
    assert wb.case.exclusions()[0]["by"] == "Ann Analyst"
    assert "Ann Analyst" in wb.sel_info.value
    assert wb.drawn["boxes"][0]["excluded"]
    assert "unmasked" in wb.track_list.children[0].children[2].value
    wb.include_button.click()
    wb.sel_label.value = "plate"
    assert wb.case.tracks[t].label == 1
    wb.model.select(None)
    wb.delete_box_button.click()
    assert "select a box first" in wb.tools_msg.value
    wb.slider.value = 20
    wb.track_list.children[0].children[1].click()  # the row's select button: jumps to the track
    assert wb.model.selected == t
    assert wb.model.frame == 0
    wb.split_button.click()  # at frame 0: nothing before it
    assert "both sides" in wb.tools_msg.value
    wb.slider.value = 5
    wb.split_button.click()
    assert len(wb.case.tracks) == 2
    assert "split track" in wb.tools_msg.value  # the old error is gone
    other = max(wb.case.tracks)
    wb.merge_with.value = other
    wb.merge_button.click()
    assert list(wb.case.tracks) == [t]
    wb.track_list.children[0].children[3].value = True  # hide
    assert t in wb.model.hidden
    assert wb.drawn["boxes"] == []


def test_merge_menu_lists_the_nearest_tracks_first(wb):
    """Item 20: fragments of one object are next to each other in time; they come first."""
    m = wb.model
    a = m.draw_box((10, 10, 30, 30), frame=0)
    far = m.draw_box((200, 10, 230, 30), frame=2)
    m.add_keyframe(far, 3)
    near = m.draw_box((12, 10, 32, 30), frame=25)
    m.add_keyframe(a, 20)
    plate = m.draw_box((100, 100, 140, 120), "plate", frame=21)
    m.select(a)
    assert [v for _, v in wb.merge_with.options] == [far, near, plate]  # far overlaps a in time: gap 0
    m.select(near)
    assert [v for _, v in wb.merge_with.options][:2] == [a, far]


def test_reopening_loads_the_case(clip):
    a = Workbench(clip, proxy=False)
    drag(a, (60, 100), (140, 180))
    a.close()
    b = Workbench(clip, proxy=False)
    assert b.case.edit_count == 1
    assert len(b.drawn["boxes"]) == 1
    b.close()
    c = Workbench(clip.with_name("clip.case.json"), proxy=False)
    assert c.case.edit_count == 1
    c.close()
    with open(clip, "ab") as f:
        f.write(b"\0")
    with pytest.raises(AnonlabError, match="sha256"):
        Workbench(clip, proxy=False)


def test_one_click_on_export_before_any_analysis_writes_nothing(wb, tmp_path):
    """Item 1: an unanalysed case with an empty queue used to export a fully identifiable file."""
    out = Path(wb.export_path.value)
    wb.export_button.click()
    assert not out.exists()
    assert "not analysed yet" in wb.status_msg.value
    assert "export blocked" in wb.review.title.value
    assert not wb.export_button.disabled


def test_export_respects_edits_exactly(wb, tmp_path):
    drag(wb, (60, 100), (140, 180))
    wb.export_path.value = str(tmp_path / "out.mp4")
    assert wb.export() is None
    assert "not analysed" in wb.status_msg.value
    wb.analyst.value = "Ann"
    wb.review.manual_reason.value = "a synthetic clip, checked by eye"
    wb.review.manual_button.click()
    assert wb.case.review.without_analysis["by"] == "Ann"
    assert wb.export() is None
    assert "export blocked" in wb.status_msg.value  # the review queue blocks it
    session = wb.review.session
    assert session.pending
    assert wb.flagged_frames
    while session.next_pending() is not None:  # the analyst looks at every card and decides
        wb.review.show_current()
        wb.review._decide("accepted")
    assert not session.pending
    assert wb.flagged_frames == []
    info = wb.export()
    assert info["frames"] == 30
    assert info["case"]["regions"] == 1
    assert "exported out.mp4" in wb.status_msg.value
    assert "err" not in wb.status_msg.value  # the old error is gone
    with open_media(tmp_path / "out.mp4") as out, open_media(wb.input_path) as src:
        a, b = out.get(0), src.get(0)
        assert np.abs(a[55:85, 35:65].astype(int) - b[55:85, 35:65]).mean() > 10  # masked
        assert np.abs(a[:, 150:].astype(int) - b[:, 150:]).mean() < 3  # the rest untouched
        assert np.abs(out.get(1).astype(int) - src.get(1)).mean() < 3  # one-frame track: frame 1 untouched
    assert "last export: 30 frame(s), 1 masked region(s)" in wb.record.value  # item 7
    wb.export_button.click()  # exists, replace off
    assert "exists already" in wb.status_msg.value
    assert "--" not in wb.status_msg.value  # item 15: no CLI words
    wb.export_gate = lambda case: (_ for _ in ()).throw(AnonlabError("3 review items open"))
    wb.overwrite.value = True
    wb.export_button.click()
    assert "3 review items open" in wb.status_msg.value
    assert not wb.export_button.disabled


@pytest.mark.parametrize("name, match", [("out.txt", "not a video file name"), ("out.jpg", "not a video file name")])
def test_export_to_a_wrong_name_says_so_and_does_not_hang(wb, tmp_path, name, match):
    """Item 5: 'exporting…' used to stay on screen for ever."""
    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.export_path.value = str(tmp_path / name)
    assert wb.export() is None
    assert match in wb.status_msg.value
    assert "exporting" not in wb.status_msg.value
    assert not wb.export_button.disabled
    assert not (tmp_path / name).exists()


def test_export_internal_error_is_one_line(wb, tmp_path, monkeypatch):
    import anonlab.widgets.actions as view

    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.analyst.value = "Ann"
    monkeypatch.setattr(view, "render_case", lambda *a, **k: (_ for _ in ()).throw(ValueError("codec x")))
    wb.export_path.value = str(tmp_path / "o.mp4")
    wb.export_button.click()
    assert "internal error (ValueError)" in wb.status_msg.value
    assert not wb.export_button.disabled


def test_analysis_runs_in_the_background_and_shows_the_settled_frames(wb):
    """Item 18: the page is not frozen; the analysed part shows its regions while the rest runs."""
    import threading

    drag(wb, (400, 40), (480, 120))  # an analyst box before the analysis: kept
    gate, seen = threading.Event(), {}

    def slow(path, settings=None, progress=True, on_frame=None, **kw):
        def hook(an, media):
            on_frame(an, media)
            if an.n == 20:
                wb.job._on_frame.__self__  # noqa: B018 - the job object is reachable
                seen["provisional"] = len(wb.job.settled_regions())
                gate.wait(10)
        return fake_analyse(path, settings, on_frame=hook)

    job = wb.analyse(analyse=slow)
    assert job.running
    assert wb.analyse_button.disabled
    assert wb.cancel_button.layout.display == ""
    wb.step_buttons[2].click()  # the page answers meanwhile
    assert wb.model.frame == 1
    for _ in range(400):
        if "provisional" in seen or not job.running:
            break
        job.join(0.05)
    assert job.error is None, job.error
    assert seen["provisional"] >= 10  # frames 0..14 settled by frame 20
    wb.poll()  # what the kernel's event loop does for the thread
    assert wb.model.provisional is not None
    assert wb.drawn["provisional"] == 1
    assert wb.progress_bar.value >= 10
    gate.set()
    job.join(10)
    wb.poll()
    assert job.state == "done"
    assert wb.case.analysed
    assert len(wb.case.tracks) == 2
    assert "analysis done: 2 track(s)" in wb.status_msg.value
    assert "not analysed" not in wb.status.value
    assert wb.model.provisional is None
    assert not wb.analyse_button.disabled
    assert "analysed: <b>yes" in wb.record.value
    assert "tracks: 2" in wb.record.value  # item 7
    wb.model.seek(0)
    assert len(wb.track_list.children) == 2
    assert len(wb.drawn["boxes"]) == 2
    assert json.loads(wb.case.path.read_text())["analysis"]["tracks"][0]["sources"] == "d" * 30


def test_analysis_can_be_cancelled_and_failures_are_said(wb):
    import threading

    go = threading.Event()

    def blocked(path, settings=None, progress=True, on_frame=None, **kw):
        go.wait(10)
        return fake_analyse(path, settings, on_frame=on_frame)

    job = wb.analyse(analyse=blocked)
    wb.cancel_button.click()
    go.set()
    job.join(10)
    wb.poll()
    assert job.state == "cancelled"
    assert not wb.case.analysed
    assert "cancelled" in wb.status_msg.value
    job = wb.analyse(analyse=lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")), background=False)
    assert job.state == "failed"
    assert "internal error (RuntimeError)" in wb.status_msg.value
    wb.analyse_button.click()  # the button works again
    assert wb.job.running
    wb.job.cancel()
    wb.job.join(60)
    wb.poll()


def test_picture_is_drawn_again_when_the_browser_view_is_ready(wb):
    """Item 3: Voilà shows the canvas after the kernel drew the first frame: that draw was lost."""
    n = len(wb.timings["send_ms"])
    wb.canvas._canvases[-1]._handle_frontend_event(None, {"event": "client_ready"}, [])
    assert len(wb.timings["send_ms"]) == n + 1
    assert wb.drawn["frame"] == 0


def test_track_list_rows_keep_their_height_and_the_list_scrolls(wb):
    """Item 4: 40 tracks squeezed the rows to 12 px (4 px for 49)."""
    for k in range(45):
        wb.model.draw_box((2 + 6 * (k % 40), 2 + 4 * (k // 40), 6 + 6 * (k % 40), 8 + 4 * (k // 40)))
    rows = wb.track_list.children
    assert len(rows) == 45
    assert all(r.layout.flex == "0 0 auto" and r.layout.min_height == r.layout.height for r in rows)
    assert wb.track_list.layout.overflow == "auto"
    assert wb.track_list.layout.max_height


def test_layout_fits_a_1366_px_screen():
    """Item 10: at 1366x768 the side panel overlapped the picture by ~28 px."""
    from anonlab.widgets.layout import GAP, MAX_CANVAS, SIDE_WIDTH, canvas_size_for, layout_width

    for w, h in ((1920, 1080), (640, 360), (1080, 1920), (4000, 3000)):
        cw, ch = canvas_size_for(w, h)
        assert cw <= MAX_CANVAS[0]
        assert ch <= MAX_CANVAS[1]
        assert layout_width(cw) <= 1366 - 16  # room for the page's scroll bar
    assert MAX_CANVAS[0] + GAP + SIDE_WIDTH + 2 * GAP <= 1350
    assert MAX_CANVAS[1] <= 768 - 300  # the status strip and the player stay on screen with it


def test_icon_buttons_have_tooltips(wb):
    """Item 20: icon buttons without tooltips."""
    buttons = [w for w in _walk(wb.widget) if w.__class__.__name__ in ("Button", "ToggleButton")]
    assert buttons
    assert all(b.tooltip for b in buttons if not b.description or b.icon)


def _walk(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from _walk(c)


def test_photo_has_no_transport_and_fills_the_view(tmp_path):
    """Item 17: photos got video controls and were shown at native size."""
    import cv2

    p = tmp_path / "p.jpg"
    cv2.imwrite(str(p), moving_square(0))
    w = Workbench(p)
    assert w.case.input.kind == "photo"
    assert w.slider.max == 0
    assert w.slider.layout.display == "none"
    assert w.transport.layout.display == "none"
    # no tools for time either: split and follow only explained why they cannot work on one frame
    assert w.split_button.layout.display == w.keyframe_button.layout.display == "none"
    assert w.follow_row.layout.display == "none"
    assert w.model.viewport.canvas_w == 640  # 320 px wide photo, enlarged to fill the view
    drag(w, (60, 100), (140, 180))
    (card,) = w.review.session.queue
    assert card.id == "track:1"
    assert [f.kind for f in card.flags] == ["edited"]  # no start, end or short track
    w.export_path.value = str(tmp_path / "p_out.jpg")
    w.analyst.value = "Tester"
    w.review.manual_reason.value = "a test picture, checked by eye"
    w.review.manual_button.click()
    w.review.session.override("nothing to review in a test photo", "Tester")  # recorded, then allowed
    assert w.export()["frames"] == 1
    w.close()


def test_analysing_a_photo_does_not_invite_to_scrub(tmp_path, monkeypatch):
    """"analysing in the background: you can scrub meanwhile" was said for a photo, which has nothing to scrub."""
    import cv2

    from anonlab.widgets import actions

    monkeypatch.setattr(actions.AnalysisJob, "start", lambda self, background=True: None)  # only the message
    p = tmp_path / "p.jpg"
    cv2.imwrite(str(p), moving_square(0))
    w = Workbench(p)
    try:
        w.analyse()
        assert "scrub" not in w.status_msg.value
        assert "look and draw boxes meanwhile" in w.status_msg.value
    finally:
        w.job = None
        w.close()


def test_portrait_photo_sits_next_to_the_side_panel(tmp_path):
    """A portrait photo's player column was 560 px wide (the room a portrait clip's transport needs), leaving a
    blank gap of up to 300 px between the picture and the side panel: a photo has no transport."""
    import cv2

    from anonlab.widgets.layout import MIN_PLAYER, layout_width

    p = tmp_path / "upright.jpg"
    cv2.imwrite(str(p), np.full((600, 512, 3), 120, np.uint8))
    w = Workbench(p)
    try:
        cw = w.model.viewport.canvas_w
        assert cw < MIN_PLAYER
        assert w.view_row.layout.width == w.player_msg.layout.width == f"{cw}px"
        assert w.widget.layout.max_width == f"{layout_width(cw) - 12}px"  # the status strip keeps its room
    finally:
        w.close()
    # its view row (masked, undo, redo, three zoom buttons) keeps one line beside a narrow photo
    p = tmp_path / "strip.jpg"
    cv2.imwrite(str(p), np.full((1600, 400, 3), 120, np.uint8))
    w = Workbench(p)
    try:
        assert w.model.viewport.canvas_w < 150
        assert int(w.view_row.layout.width.removesuffix("px")) >= 96 + 5 * 36 + 6 * 4
    finally:
        w.close()


def test_boxes_and_panels_do_not_grow_scroll_bars(wb):
    """Every column and panel showed a horizontal scroll bar: ipywidgets 8 boxes scroll (``overflow: auto``)
    and overflowed by the 4 px of their children's margins. The lists that should scroll still do."""
    from anonlab.widgets.layout import CSS

    assert ".anonlab-workbench .widget-box { overflow: visible; }" in CSS.replace(
        ".anonlab-workbench.widget-box, ", "")
    assert wb.track_list.layout.overflow == "auto"  # an inline style: it wins over the sheet
    assert wb.review.item.layout.overflow == "auto"


def test_labels_of_a_row_of_faces_at_the_top_do_not_overlap(wb):
    """Box labels at the picture's top edge were drawn on one line, over one another."""
    for k in range(8):
        wb.model.draw_box((5 + 38 * k, 0, 35 + 38 * k, 40))
    wb.model.select(None)
    labels = [b["label"] for b in wb.drawn["boxes"]]
    assert len(labels) == 8
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


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
def test_launch_commands_bind_localhost_stay_offline_and_need_a_token(tmp_path):
    nb = launch.workbench_notebook()
    assert nb.name == "workbench.ipynb"
    assert nb.exists()
    app = launch.app_command(nb, 8866, token="secret")
    assert app[:3] == [sys.executable, "-m", "voila"]
    assert "--Voila.ip=127.0.0.1" in app
    assert "--Voila.open_browser=False" in app
    assert "--token=secret" in app  # item 0
    assert "--template=anonlab" in app  # item 2: the template without CDN links
    assert str(launch.TEMPLATE_ROOT) in launch.app_env({})["JUPYTER_PATH"]
    assert launch.new_token() != launch.new_token()
    assert len(launch.new_token()) >= 32
    lab = launch.lab_command(nb, 8888, open_browser=False, token="t", settings_dir=tmp_path)
    assert "--ServerApp.ip=127.0.0.1" in lab
    assert "--LabApp.news_url=None" in lab
    assert "--LabApp.extension_manager=readonly" in lab
    assert "--IdentityProvider.token=t" in lab
    assert "--LabApp.default_url=/lab/tree/workbench.ipynb" in lab
    assert str(nb) not in lab  # item 19
    assert f"--LabApp.app_settings_dir={tmp_path}" in lab
    fallback = launch._fallback_notebook()
    assert json.loads(fallback.read_text())["cells"][1]["source"].count("ANONLAB_MEDIA") == 1
    shutil.rmtree(fallback.parent)


def test_offline_template_removes_exactly_the_cdn_links_of_voilas_template():
    """Item 2: if Voilà changes its links, the replacement would silently miss them: this test says so."""
    import re

    import voila

    ours = (launch.TEMPLATE_ROOT / "voila" / "templates" / "anonlab" / "index.html.j2").read_text()
    lab = Path(voila.__file__).resolve().parents[3]
    candidates = [p for p in Path(sys.prefix).glob("share/jupyter/voila/templates/lab/index.html.j2")]
    theirs = candidates[0].read_text() if candidates else ""
    links = re.findall(r'<link[^>]+href="https?://[^"]+"[^>]*/>', theirs)
    assert links
    assert all(link in ours for link in links)
    assert "html_head_js_mermaidjs" in ours
    del lab


def test_lab_settings_answer_the_news_prompt(tmp_path):
    folder = launch.lab_settings_dir()
    try:
        overrides = json.loads((folder / "overrides.json").read_text())
        assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    finally:
        shutil.rmtree(folder)


def test_run_app_checks_the_input_before_any_server_starts(monkeypatch, tmp_path, clip, capsys):
    """Item 6: a file that is not media showed Voilà's generic error page; item 0: the URL carries a token."""
    import cv2

    seen = {}
    monkeypatch.setattr(launch, "_run", lambda cmd, env, url=None: seen.update(cmd=cmd, env=env, url=url) or 0)
    assert launch.run_app(clip, port=9999, open_browser=False) == 0
    assert seen["env"][launch.MEDIA_ENV] == str(clip.resolve())
    assert "--port=9999" in seen["cmd"]
    token = next(a for a in seen["cmd"] if a.startswith("--token=")).split("=", 1)[1]
    assert f"?token={token}" in capsys.readouterr().err
    seen.clear()
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video")
    with pytest.raises(AnonlabError, match="not a video or photo"):
        launch.run_app(notes)
    with pytest.raises(AnonlabError, match="no such file"):
        launch.run_app(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnonlabError, match="no photos"):
        launch.run_app(tmp_path / "empty")
    assert not seen  # no server was started for any of them
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), moving_square(0))
    launch.run_app(photos, port=9999, open_browser=False)  # item 20: a folder of photos opens
    assert seen["env"][launch.MEDIA_ENV] == str(photos.resolve())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    packaged = launch.workbench_notebook()
    before = packaged.read_bytes()
    assert launch.run_lab(port=9998, open_browser=False) == 0
    assert "--ServerApp.port=9998" in seen["cmd"]
    # the analyst's copy in the working folder is served, never the packaged notebook (a newcomer's `anonlab lab`
    # wrote checkpoints into the repository and would have autosaved its notebook)
    assert f"--ServerApp.root_dir={work}" in seen["cmd"]
    copy, original = json.loads((work / launch.LAB_NOTEBOOK).read_text()), json.loads(before)
    assert copy["cells"] == original["cells"]
    assert copy["metadata"]["language_info"]["version"] == platform.python_version()  # as the kernel says
    (work / launch.LAB_NOTEBOOK).write_text("{}")  # the analyst's own changes are kept on the next start
    launch.run_lab(port=9998, open_browser=False)
    assert (work / launch.LAB_NOTEBOOK).read_text() == "{}"
    assert packaged.read_bytes() == before


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
    cv2.imwrite(str(tmp_path / "p1_anonymized.jpg"), moving_square(1))  # an export of an earlier session
    cv2.imwrite(str(tmp_path / "q_anonymized.jpg"), moving_square(1))  # a photo of that name, no p.jpg beside
    fw = Workbench(tmp_path)
    assert isinstance(fw, FolderWorkbench)
    assert [p.name for p in fw.photos] == ["p0.jpg", "p1.jpg", "p2.jpg", "q_anonymized.jpg"]
    fw.current.model.draw_box((10, 10, 40, 40))
    assert (tmp_path / "p0.case.json").exists()  # each photo keeps its own case file
    assert fw.record.children == (fw.current.record,)  # the notebook's counts cell works for folders too
    fw.current.analyst.value = "Ann"
    fw.next_button.click()
    assert fw.current.analyst.value == "Ann"
    assert fw.record.children == (fw.current.record,)
    assert fw.chooser.value == 1
    assert fw.current.case.input.name == "p1.jpg"
    assert not fw.current.case.tracks
    fw.chooser.value = 0
    assert len(fw.current.case.tracks) == 1  # back on the first photo, its edit is still there
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnonlabError, match="no photos"):
        Workbench(empty)
    assert fw.note.value == ""  # no video in the folder, nothing to say


def test_folder_view_says_which_videos_it_leaves_out(tmp_path, clip_src):
    """A folder with a clip and a photo showed the photo alone, as if the clip were not there."""
    import cv2

    cv2.imwrite(str(tmp_path / "photo.jpg"), moving_square(0))
    shutil.copy(clip_src, tmp_path / "street.mp4")
    shutil.copy(clip_src, tmp_path / "street_anonymized.mp4")  # an export: not a video to work on
    fw = Workbench(tmp_path)
    assert [p.name for p in fw.photos] == ["photo.jpg"]
    assert "1 video(s) here are not in this list (street.mp4)" in fw.note.value
    assert "anonlab app VIDEO" in fw.note.value


def test_nobody_exports_anonymously(wb, tmp_path):
    """A newcomer exported with the analyst field empty: the report said nobody. Export asks for a name."""
    wb.case.allow_without_analysis("whole_frames", "Ann")
    out = tmp_path / "o.mp4"
    wb.export_path.value = str(out)
    wb.analyst.value = "  "
    assert wb.export() is None
    assert "type your name" in wb.status_msg.value
    assert not out.exists()
    wb.analyst.value = "Ann"
    assert wb.export() is not None
    assert out.exists()
    # a draft export says it is one (render-cases publishes approved cases only)
    assert "the case is draft, not approved: sign it off" in wb.status_msg.value
    wb.case.set_status("reviewed", "Ann")
    wb.case.set_status("approved", "Ann")
    wb.overwrite.value = True
    assert wb.export() is not None
    assert "exported o.mp4" in wb.status_msg.value and "not approved" not in wb.status_msg.value


def test_an_export_refused_for_the_name_also_names_the_open_review_cards(wb, tmp_path):
    """With cards open and no name, the refusal named only the review gate; a newcomer decided every card and was
    then refused for the name. One refusal names both."""
    wb.case.allow_without_analysis("whole_frames", "Ann")
    drag(wb, (60, 100), (140, 180))  # a box drawn: its card is open
    wb.export_path.value = str(tmp_path / "o.mp4")
    wb.analyst.value = ""
    assert wb.export() is None
    assert "type your name" in wb.status_msg.value and "review card open" in wb.status_msg.value
    session = wb.review.session
    while session.next_pending() is not None:
        wb.review.show_current()
        wb.review._decide("accepted")
    assert wb.export() is None
    assert "type your name" in wb.status_msg.value and "review card" not in wb.status_msg.value


def test_the_record_names_an_export_made_before_the_window_opened(wb, clip, tmp_path):
    """After a restart the record said "not exported yet" beside an export on disk, made with fewer edits than
    the case now holds. It says what the export's report says, and that edits came since."""
    assert "not exported yet" in wb.record.value
    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.analyst.value = "Ann"
    out = tmp_path / "clip_anonymized.mp4"
    wb.export_path.value = str(out)
    assert wb.export() is not None, wb.status_msg.value
    again = Workbench(clip, proxy=False, output=out)  # the app restarted on the same case
    try:
        assert "earlier export" in again.record.value and "clip_anonymized.mp4" in again.record.value
        assert "export again" not in again.record.value
        drag(again, (60, 100), (140, 180))  # an edit made since
        assert "export again to publish" in again.record.value
        again.export_path.value = str(tmp_path / "other.mp4")  # no export there
        again._draw_record()
        assert "not exported yet" in again.record.value
    finally:
        again.close()
    assert earlier_export(out, "another input's sha256") is None  # made from another input
    (tmp_path / "clip_anonymized.mp4.report.json").write_text("{not json")
    assert "not exported yet" in earlier_export_html(out, wb.case)


def test_my_boxes_only_with_no_box_exports_nothing(wb, tmp_path):
    """'Export my boxes only' on a clip never analysed, with no box drawn: the output would be the input,
    unmasked, under a name that says anonymized (found by a newcomer run). Refused until a box is drawn."""
    wb.analyst.value = "Bob"
    wb.case.allow_without_analysis("manual_only", None, "x")
    out = tmp_path / "o.mp4"
    wb.export_path.value = str(out)
    assert wb.export() is None
    assert "no box is there to mask" in wb.status_msg.value
    assert not out.exists()
    drag(wb, (60, 100), (140, 180))
    session = wb.review.session
    while session.next_pending() is not None:  # the new box's card
        wb.review.show_current()
        wb.review._decide("accepted")
    assert wb.export() is not None, wb.status_msg.value
    assert out.exists()


def test_red_team_check_of_the_export_feeds_the_review_queue(wb, tmp_path):
    """Issue 15: findings grouped per object become review cards, a real exposure first."""
    from anonlab.review import Finding

    with pytest.raises(AnonlabError, match="export first"):
        wb.red_team()
    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.analyst.value = "Ann"
    wb.export_path.value = str(tmp_path / "o.mp4")
    assert wb.export() is not None
    seen = {}

    def fake(out, regions, settings, frames=None, whole_frames=()):
        seen.update(out=out, whole=len(whole_frames))
        return [Finding(3, "exposed", "face", 0.49, ("centerface",), 0.26, box=(1, 1, 9, 9), last_frame=5, n_frames=3,
                        best_frame=4, sure=True),
                Finding(0, "exposed", "plate", 0.25, ("plates",), 0.0, box=(1, 1, 9, 9), last_frame=29, n_frames=30,
                        sure=False, strength=0.6)]

    job = wb.red_team(background=False, red_team=fake)
    assert job.state == "done"
    assert seen["out"] == tmp_path / "o.mp4"
    assert seen["whole"] == 30
    assert "1 exposure(s), 0 weak mask(s), 1 doubtful" in wb.status_msg.value
    cards = wb.review.session.cards
    assert [c.kind for c in cards[:2]] == ["exposed", "doubtful"]
    assert wb.review.session.current is cards[0]
    assert wb.model.frame == 3
    assert "frames 3-5" in wb.review.item.value
    assert [b.description for b in wb.review.strip.children[0].children[1:]] == ["3"]
    wb.overwrite.value = True
    assert wb.export() is None
    assert "export blocked" in wb.status_msg.value  # the findings' cards are open
    wb.analyst.value = "Ann"
    wb.review.clock = FakeClock()  # each click comes a second after the last: the analyst looked at the card
    wb.review.fixed_button.click()  # the analyst masked the face, say
    wb.review.dismiss_button.click()  # the doubtful plate: a poster, nothing to mask (recorded with the name)
    assert wb.case.review.decided["doubtful:0:-1"]["by"] == "Ann"
    assert wb.export() is not None
    assert not wb.review.session.findings  # a new export: the findings were about the old one


def test_a_long_filmstrip_pages_so_every_flagged_frame_is_one_click_away(wb):
    scores = [0.3 if f % 2 else 0.9 for f in range(30)]  # a low-score run every other frame, and a hole
    r = Regions(xyxy=[[30, 50, 70, 90]] * 28, score=scores[:14] + scores[16:], track_id=[5] * 28,
                frame=list(range(14)) + list(range(16, 30)))
    a = Analysis(path=wb.input_path, kind="video", n_frames=30, width=320, height=192, fps=25.0,
                 times=np.arange(30) / 25, regions=r, settings=Settings())
    wb.case.set_analysis(a)
    wb.review.refresh()
    card = wb.review.session.current
    assert card.kind == "unmasked_gap"
    assert len(card.frames) > 8
    shown = lambda: [c.children[1].description for c in wb.review.strip.children[:-1]]  # noqa: E731
    first = shown()
    assert len(first) == 8
    assert wb.review.strip.children[-1].description.startswith("▸ 1/")
    wb.review.strip.children[-1].click()
    second = shown()
    assert second
    assert not set(first) & set(second)
    assert set(map(int, first + second)) == set(card.frames)
    wb.review.strip.children[0].children[1].click()  # a frame of the strip: the player goes there
    assert wb.model.frame == int(second[0])


def test_label_layer_buttons_hide_a_label_in_the_view(wb):
    drag(wb, (60, 100), (140, 180))
    assert len(wb.drawn["boxes"]) == 1
    wb.layer_buttons["face"].value = False
    assert wb.model.hidden_labels == {"face"}
    assert wb.drawn["boxes"] == []
    wb.layer_buttons["face"].value = True
    assert len(wb.drawn["boxes"]) == 1


def test_speed_choice_beside_analyse_sets_the_analysis_settings(wb):
    """Issue 18: the profile chosen beside "analyse" is what the analysis runs with; its figures are the tooltip."""
    from anonlab.settings import SPEED_PROFILES, speed_summary

    assert wb.speed.value == "thorough"
    assert list(wb.speed.options)[:3] == list(SPEED_PROFILES)
    assert speed_summary("balanced").split(":")[0] in wb.speed.tooltip
    assert wb.analysis_settings() == wb.case.settings
    wb.speed.value = "fast"
    s = wb.analysis_settings()
    assert {k: getattr(s, k) for k in SPEED_PROFILES["fast"]} == SPEED_PROFILES["fast"]
    assert s.what == wb.case.settings.what
    seen = {}

    def record(path, settings=None, progress=True, on_frame=None, **kw):
        seen["settings"] = settings
        return fake_analyse(path, settings, on_frame=on_frame)

    wb.analyse(analyse=record, background=False)
    wb.poll()
    assert seen["settings"].detect_every == SPEED_PROFILES["fast"]["detect_every"]


class FakeClock:
    """The kernel's clock in a test: each reading is ``step`` seconds after the last (no sleeping, no load)."""

    def __init__(self, step: float = 1.0) -> None:
        self.now, self.step = time.monotonic(), step  # from the real clock's reading, which it replaces

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_double_click_on_accept_does_not_decide_the_next_card_unseen(wb, tmp_path):
    """Clicks queue in the kernel: the second click of a double click reaches the handler right after the
    first drew the next card. It must not decide that card; a click after a look does."""
    from anonlab.review import Finding

    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.analyst.value = "Ann"
    wb.export_path.value = str(tmp_path / "o.mp4")
    assert wb.export() is not None

    def two_findings(out, regions, settings, frames=None, whole_frames=()):
        return [Finding(3, "exposed", "face", 0.49, ("centerface",), 0.26, box=(1, 1, 9, 9), last_frame=5,
                        n_frames=3, best_frame=4, sure=True),
                Finding(9, "exposed", "face", 0.45, ("centerface",), 0.3, box=(20, 20, 30, 30), last_frame=12,
                        n_frames=4, best_frame=10, sure=True)]

    assert wb.red_team(background=False, red_team=two_findings).state == "done"
    review = wb.review
    clock = FakeClock(step=0.0)  # no time passes between clicks unless the test says so
    review.clock = clock
    clock.now += 5.0  # the analyst looked at the first card
    first = review.session.current.id
    review.accept_button.click()
    second = review.session.current.id
    assert second != first
    assert wb.case.review.decisions[first] == "accepted"
    review.accept_button.click()  # the double click's second half, handled at once
    assert second not in wb.case.review.decisions
    assert "before this card was on screen" in review.message.value
    clock.now += 1.0  # now the analyst has seen it
    review.accept_button.click()
    assert wb.case.review.decisions.get(second) == "accepted"


def test_anamorphic_video_is_shown_at_its_display_aspect_ratio(tmp_path):
    """Widescreen PAL DV and DVB are 720x576 with wide pixels (SAR 64:45, shown 1024x576): drawn square, every
    face was squeezed to four fifths of its width. A box drawn on the picture lands on the same image pixels."""
    from archivekinds import SQUARE, anamorphic

    src = anamorphic(tmp_path)  # 176x144 coded, SAR 4:3: shown 235x144
    wb = Workbench(src, proxy=False)
    try:
        vp = wb.model.viewport
        assert vp.canvas_w / vp.canvas_h == pytest.approx(176 * 4 / 3 / 144, rel=0.01)
        wb.model.show_masked = False
        pic = wb.model.picture()
        bright = np.argwhere(pic.min(axis=2) > 200)  # the 48x48-pixel square, shown 64 wide for 48 high
        (y1, x1), (y2, x2) = bright.min(axis=0), bright.max(axis=0) + 1
        assert (x2 - x1) / (y2 - y1) == pytest.approx(4 / 3, rel=0.08)
        drag(wb, (x1, y1), (x2, y2))
        assert wb.case.tracks[1].value(0)[:4] == pytest.approx(SQUARE, abs=2)
        assert wb.drawn["boxes"][0]["canvas"] == pytest.approx((x1, y1, x2, y2), abs=0.5)
        assert wb.frames.view(0, vp).shape[:2] == (vp.canvas_h, vp.canvas_w)
    finally:
        wb.close()


def test_portrait_video_keeps_its_transport_whole(tmp_path):
    """A phone clip shot upright is shown 263 px wide: the player column was as narrow as the picture, so the
    step buttons were cut to "-1" and "+:" and the frame label broke over three lines."""
    from mediagen import make_clip

    from anonlab.widgets.layout import layout_width

    src = make_clip(tmp_path / "phone.mp4", n_frames=5, width=96, height=160)
    wb = Workbench(src, proxy=False)
    try:
        cw = wb.model.viewport.canvas_w
        assert cw < 300
        px = lambda w: int(w.layout.width.removesuffix("px"))  # noqa: E731
        buttons = sum(px(b) for b in (*wb.step_buttons, wb.prev_flag_button, wb.next_flag_button))
        # play and stop about 70 px, the frame label ("1234 / 5678 · 1:23.45") about 150 px
        assert px(wb.view_row) >= buttons + 70 + 150
        assert px(wb.player_msg) == px(wb.view_row)
        assert wb.slider.layout.width == f"{cw}px"  # the slider stays the sound strip's width
        assert layout_width(cw) <= 1366 - 16
    finally:
        wb.close()


def test_an_error_goes_once_the_analyst_did_what_it_asked(wb):
    """A careless first click on 'split' said "select a box first" in red, and it stayed there beside the
    track selected since; "no flagged frame after this one" stayed under the picture after every step."""
    drag(wb, (60, 100), (140, 180))
    wb.model.select(None)
    wb.split_button.click()
    assert "select a box first" in wb.tools_msg.value
    wb.model.select(1)  # a click on the box, or Tab
    assert wb.tools_msg.value == ""
    wb.next_flag_button.click()
    assert "no flagged frame after this one" in wb.player_msg.value
    wb.step_buttons[2].click()
    assert wb.player_msg.value == ""
    wb.next_flag_button.click()
    wb.model.select(None)
    wb.model.select(1)  # a selection leaves the player's message alone
    assert "no flagged frame" in wb.player_msg.value


def _app_with_a_server(tmp_path):
    """``anonlab app``'s process runner (`_run`) serving a stand-in server: ``(app process, server pid)``."""
    import subprocess

    pid_file = tmp_path / "server.pid"
    server = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    runner = ("import sys; from anonlab.widgets.launch import _run; "
              f"sys.exit(_run([sys.executable, '-c', {server!r}], {{}}))")
    app = subprocess.Popen([sys.executable, "-c", runner], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return app, int(pid_file.read_text())


def _gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends within ``within`` seconds (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:  # no /proc here, or it ended meanwhile
            pass
        time.sleep(0.1)
    return False


def _stop_all(app, server_pid) -> None:
    if app.poll() is None:
        app.kill()
    try:
        os.kill(server_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_app_stops_its_server_when_it_is_stopped(tmp_path, signame):
    """Only Ctrl+C stopped the server: `kill` or a closed terminal ended ``anonlab app`` and left Voila and its
    kernel serving the footage on 127.0.0.1."""
    app, server_pid = _app_with_a_server(tmp_path)
    try:
        app.send_signal(getattr(signal, signame))
        assert app.wait(30) == 0  # stopped as by Ctrl+C, not killed by the signal
        assert _gone(server_pid, 10), "the server outlived anonlab app"
    finally:
        _stop_all(app, server_pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_app_killed_outright_takes_its_server_with_it(tmp_path):
    """``kill -9`` (or the out-of-memory killer) gives ``anonlab app`` no chance to stop Voila, which then served
    the footage on 127.0.0.1 with nobody left to stop it: the server now gets SIGTERM when anonlab dies."""
    app, server_pid = _app_with_a_server(tmp_path)
    try:
        app.kill()
        assert app.wait(30) == -signal.SIGKILL
        assert _gone(server_pid, 30), "the server outlived anonlab app killed with SIGKILL"
    finally:
        _stop_all(app, server_pid)


def test_analysis_done_says_when_the_masked_preview_is_off(wb):
    """A stray 'm' before the analysis switched the masked preview off: the faces it finds look bare, so the
    announcement of the result says how to show the masks (the analyst's choice is kept)."""
    wb.model.toggle_masked()
    assert wb.analyse(analyse=fake_analyse, background=False).state == "done"
    assert "the masked preview is off" in wb.status_msg.value
    assert not wb.model.show_masked
    wb.model.toggle_masked()
    assert wb.analyse(analyse=fake_analyse, background=False).state == "done"
    assert "analysis done" in wb.status_msg.value
    assert "preview is off" not in wb.status_msg.value


def test_the_card_of_a_found_box_moved_off_itself_shows_what_it_uncovered(wb, monkeypatch):
    """A careless drag (with a name typed) moved a face's box onto the wall; its card's thumbnail showed the wall,
    and the analyst accepted it. The thumbnail now outlines the box the analysis found, in red, and frames it."""
    from anonlab.case.tracks import tracks_from_regions
    from anonlab.regions import DETECTOR
    import cv2

    from anonlab.widgets.drawing import UNCOVERED_BGR

    wb.case._set_base(tracks_from_regions(Regions(xyxy=[[40, 60, 80, 100]] * 3, track_id=[0] * 3,
                                                  source=[DETECTOR] * 3, frame=[0, 1, 2], score=[0.9] * 3)))
    (tid,) = wb.case.tracks

    drawn = []
    real = cv2.rectangle
    monkeypatch.setattr(cv2, "rectangle", lambda img, a, b, colour, *r: drawn.append(tuple(colour)) or real(
        img, a, b, colour, *r))
    wb.thumbnail(0, tid)
    assert UNCOVERED_BGR not in drawn
    wb.case.actor = "Ann"
    wb.model.set_box(tid, (240, 20, 280, 60), frame=0)  # moved onto the wall
    wb.thumbnail(0, tid)
    assert UNCOVERED_BGR in drawn
    drawn.clear()
    wb.model.set_box(tid, (30, 50, 90, 110), frame=1)  # grown: it uncovers nothing
    wb.thumbnail(1, tid)
    assert drawn and UNCOVERED_BGR not in drawn


def test_messages_about_the_last_analysis_or_export_go_once_the_case_changes(wb, tmp_path):
    """A newcomer's "export failed: export blocked…" stayed on screen through the accepts that answered it,
    "analysis done: 3 track(s)" through later edits, and "recorded: only your own boxes will be masked" under
    REVIEW after the case had been analysed."""
    wb.analyst.value = "Ann"
    wb.review.manual_reason.value = "checked by eye"
    wb.review.manual_button.click()
    assert "only your own boxes" in wb.review.message.value
    assert wb.analyse(analyse=fake_analyse, background=False).state == "done"
    assert "only your own boxes" not in wb.review.message.value  # the case is analysed now
    assert "analysis done" in wb.status_msg.value
    wb.export_path.value = str(tmp_path / "o.mp4")
    assert wb.export() is None and "export blocked" in wb.status_msg.value
    wb.model.say("a tools message", "tools")
    wb.review.show_current()
    wb.review._decide("accepted")  # the analyst answers it
    assert wb.status_msg.value == ""
    assert "a tools message" in wb.tools_msg.value  # other groups keep their own messages


def test_the_case_cannot_be_marked_reviewed_or_approved_with_cards_open(wb):
    """A newcomer clicked "mark reviewed" and "approve" while the card said "1 of 1 card(s) open · export blocked":
    render-cases then published the case as signed off. The buttons refuse, and say why."""
    assert wb.analyse(analyse=fake_analyse, background=False).state == "done"
    wb.analyst.value = "Newbie Tester"
    wb.review.reviewed_button.click()
    assert wb.case.review.status == "draft"
    assert "not reviewed" in wb.review.message.value and "review card open" in wb.review.message.value
    session = wb.review.session
    while session.next_pending() is not None:
        wb.review.show_current()
        wb.review._decide("accepted")
    wb.review.reviewed_button.click()
    wb.review.approved_button.click()
    assert wb.case.review.status == "approved", wb.review.message.value
