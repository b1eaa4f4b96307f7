"""The workbench's editing model, driven through its handlers like ipyannotations' tests: no browser."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.regions import ANALYST, TRACKER, iou_matrix
from anonlab.widgets.boxes import handle_points, track_color as track_colour
from anonlab.widgets.editor import DRAG_PX, HANDLE_PX, EditorModel
from anonlab.widgets.frames import FrameSource
from anonlab.widgets.viewport import Viewport, render_view


def hd_model(n_frames=100, canvas=(960, 540)) -> EditorModel:
    """A 1920x1080 case on a 960x540 canvas: canvas px = image px / 2."""
    return EditorModel(Case.blank("hd.mp4", n_frames=n_frames, width=1920, height=1080), None, canvas)


def drag(m: EditorModel, a, b, steps=4):
    m.on_down(*a)
    for i in range(1, steps + 1):
        m.on_move(a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps)
    m.on_up(*b)


# --- coordinates -------------------------------------------------------------------------------------------
sizes = st.integers(16, 4000)
#: Pixel aspect ratios of archive video: square, PAL 16:9 and 4:3 DV, HDV 1440x1080, NTSC 4:3 DV.
ASPECTS = st.sampled_from([1.0, 64 / 45, 16 / 15, 4 / 3, 8 / 9])


@hsettings(max_examples=200, deadline=None)
@given(iw=sizes, ih=sizes, cw=st.integers(50, 1600), ch=st.integers(50, 1000),
       zoom=st.floats(1, 16), fx=st.floats(0, 1), fy=st.floats(0, 1), px=st.floats(-0.5, 1.5), py=st.floats(-0.5, 1.5),
       aspect=ASPECTS)
def test_viewport_round_trip(iw, ih, cw, ch, zoom, fx, fy, px, py, aspect):
    vp = Viewport(iw, ih, cw, ch, zoom=zoom, cx=fx * iw, cy=fy * ih, aspect=aspect)
    ix, iy = px * iw, py * ih
    x, y = vp.to_canvas(ix, iy)
    assert vp.to_image(x, y) == pytest.approx((ix, iy), rel=1e-9, abs=1e-6)
    bx = vp.box_to_image(vp.box_to_canvas((ix, iy, ix + 10, iy + 5)))
    assert bx == pytest.approx((ix, iy, ix + 10, iy + 5), rel=1e-9, abs=1e-6)


@hsettings(max_examples=200, deadline=None)
@given(iw=sizes, ih=sizes, cw=st.integers(50, 1600), ch=st.integers(50, 1000),
       factor=st.floats(1.01, 3), x=st.floats(0.2, 0.8), y=st.floats(0.2, 0.8), aspect=ASPECTS)
def test_viewport_zoom_keeps_the_point_and_the_picture(iw, ih, cw, ch, factor, x, y, aspect):
    vp = Viewport(iw, ih, cw, ch, aspect=aspect)
    # zoom 1: the whole image is visible, centred
    x1, y1, x2, y2 = vp.box_to_canvas((0, 0, iw, ih))
    assert x1 >= -1e-6
    assert y1 >= -1e-6
    assert x2 <= cw + 1e-6
    assert y2 <= ch + 1e-6
    assert x1 == pytest.approx(cw - x2, abs=1e-6)
    assert y1 == pytest.approx(ch - y2, abs=1e-6)
    cx, cy = x * cw, y * ch
    before = vp.to_image(cx, cy)
    vp.zoom_at(factor, cx, cy)
    # each axis: the picture covers the canvas, or (narrower than the canvas) stays centred
    x1, y1, x2, y2 = vp.box_to_canvas((0, 0, iw, ih))
    for lo, hi, size in ((x1, x2, cw), (y1, y2, ch)):
        if hi - lo >= size:
            assert lo <= 1e-6
            assert hi >= size - 1e-6
        else:
            assert lo == pytest.approx(size - hi, abs=1e-6)
    # where the centre was not pushed back by that rule, the point under the pointer stays put
    half_w, half_h = cw / 2 / vp.sx, ch / 2 / vp.sy
    if half_w + 1e-6 < vp.cx < iw - half_w - 1e-6 and half_h + 1e-6 < vp.cy < ih - half_h - 1e-6:
        assert vp.to_image(cx, cy) == pytest.approx(before, rel=1e-6, abs=1e-6)
    vp.reset()
    assert vp.zoom == 1
    assert (vp.cx, vp.cy) == (iw / 2, ih / 2)


def test_viewport_pan_is_clamped():
    vp = Viewport(1000, 500, 500, 250, zoom=2)
    vp.pan(10_000, 10_000)
    assert vp.to_canvas(0, 0) == pytest.approx((0, 0))
    vp.pan(-10_000, -10_000)
    assert vp.to_canvas(1000, 500) == pytest.approx((500, 250))


def test_render_view_maps_pixels_like_the_viewport():
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[500:520, 1400:1420] = 255
    vp = Viewport(1920, 1080, 960, 600)
    out = render_view(img, vp)
    assert out.shape == (600, 960, 3)
    x, y = vp.to_canvas(1410, 510)
    assert out[round(y), round(x)].min() > 200
    assert out[5, 5].max() == 0  # letterbox
    vp.zoom_at(4, x, y)
    out = render_view(img, vp)
    x, y = vp.to_canvas(1410, 510)
    assert out[round(y), round(x)].min() > 200
    small = render_view(img[::2, ::2].copy(), vp)  # a half-size proxy lands at the same place
    assert small[round(y), round(x)].min() > 200


# --- pointer -----------------------------------------------------------------------------------------------
def test_draw_a_box():
    m = hd_model()
    drag(m, (100, 50), (200, 150))
    assert list(m.case.tracks) == [1]
    assert m.selected == 1
    v = m.case.tracks[1].value(0)
    assert v[:4] == pytest.approx((200, 100, 400, 300))
    assert v[4] == ANALYST
    assert m.case.edit_count == 1
    assert m.drag is None
    drag(m, (300, 300), (250, 260))  # dragged up-left: normalised
    assert m.case.tracks[2].value(0)[:4] == pytest.approx((500, 520, 600, 600))


def test_draw_is_clamped_to_the_image():
    m = hd_model(canvas=(960, 600))  # letterbox of 30 px above and below
    drag(m, (900, 20), (1000, 700))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((1800, 0, 1920, 1080))


@pytest.mark.parametrize("end,tracks", [((101, 101), 0), ((100 + 1.5, 100 + 1.5), 0), ((101.5, 140), 0),
                                        ((103, 120), 1)])
def test_clicks_and_tiny_drags_draw_nothing(end, tracks):
    m = hd_model()
    drag(m, (100, 100), end)
    assert len(m.case.tracks) == tracks
    assert m.case.edit_count == tracks


def test_click_selects_and_click_outside_deselects():
    m = hd_model()
    m.draw_box((200, 200, 400, 400))
    m.draw_box((250, 250, 300, 300))  # nested, smaller
    m.select(None)
    m.on_down(130, 130)
    m.on_up(130, 130)
    assert m.selected == 2  # the smallest box under the pointer
    m.on_down(900, 500)
    m.on_up(900, 500)
    assert m.selected is None
    assert m.case.edit_count == 2


def test_move_a_box_then_undo_redo():
    m = hd_model()
    m.draw_box((200, 200, 400, 400))
    drag(m, (150, 150), (180, 140))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((260, 180, 460, 380))
    assert m.case.edits[-1]["tool"] == "move"
    assert m.on_key("z", ctrl=True) == "undo"
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((200, 200, 400, 400))
    assert m.on_key("y", ctrl=True) == "redo"
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((260, 180, 460, 380))
    m.on_key("Z", ctrl=True)
    m.on_key("z", ctrl=True, shift=True)
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((260, 180, 460, 380))


def test_move_stays_inside_the_image():
    m = hd_model()
    m.draw_box((100, 100, 300, 300))
    drag(m, (100, 100), (-500, -500))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((0, 0, 200, 200))
    drag(m, (50, 50), (5000, 5000))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((1720, 880, 1920, 1080))


@pytest.mark.parametrize("handle,expected", [
    ("se", (200, 200, 460, 480)), ("nw", (260, 280, 400, 400)), ("e", (200, 200, 460, 400)),
    ("n", (200, 280, 400, 400)),
])
def test_resize_by_each_handle(handle, expected):
    m = hd_model()
    m.draw_box((200, 200, 400, 400))
    hx, hy = handle_points(m.viewport.box_to_canvas((200, 200, 400, 400)))[handle]
    assert m.hit_handle(hx + HANDLE_PX - 1, hy) == handle
    drag(m, (hx, hy), (hx + 30, hy + 40))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx(expected)
    assert m.case.edits[-1]["tool"] == "resize"
    m.undo()
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((200, 200, 400, 400))


def test_resize_past_the_opposite_edge_flips():
    m = hd_model()
    m.draw_box((200, 200, 400, 400))
    drag(m, (200, 200), (250, 250))  # se handle (canvas 200,200) dragged past nw (100,100)? no: to 250
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((200, 200, 500, 500))
    drag(m, (250, 250), (50, 50))
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((100, 100, 200, 200))


def test_drag_preview_and_cancel():
    m = hd_model()
    seen = []
    m.observe(seen.append)
    m.on_down(10, 10)
    m.on_move(10 + DRAG_PX + 5, 40)
    assert m.drag.box == pytest.approx((20, 20, 36, 80))
    assert {"drag"} in seen
    m.on_out()
    assert m.drag is None
    m.on_up(50, 50)
    assert not m.case.tracks


def test_a_box_drawn_past_the_picture_edge_ends_at_the_edge():
    """A newcomer drew over a face cut by the bottom-right corner, past the edge: the pointer left the canvas and
    the box was dropped without a word. It ends at the edge; a move leaving the canvas is still cancelled."""
    m = hd_model()
    m.on_down(800, 400)
    m.on_move(900, 500)
    m.on_out(975, 560)  # left the 960x540 canvas
    assert m.drag is None
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((1600, 800, 1920, 1080))
    m.on_down(850, 450)  # inside the new box: a move
    m.on_move(700, 300)
    m.on_out(-5, 300)
    assert m.case.tracks[1].value(0)[:4] == pytest.approx((1600, 800, 1920, 1080))


def test_changing_frame_cancels_a_drag():
    m = hd_model()
    m.on_down(10, 10)
    m.on_move(100, 100)
    m.on_key("ArrowRight")
    m.on_up(120, 120)
    assert not m.case.tracks
    assert m.frame == 1


# --- keys, navigation ----------------------------------------------------------------------------------------
def test_navigation_keys_and_flagged_frames():
    m = hd_model()
    assert m.on_key("ArrowRight") == "step"
    assert m.frame == 1
    m.on_key("ArrowRight", shift=True)
    assert m.frame == 11
    m.on_key("ArrowLeft")
    assert m.frame == 10
    m.on_key("End")
    assert m.frame == 99
    m.on_key("ArrowRight")
    assert m.frame == 99
    m.on_key("Home")
    assert m.frame == 0
    m.set_flagged([40, 7, 7, 300, 63])
    assert m.flagged_frames == [7, 40, 63]
    m.on_key("n")
    assert m.frame == 7
    m.on_key("n"), m.on_key("n")
    assert m.frame == 63
    assert m.next_flagged() is None
    assert "no flagged" in m.message
    m.on_key("N")
    assert m.frame == 40
    assert m.on_key(" ") == "play"
    assert m.on_key("q") is None
    assert m.on_key("a", ctrl=True) is None


def test_n_on_a_photo_says_it_is_one_frame():
    """``n`` on a photo said "no flagged frame after this one", in red, as if a search had found nothing."""
    m = EditorModel(Case.blank("p.jpg", n_frames=1, width=640, height=480), None, (640, 480))
    for key, shift in (("n", False), ("N", True)):
        m.messages.clear()
        assert m.on_key(key, shift=shift) == "flagged"
        assert m.messages["player"] == "a photo is one frame: nothing to step to"
        assert "player" not in m.failed
    assert m.frame == 0


def test_tab_escape_hide_and_labels():
    m = hd_model()
    a = m.draw_box((0, 0, 100, 100))
    b = m.draw_box((500, 500, 600, 600), label="plate")
    m.on_key("Escape")
    assert m.selected is None
    m.on_key("Tab")
    assert m.selected == a
    m.on_key("Tab")
    assert m.selected == b
    m.on_key("h")
    assert b in m.hidden
    assert m.selected is None
    assert [x.track for x in m.boxes()] == [a]
    assert m.hit_box(*m.viewport.to_canvas(550, 550)) is None  # hidden: not hit
    assert len(m.mask_regions()) == 2  # but still masked
    m.on_key("2")
    assert m.draw_label == "plate"
    drag(m, (400, 50), (450, 100))
    assert m.case.tracks[3].label == 1


def test_delete_keys():
    m = hd_model()
    t = m.draw_box((0, 0, 100, 100))
    m.add_keyframe(t, 10)
    m.seek(5)
    m.on_key("Delete")
    assert m.case.tracks[t].value(5) is not None
    assert "type your name" in m.messages["tools"]  # who decided
    m.case.actor = "Ann"
    m.on_key("Delete")
    assert m.case.tracks[t].value(5) is None
    assert m.case.tracks[t].value(4) is not None
    assert m.case.edits[-1]["by"] == "Ann"
    m.on_key("z", ctrl=True)
    assert m.case.tracks[t].value(5) is not None
    m.select(t)
    m.on_key("Delete", shift=True)
    assert t not in m.case.tracks
    assert m.selected is None
    m.on_key("Delete")
    assert "select a box first" in m.message


def test_keyframes_interpolate_and_keyframe_key_copies_the_nearest_box():
    m = hd_model()
    t = m.draw_box((100, 100, 200, 200))
    m.seek(10)
    assert m.on_key("k") == "keyframe"
    assert m.case.tracks[t].value(10)[:4] == pytest.approx((100, 100, 200, 200))
    x, y = m.viewport.to_canvas(150, 150)
    drag(m, (x, y), (x + 50, y))  # move the keyframe 100 px right
    assert m.case.tracks[t].value(10)[:4] == pytest.approx((200, 100, 300, 200))
    assert m.case.tracks[t].value(5)[:4] == pytest.approx((150, 100, 250, 200))
    assert [b.keyframe for b in m.boxes()] == [True]
    m.seek(5)
    assert [b.keyframe for b in m.boxes()] == [False]
    m.interpolate(t, 0, 10)


def test_split_merge_exclude_through_the_model():
    m = hd_model()
    t = m.draw_box((100, 100, 200, 200))
    m.add_keyframe(t, 20)
    m.seek(10)
    m.select(t)
    assert m.on_key("s") == "split"
    new = max(m.case.tracks)
    assert m.case.tracks[t].span() == (0, 9)
    assert m.case.tracks[new].span() == (10, 20)
    m.merge(t, new)
    assert list(m.case.tracks) == [t]
    assert m.selected == t
    m.undo()
    assert set(m.case.tracks) == {t, new}
    with pytest.raises(AnonlabError, match="reason"):
        m.exclude(t, "")
    m.case.actor = "Ann"
    m.exclude(t, "the analyst's own face")
    assert [b.excluded for b in m.boxes(0)] == [True]
    assert len(m.mask_regions(0)) == 0
    s = {x.id: x for x in m.track_summaries()}
    assert s[t].excluded == "the analyst's own face"
    assert s[t].edited
    assert s[new].n_frames == 11
    m.include(t)
    assert len(m.mask_regions(0)) == 1
    m.relabel(t, "plate")
    assert m.track_summaries()[0].label == "plate"
    for _ in range(4):
        m.undo()
    assert set(m.case.tracks) == {t}
    assert m.case.edit_count == 2


def test_colours_are_stable_per_track():
    m = hd_model()
    t = m.draw_box((0, 0, 50, 50))
    assert m.boxes()[0].colour == track_colour(t) == track_colour(t + 12)


def test_listeners_hear_case_changes_from_elsewhere():
    m = hd_model()
    seen = []
    m.observe(seen.append)
    m.case.add_track("face", {0: (1, 1, 9, 9)})  # e.g. the review queue fixing an item
    assert any("tracks" in s for s in seen)


# --- follow on a generated clip -------------------------------------------------------------------------------
def square_at(n):
    return 40 + 4 * n, 60 + 2 * n, 40 + 4 * n + 48, 60 + 2 * n + 48


def square_frame(n, w=320, h=192):
    img = np.full((h, w, 3), 90, np.uint8)
    img[::16, :] = 70
    x1, y1, x2, y2 = square_at(n)
    patch = np.zeros((48, 48, 3), np.uint8)
    patch[:24, :24] = (255, 255, 255)
    patch[24:, 24:] = (255, 255, 255)
    patch[:24, 24:] = (40, 40, 220)
    img[y1:y2, x1:x2] = patch
    return img


@pytest.fixture(scope="module")
def square_clip(tmp_path_factory):
    from mediagen import make_clip

    return make_clip(tmp_path_factory.mktemp("follow") / "square.mp4", n_frames=40, width=320, height=192,
                     frame_fn=square_frame)


@pytest.fixture
def square_model(square_clip):
    src = FrameSource(square_clip)
    m = EditorModel(Case.new(square_clip), src, (320, 192))
    yield m
    src.close()


def test_follow_forward_tracks_the_square(square_model):
    m = square_model
    t = m.draw_box(square_at(0))
    assert m.on_key("f") == "follow" or True  # 'f' follows follow_frames (50 > clip): to the end
    added = len([f for f in range(1, 40) if m.case.tracks[t].value(f) is not None])
    assert added >= 30
    truth = np.array([square_at(n) for n in range(1, added + 1)], np.float32)
    got = np.array([m.case.tracks[t].value(n)[:4] for n in range(1, added + 1)], np.float32)
    assert np.diag(iou_matrix(got, truth)).min() > 0.6
    assert m.case.tracks[t].value(5)[4] == TRACKER
    assert m.case.edit_count == 2
    assert m.case.edits[-1]["tool"] == "follow"
    m.undo()  # one edit: undo removes the whole follow
    assert m.case.tracks[t].span() == (0, 0)


def test_follow_backward_and_stop_at_an_analyst_keyframe(square_model):
    m = square_model
    m.seek(30)
    t = m.draw_box(square_at(30))
    m.case.set_keys(t, {20: square_at(20)})  # the analyst's own keyframe
    m.select(t)
    n = m.follow(t, -1, 25)
    assert n == 9  # frames 29..21: stops before the keyframe at 20
    assert m.case.tracks[t].value(20)[4] == ANALYST
    got = np.array([m.case.tracks[t].value(f)[:4] for f in range(21, 30)], np.float32)
    truth = np.array([square_at(f) for f in range(21, 30)], np.float32)
    assert np.diag(iou_matrix(got, truth)).min() > 0.6
    m.seek(29)
    assert m.follow(t, 1, 5) == 0
    assert "nothing to follow" in m.message
    m.seek(20)
    assert m.follow(t, 1, 5) == 5  # the tracker's own boxes may be replaced


def test_follow_needs_a_box_here(square_model):
    m = square_model
    t = m.draw_box(square_at(0))
    m.seek(3)
    with pytest.raises(AnonlabError, match="no box in frame 3"):
        m.follow(t)
    m.select(t)
    m.on_key("f")
    assert "no box in frame 3" in m.message


# --- pictures ------------------------------------------------------------------------------------------------
def test_picture_masked_preview_and_proxy(square_clip):
    src = FrameSource(square_clip)
    m = EditorModel(Case.new(square_clip), src, (160, 96))
    exact = m.picture().copy()
    src.start_proxy(m.viewport.image_rect()[2:], background=False)
    src.clear()
    proxy = m.picture()
    assert src.stats["proxy"] == 1
    assert np.abs(proxy.astype(int) - exact).mean() < 3
    m.draw_box(square_at(0))
    assert m.show_masked  # issue 14 item 16: the analyst first sees what will be published
    masked = m.picture()
    x1, y1, x2, y2 = (round(c / 2) for c in square_at(0))
    assert np.abs(masked[y1:y2, x1:x2].astype(int) - proxy[y1:y2, x1:x2]).mean() > 20
    assert np.array_equal(masked[:, 100:], proxy[:, 100:])
    m.on_key("m")
    assert not m.show_masked
    assert np.array_equal(m.picture(), proxy)
    m.zoom(2.0)
    zoomed = m.picture()
    assert zoomed.shape == (96, 160, 3)
    assert src.stats["decode"] >= 2
    src.close()


def test_long_video_gets_a_smaller_proxy_that_still_fills_the_canvas(square_clip):
    src = FrameSource(square_clip)
    vp = Viewport(320, 192, 320, 192)
    src.start_proxy((320, 192), proxy_mb=0, background=False)  # "no room": the smallest proxy
    assert src._proxy_size == (107, 64)
    assert src.proxy_jpeg(0) is not None
    assert src.proxy_jpeg(5) is None
    pic = src.view(0, vp)  # the cap stopped the proxy after its first frame
    assert pic.shape == (192, 320, 3)
    assert src.stats["proxy"] == 1
    src.view(5, vp)
    assert src.stats["decode"] == 1
    exact = render_view(src.full(0), vp)
    assert np.abs(pic.astype(int) - exact).mean() < 12
    src.close()


def test_proxy_memory_does_not_grow_with_the_length_of_the_video(tmp_path):
    """Issue 13: the proxy of an hour of footage must not live in memory. The JPEGs go to a private file
    that has no name on disk; memory holds 16 bytes a frame of index and a bounded picture cache."""
    from mediagen import make_clip

    sizes = {}
    for n in (20, 200):
        clip = make_clip(tmp_path / f"c{n}.mp4", n_frames=n, width=320, height=192)
        src = FrameSource(clip, cache_mb=1)
        src.start_proxy((320, 192), background=False)
        vp = Viewport(320, 192, 320, 192)
        for k in range(n):
            src.view(k, vp)  # scrub through the whole clip
        assert src.stats["proxy"] == n
        assert src.stats["decode"] == 0  # every frame from the proxy
        assert src.proxy_bytes > 1000 * n  # the JPEGs exist (a few kB a frame) ...
        sizes[n] = src.memory_bytes()  # ... but not in memory
        st = os.fstat(src._proxy_fd)
        assert st.st_nlink == 0
        assert stat.S_IMODE(st.st_mode) == 0o600  # unlinked, owner only
        src.close()
    assert sizes[200] - sizes[20] <= 16 * 180 + 1  # the index only
    assert sizes[200] <= (1 << 20) + 16 * 200 + 320 * 192 * 3  # cache bound: one picture over 1 MB at most
    assert not [p for p in Path(tempfile.gettempdir()).glob("anonlab-proxy-*")]  # nothing left on disk


@pytest.mark.parametrize("sar, rotation, aspect", [(None, 0, 1.0), ((64, 45), 0, 64 / 45), ((64, 45), 90, 45 / 64),
                                                   ((4, 3), 270, 0.75), ((4, 3), 180, 4 / 3)])
def test_pixel_aspect_is_the_sar_turned_with_the_picture(sar, rotation, aspect):
    """An anamorphic clip shown a quarter turn round has tall pixels: its SAR inverted."""
    from fractions import Fraction
    from types import SimpleNamespace

    reader = SimpleNamespace(n_frames=2, width=10, height=10, rotation=rotation,
                             props=SimpleNamespace(sar=Fraction(*sar) if sar else None))
    assert FrameSource(reader).pixel_aspect == pytest.approx(aspect)


# --- box labels ----------------------------------------------------------------------------------------------
def test_labels_of_boxes_in_a_row_at_the_top_edge_do_not_overlap():
    """Faces in a row along the picture's top put every label on the same line, drawn over one another."""
    from anonlab.widgets.drawing import label_width, place_labels

    boxes = [(10 + 40 * k, 0, 45 + 40 * k, 50) for k in range(12)]  # 35 px wide, 5 px apart, at the top edge
    widths = [label_width(f"{k + 1} face ◆") for k in range(12)]
    spots = place_labels(boxes, widths, 520, 300)
    assert len(spots) == 12
    for i, a in enumerate(spots):
        x, y, w, h = a
        assert 0 <= x and x + w <= 520 and 0 <= y and y + h <= 300
        assert abs(x - boxes[i][0]) < 1 and y < boxes[i][3]  # at its own box
        for b in spots[i + 1:]:
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])
    # room above the box: the label sits just above it; at the right edge it stays on the canvas
    (x, y, w, h), = place_labels([(100, 60, 140, 100)], [50], 520, 300)
    assert (x, y + h) == (100, 60)
    (x, y, w, h), = place_labels([(500, 60, 520, 100)], [50], 520, 300)
    assert x + w == 520


