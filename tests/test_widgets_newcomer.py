"""What a newcomer met trying the workbench at 1366×768: an export pressed during the analysis, the review gate
counted in two units, a disabled "accept" drawn green, two tabs on one case, and a panorama photo 55 px tall.

Widgets on a dummy comm, handlers called directly, as in ``test_widgets_view``.
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

pytest.importorskip("ipycanvas")
pytest.importorskip("ipywidgets")

from anonlab.widgets import Workbench  # noqa: E402
from anonlab.widgets.drawing import _overlap  # noqa: E402
# the same clip and workbench fixtures as the view's tests
from test_widgets_view import clip, clip_src, drag, fake_analyse, fake_analysis, wb  # noqa: E402,F401




def test_export_during_the_analysis_says_it_is_still_running(wb, tmp_path):
    """Export pressed while the analysis ran repeated "not analysed yet … analyse it first", as if nothing had
    happened; the next progress tick then wrote over whatever it said."""
    out = tmp_path / "o.mp4"
    wb.export_path.value = str(out)
    wb.analyst.value = "Ann"
    wb.export_button.click()
    assert "not analysed yet" in wb.status_msg.value  # the stale message of a click before the analysis
    go = threading.Event()

    def blocked(path, settings=None, progress=True, on_frame=None, **kw):
        go.wait(10)
        return fake_analyse(path, settings, on_frame=on_frame)

    job = wb.analyse(analyse=blocked)
    try:
        wb.export_button.click()
        msg = wb.status_msg.value
        assert "the analysis is still running" in msg and "not analysed" not in msg
        assert "err" in msg  # said as a refusal
        assert not out.exists() and not wb.export_button.disabled
        wb._show_progress(10, 30)  # a progress tick keeps the refusal on screen until the analysis ends
        assert "still running" in wb.status_msg.value
    finally:
        go.set()
        job.join(10)
        wb.poll()
    assert "analysis done" in wb.status_msg.value
    wb.export_button.click()  # ended: refused now for its review cards, not for the analysis
    assert "still running" not in wb.status_msg.value and "review card" in wb.status_msg.value
    assert not out.exists()


def many_tracks(path, settings=None, progress=True, on_frame=None, **kw):
    """16 tracks masked throughout (routine: two pages of thumbnails) and two shot starts."""
    a = fake_analysis(path, settings, tracks=[(t, 0, 30) for t in range(1, 17)])
    a.scene_cuts = [10, 20]
    return a


def test_the_export_refusal_counts_review_cards_as_the_panel_does(wb, tmp_path):
    """The panel said "4 of 4 card(s) open" and the export "18 of 18 review item(s) undecided (2 scene_cut,
    16 track)": two counts for one gate. The refusal counts cards too, and says what they hold."""
    assert wb.analyse(analyse=many_tracks, background=False).state == "done"
    assert "4 of 4 card(s) open" in wb.review.title.value
    wb.analyst.value = "Ann"
    wb.export_path.value = str(tmp_path / "o.mp4")
    assert wb.export() is None
    msg = wb.status_msg.value
    assert "4 of 4 review cards open (18 items: 2 scene cuts, 16 tracks)" in msg, msg
    assert "decide them in the REVIEW panel" in msg
    assert "scene_cut" not in msg and "review item(s)" not in msg
    session = wb.review.session
    wb.review.show_current()
    wb.review._decide("accepted")  # a page of 12 accepted: the panel and the refusal count down together
    left, total = re.search(r"(\d+) of (\d+) card\(s\) open", wb.review.title.value).groups()
    assert int(left) == 3
    assert wb.export() is None
    assert f"{left} of {total} review cards open (6 items: 2 scene cuts, 4 tracks)" in wb.status_msg.value
    wb.review.reviewed_button.click()  # "mark reviewed" refuses in the same words
    assert f"not reviewed: {left} of {total} review cards open" in wb.review.message.value
    while session.next_pending() is not None:
        wb.review.show_current()
        wb.review._decide("accepted")
    assert wb.export() is not None


def test_a_disabled_decision_button_is_not_drawn_green(wb):
    """A disabled "accept" kept ``button_style="success"``: drawn green, it looked clickable."""
    r = wb.review
    assert r.session.current is None  # nothing to review before an analysis
    assert r.accept_button.disabled and r.accept_button.button_style == ""
    assert all(b.button_style == "" for b in (r.fixed_button, r.dismiss_button))
    assert wb.analyse(analyse=fake_analyse, background=False).state == "done"
    assert not r.accept_button.disabled and r.accept_button.button_style == "success"  # its colour comes back