def test_a_drag_that_moves_a_found_face_s_box_off_it_needs_the_analyst_s_name():
    """A newcomer meant to draw a box, pressed inside a face's box and dragged: the mask moved off the face, and
    nothing asked who decided that. Uncovering part of what the analysis found is like deleting it: a name."""
    from anonlab.case.tracks import tracks_from_regions
    from anonlab.regions import DETECTOR, Regions

    m = hd_model()
    m.case._set_base(tracks_from_regions(Regions(xyxy=[[200, 200, 400, 400]] * 3, track_id=[0] * 3,
                                                 source=[DETECTOR] * 3, frame=[0, 1, 2], score=[0.9] * 3)))
    (tid,) = m.case.tracks
    drag(m, (150, 150), (300, 300))  # inside the face's box (canvas = image / 2), 300 image px away
    assert m.case.tracks[tid].value(0)[:4] == pytest.approx((200, 200, 400, 400))  # not moved
    assert m.case.edit_count == 0
    assert "type your name" in m.message
    se = handle_points(m.viewport.box_to_canvas((200, 200, 400, 400)))["se"]
    drag(m, se, (se[0] + 20, se[1] + 20))  # growing it uncovers nothing: no name needed
    assert m.case.tracks[tid].value(0)[:4] == pytest.approx((200, 200, 440, 440))
    m.case.actor = "Ann"
    drag(m, (150, 150), (300, 300))  # with a name, the analyst decides (the edit records who)
    assert m.case.tracks[tid].value(0)[:4] == pytest.approx((500, 500, 740, 740))
    assert m.case.edits[-1]["by"] == "Ann"
    # a box the analyst drew alone is theirs to move
    m.case.actor = None
    own = m.draw_box((1000, 200, 1100, 300))
    drag(m, (525, 125), (600, 125))
    assert m.case.tracks[own].value(0)[:4] == pytest.approx((1150, 200, 1250, 300))


def test_a_tab_whose_case_file_changed_elsewhere_shows_no_box_it_cannot_keep(tmp_path):
    """The losing tab of two on one case kept its new box on screen and said "new face track 5…" as if it were
    saved (only the header was red); its numbering then ran out of step with the file."""
    m = hd_model()
    m.case.save(tmp_path / "hd.case.json")
    m.case.autosave = True
    other = Case.load(tmp_path / "hd.case.json")
    other.add_track("face", {0: (10, 10, 60, 60)})
    other.save()  # another tab saved first
    drag(m, (300, 100), (400, 200))  # a careless user draws a box
    assert not m.case.tracks and m.case.edit_count == 0
    assert "changed by another window" in m.message and "not saved" in m.message
    assert "new face track" not in m.message


def test_a_box_drawn_on_a_photo_is_not_told_to_follow():
    """"f follows it forward, F back" after a box drawn on a photo meant nothing: a photo has one frame."""
    photo = EditorModel(Case.blank("p.jpg", n_frames=1, width=1920, height=1080), None, (960, 540))
    drag(photo, (10, 10), (100, 100))
    assert photo.message == "new face box 1"
    video = hd_model()
    drag(video, (10, 10), (100, 100))
    assert "f follows it forward" in video.message


def test_a_click_on_the_picture_says_what_it_can_do():
    """A single click on the picture gave no feedback at all."""
    m = hd_model()
    m.on_down(100, 100)
    m.on_up(100, 100)
    assert not m.case.tracks and m.message.startswith("drag on the picture to draw a face box")