def test_an_export_refuses_when_another_tab_changed_the_case(clip, tmp_path):
    """Tab B deleted a track (the case file saved with 0 tracks); tab A, still showing it, exported 1 masked
    region, so the export and its report no longer matched the case file. Tab A refuses, and keeps B's edits."""
    a = Workbench(clip, proxy=False, analyst="Ann")
    drag(a, (60, 100), (140, 180))  # tab A: a box, saved
    a.review.manual_reason.value = "a synthetic clip, checked by eye"
    a.review.manual_button.click()
    a.review.session.override("checked by eye", "Ann")
    a.export_path.value = str(tmp_path / "o.mp4")
    case_file = a.case.path
    b = Workbench(clip, proxy=False, analyst="Bea")  # tab B on the same case
    try:
        assert list(b.case.tracks) == [1]
        b.sync_actor()
        b.model.delete_track(1)
        saved = case_file.read_bytes()
        assert json.loads(saved)["edits"][-1]["op"] == "delete_track"
        assert a.export() is None  # tab A still shows track 1
        msg = a.status_msg.value
        assert "changed in another window or tab" in msg and "reload the page" in msg, msg
        assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.mp4.report.json").exists()
        drag(a, (300, 100), (400, 180))  # an edit in tab A is refused as well
        assert case_file.read_bytes() == saved  # tab B's edits are kept
        assert json.loads(case_file.read_text())["edits"][-1]["op"] == "delete_track"
    finally:
        a.close()
        b.close()


def test_a_panorama_photo_gets_room_to_be_reviewed(tmp_path):
    """A 3000×200 photo was shown 832×55 px: the labels of boxes at its top covered the faces, and a zoom had
    55 px of height to fill. It is letterboxed in a taller canvas, its labels in the band above."""
    import cv2

    p = tmp_path / "pano.jpg"
    img = np.full((200, 3000, 3), 110, np.uint8)
    img[::12] = 80
    cv2.imwrite(str(p), img)
    w = Workbench(p)
    try:
        vp = w.model.viewport
        x, y, iw, ih = vp.image_rect()
        assert (iw, ih) == (832, 55)  # the whole picture still fits across
        assert vp.canvas_h >= 4 * ih and y > 16  # letterboxed, with a label's line of room above it
        for k in range(6):
            w.model.draw_box((40 + 300 * k, 5, 140 + 300 * k, 105))  # faces at the picture's top edge
        w.model.select(None)
        assert len(w.drawn["boxes"]) == 6
        for b in w.drawn["boxes"]:
            x1, y1, x2, y2 = b["canvas"]
            assert not _overlap(b["label"], (x1, y1, x2 - x1, y2 - y1)), b
        w.model.viewport.zoom_at(5, vp.canvas_w / 2, vp.canvas_h / 2)
        assert w.model.viewport.image_rect()[3] >= vp.canvas_h  # zoomed in, the picture fills the canvas
    finally:
        w.close()


def test_frames_not_settled_are_hidden_whole_in_the_masked_view_during_a_first_analysis(wb):
    """A newcomer scrubbed during the analysis: at 80 of 100 frames no frame had settled (the tracker settles a
    frame a few seconds after reading it), and the masked view showed a bare face while the status said "the
    first ones show their regions already". Frames without their regions yet are hidden whole."""
    from anonlab.regions import Regions

    m = wb.model
    assert m.show_masked and not wb.case.analysed
    m.seek(12)
    plain = m.picture().astype(float)
    m.set_provisional(Regions.empty(), settled=10)
    assert m.unsettled() and not m.unsettled(9)
    hidden = m.picture().astype(float)
    assert hidden.std() < 0.5 * plain.std()  # the whole picture masked
    m.seek(5)
    assert np.array_equal(m.picture(), m.source.view(5, m.viewport))  # settled, nothing found: as it is
    m.set_provisional(None)
    m.seek(12)
    assert np.array_equal(m.picture(), m.source.view(12, m.viewport))


def test_an_error_asking_for_a_name_goes_when_the_name_is_typed(wb, tmp_path):
    """"export failed: type your name under 'analyst' first" stayed in red after the name was typed."""
    wb.case.allow_without_analysis("whole_frames", "Ann")
    wb.export_path.value = str(tmp_path / "o.mp4")
    wb.analyst.value = ""
    assert wb.export() is None
    assert "type your name" in wb.status_msg.value
    wb.analyst.value = "Ann Analyst"
    assert "type your name" not in wb.status_msg.value


def test_the_masked_view_hides_the_picture_from_the_moment_an_analysis_starts(wb):
    """The browser's screenshot of a starting analysis showed the faces bare under "masked": nothing was hidden
    until the first progress report."""
    gate = threading.Event()

    def slow(path, settings=None, **kwargs):
        gate.wait(30)
        return fake_analysis(path, settings)

    job = wb.analyse(analyse=slow)
    try:
        assert wb.model.unsettled(0)
    finally:
        gate.set()
        job.join(30)


def test_a_folder_of_photos_says_which_are_exported(tmp_path):
    """A newcomer exported three photos of four and left the fourth without an output: nothing on the page said
    which were done."""
    import cv2

    from test_widgets_view import moving_square

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"p{i}.jpg"), moving_square(i))
    cv2.imwrite(str(tmp_path / "p1_anonymized.jpg"), moving_square(1))  # exported earlier
    fw = Workbench(tmp_path)
    assert "1 of 3 photo(s) exported; not yet: p0.jpg, p2.jpg" in fw.progress.value
    cv2.imwrite(str(tmp_path / "p0_anonymized.jpg"), moving_square(0))
    fw.next_button.click()  # checked again when a photo is opened
    assert "2 of 3 photo(s) exported; not yet: p2.jpg" in fw.progress.value
    fw.current.close()
