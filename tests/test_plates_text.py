"""Plates at every scale and the text detector: DB post-processing, line grouping, two-line plate blocks,
the gain of a model pass, the merge of the three sources, and real-model runs on drawn plates (a close-up
plate 800 px wide, a small two-line plate) and on a plate-free scene."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from anonlab.detect import plates as plm
from anonlab.detect.plates import MultiScalePlates, PlateDetector, letterbox, plate_blocks, tile_windows
from anonlab.detect.text import TextDetector, count_rows, db_boxes, group_lines, network_size, quad_boxes, unclip_rect
from anonlab.regions import PLATE, iou_matrix, ios_matrix


def rect_quad(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


# --- DB post-processing ----------------------------------------------------------------------------


def test_unclip_grows_by_area_times_ratio_over_perimeter():
    (cx, cy), (w, h), angle = unclip_rect(((50.0, 20.0), (40.0, 10.0), 0.0), ratio=1.6)
    d = 40 * 10 * 1.6 / (2 * (40 + 10))  # 6.4 px on every side
    assert (cx, cy, angle) == (50.0, 20.0, 0.0)
    assert w == pytest.approx(40 + 2 * d)
    assert h == pytest.approx(10 + 2 * d)


def test_db_boxes_finds_a_text_core_and_grows_it():
    prob = np.zeros((64, 128), np.float32)
    prob[20:30, 30:90] = 0.9  # a core 60×10 px
    quads, scores = db_boxes(prob, thresh=0.5)
    # the score averages the rectangle of the dilated core, whose 1-px rim is 0: a little under 0.9
    assert quads.shape == (1, 4, 2)
    assert 0.7 < scores[0] < 0.9
    box, heights = quad_boxes(quads)
    # the core's rectangle (pixel centres of its outline) is 60×10 around (60, 25); grown by
    # 60*10*1.6/(2*70) ≈ 6.86 px a side
    d = 60 * 10 * 1.6 / 140
    assert box[0] == pytest.approx([60 - 30 - d, 25 - 5 - d, 60 + 30 + d, 25 + 5 + d], abs=1.0)
    assert heights[0] == pytest.approx(10 + 2 * d, abs=1.0)


@pytest.mark.parametrize("value, size, thresh, found", [
    (0.9, (10, 60), 0.5, 1),    # a line
    (0.45, (10, 60), 0.5, 0),   # above the binarisation threshold, below the box threshold
    (0.25, (10, 60), 0.1, 0),   # below the binarisation threshold: nothing to score
    (0.9, (2, 60), 0.5, 0),     # thinner than DB's minimum core: noise
])
def test_db_boxes_thresholds(value, size, thresh, found):
    prob = np.zeros((64, 128), np.float32)
    prob[20 : 20 + size[0], 30 : 30 + size[1]] = value
    quads, scores = db_boxes(prob, thresh=thresh)
    assert len(quads) == len(scores) == found


def test_network_size_never_enlarges_and_rounds_to_32():
    assert network_size(1920, 1080, 960) == (960, 544)
    assert network_size(416, 233, 960) == (416, 224)
    assert network_size(10, 10, 960) == (32, 32)
    w, h = network_size(3065, 2022, 1280)
    assert w % 32 == h % 32 == 0
    assert w <= 1280


# --- grouping lines into blocks --------------------------------------------------------------------


def test_group_lines_joins_stacked_lines_and_words_not_distant_text():
    boxes = np.array([
        [100, 100, 160, 120],   # top line of a two-line plate
        [95, 124, 170, 146],    # its bottom line, 4 px below
        [175, 124, 200, 146],   # a word beside the bottom line, 5 px away
        [400, 100, 460, 120],   # another label far away
        [100, 300, 400, 400],   # a huge headline below: heights differ > 3×
    ], np.float32)
    heights = boxes[:, 3] - boxes[:, 1]
    block = group_lines(boxes, heights)
    assert block[0] == block[1] == block[2]
    assert len({block[0], block[3], block[4]}) == 3
    assert group_lines(np.zeros((0, 4)), np.zeros(0)).shape == (0,)


def test_count_rows():
    assert count_rows(np.array([[0, 0, 50, 10], [60, 1, 90, 11]])) == 1
    assert count_rows(np.array([[0, 0, 50, 10], [0, 14, 50, 24], [0, 28, 50, 38]])) == 3


@pytest.mark.parametrize("lines, kept", [
    ([(100, 100, 160, 125), (95, 128, 170, 155)], True),                 # two-line plate, aspect ≈ 1.4
    ([(100, 100, 300, 130)], False),                                     # one line: the plate model's job
    ([(100, 100 + 30 * i, 160, 125 + 30 * i) for i in range(5)], False),  # a paragraph of 5 rows
    ([(100, 100, 400, 115), (100, 118, 400, 133)], False),               # two long rows: aspect 10, a banner
])
def test_plate_blocks(lines, kept):
    quads = np.stack([rect_quad(*b) for b in lines])
    xyxy, score = plate_blocks(quads, np.full(len(lines), 0.8, np.float32))
    assert len(xyxy) == int(kept)
    if kept:
        np.testing.assert_allclose(xyxy[0], [95, 100, 170, 155])
        assert score[0] == pytest.approx(0.8)


# --- a model pass at a chosen gain -----------------------------------------------------------------


class FakeSession:
    def __init__(self, output_for, input_shape):
        self.output_for, self.input_shape, self.inputs = output_for, input_shape, []

    def run(self, names, feeds):
        (blob,) = feeds.values()
        self.inputs.append(blob)
        return [self.output_for(blob)]

    def get_inputs(self):
        shape = self.input_shape

        class I:  # noqa: N801
            name = "images"

        I.shape = shape
        return [I()]


def fake_plate_detector(input_shape, box_in_input):
    """A PlateDetector whose model 'finds' one box given in network input pixels (cx, cy, w, h)."""
    det = PlateDetector.__new__(PlateDetector)
    plm.Detector.__init__(det, 0.4)
    det.grayscale, det.models, det.name = True, [], "fake"
    out = np.zeros((1, 5, 1), np.float32)
    out[0, :, 0] = [*box_in_input, 0.9]
    det.session = FakeSession(lambda blob: out, input_shape)
    det.input_name = "images"
    h, w = input_shape[2], input_shape[3]
    det.input_size = (w, h) if isinstance(w, int) else None
    return det


def test_dynamic_model_runs_at_the_gain_asked_and_maps_back():
    # 1280×720 frame at gain 1/3: 427×240 → input padded to 448×256, image centred (pad 10, 8).
    det = fake_plate_detector([1, 3, "height", "width"], (10 + 100, 8 + 50, 60, 20))
    xyxy, score = det.raw(np.zeros((720, 1280, 3), np.uint8), 0.4, gain=1 / 3)
    assert det.session.inputs[-1].shape == (1, 3, 256, 448)
    np.testing.assert_allclose(xyxy, [[(100 - 30) * 3, (50 - 10) * 3, (100 + 30) * 3, (50 + 10) * 3]], atol=2)
    assert score.tolist() == pytest.approx([0.9])


def test_fixed_model_keeps_its_size_and_refuses_a_gain_that_does_not_fit():
    det = fake_plate_detector([1, 3, 736, 1280], (640, 368, 60, 20))
    det.raw(np.zeros((720, 1280, 3), np.uint8), 0.4, gain=0.5)
    assert det.session.inputs[-1].shape == (1, 3, 736, 1280)
    with pytest.raises(ValueError, match="does not fit"):
        letterbox(np.zeros((720, 1280, 3), np.uint8), (1280, 736), gain=1.5)


def test_fuse_views_weights_the_better_view_and_drops_boxes_under_threshold():
    plate = [100, 100, 300, 200]
    fused = plm.fuse_views((np.array([plate], np.float32), np.array([0.9], np.float32)),
                           (np.array([[104, 98, 304, 204], [900, 500, 950, 520]], np.float32),
                            np.array([0.7, 0.3], np.float32)), thresh=0.4)
    assert len(fused) == 1
    assert fused.score[0] == pytest.approx(0.9)
    x1, _, _, y2 = fused.xyxy[0]
    assert 100 < x1 < 102
    assert 200 < y2 < 202  # weighted 0.9 : 0.7 towards the letterbox box
    assert len(plm.fuse_views((np.array([plate], np.float32), np.array([0.9])), None, thresh=0.95)) == 0


def test_uncovered_and_combine_add_only_confirmed_blocks_no_plate_box_covers():
    plates = plm.fuse_views((np.array([[100, 100, 300, 200]], np.float32), np.array([0.9])), None, 0.4)
    blocks = np.array([[150, 120, 250, 180],    # inside the plate box: nothing to add
                       [600, 300, 668, 350],    # alone
                       [280, 150, 400, 210]],   # a quarter inside: still its own
                      np.float32)
    assert plm.uncovered(blocks, plates.xyxy).tolist() == [False, True, True]
    assert plm.uncovered(blocks, np.zeros((0, 4))).all()
    confirmed = (np.array([[596, 296, 672, 354], [280, 150, 400, 210]], np.float32), np.array([0.8, 0.0]))
    out = plm.combine(plates, confirmed, 0.4)
    assert len(out) == 2
    assert sorted(out.score.tolist()) == pytest.approx([0.8, 0.9])
    assert len(plm.combine(plates, (np.zeros((0, 4)), np.zeros(0)), 0.4)) == 1


def test_zoom_window_and_best_overlap():
    (x1, y1, x2, y2), gain = plm.zoom_window(np.array([100, 100, 180, 150]), 1000, 1000, target=160, context=1.0)
    assert (x1, y1, x2, y2) == (20, 20, 260, 230)
    assert gain == pytest.approx(2.0)
    assert plm.zoom_window(np.array([0, 0, 80, 50]), 100, 60)[0] == (0, 0, 100, 60)  # clipped to the frame
    xyxy = np.array([[95, 95, 185, 155], [0, 0, 10, 10], [120, 110, 140, 130]], np.float32)
    box, score = plm.best_overlap(np.array([100, 100, 180, 150]), xyxy, np.array([0.5, 0.9, 0.6], np.float32))
    assert score == pytest.approx(0.6)
    assert box.tolist() == [120, 110, 140, 130]  # inside the block counts too
    assert plm.best_overlap(np.array([100, 100, 180, 150]), xyxy[1:2], np.array([0.9]))[0] is None


# --- the real models -------------------------------------------------------------------------------


def textured_scene(width, height, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def draw_plate(image, x, y, width, lines):
    """A white plate with a black border and black text lines (one line 4.5:1, two lines 1.6:1)."""
    height = int(width / (4.5 if len(lines) == 1 else 1.6))
    cv2.rectangle(image, (x, y), (x + width, y + height), (255, 255, 255), -1)
    cv2.rectangle(image, (x, y), (x + width, y + height), (0, 0, 0), max(2, width // 80))
    for i, text in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
        scale = min(0.8 * width / tw, 0.7 * height / len(lines) / th)
        thick = max(1, int(scale * 2.5))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        org = (x + (width - tw) // 2, y + int(height * (i + 0.5) / len(lines) + th / 2))
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return np.array([[x, y, x + width, y + height]], np.float32)


@pytest.fixture(scope="module")
def plates():
    return MultiScalePlates(PlateDetector(), PlateDetector(name="plate_yolov8n_dynamic"), TextDetector(max_side=960))


def test_dynamic_export_equals_the_fixed_model_at_its_size():
    fixed, dynamic = PlateDetector(), PlateDetector(name="plate_yolov8n_dynamic")
    assert dynamic.input_size is None
    assert fixed.input_size == (1280, 736)
    frame = textured_scene(1280, 720, seed=3)
    draw_plate(frame, 500, 300, 200, ["AN 0123 L"])
    a, b = fixed.raw(frame, 0.1), dynamic.raw(frame, 0.1, gain=1.0)
    assert len(a[0]) >= 1
    assert len(a[0]) == len(b[0])
    np.testing.assert_allclose(a[0], b[0], atol=0.5)


def test_text_detector_finds_drawn_text_in_frame_pixels():
    frame = np.full((1080, 1920, 3), 235, np.uint8)  # larger than max_side: boxes must come back scaled
    cv2.putText(frame, "ANONLAB 2026", (600, 560), cv2.FONT_HERSHEY_SIMPLEX, 3.0, (20, 20, 20), 8, cv2.LINE_AA)
    det = TextDetector(max_side=960)
    r = det(frame)
    assert len(r) >= 1
    assert (r.label == PLATE).all()
    (tw, th), _ = cv2.getTextSize("ANONLAB 2026", cv2.FONT_HERSHEY_SIMPLEX, 3.0, 8)
    truth = np.array([[600, 560 - th, 600 + tw, 560]], np.float32)
    assert iou_matrix(truth, r.xyxy).max() > 0.5
    assert len(TextDetector(max_side=960)(np.full((720, 1280, 3), 128, np.uint8))) == 0


def test_a_close_up_plate_800_px_wide_is_found(plates):
    frame = textured_scene(1280, 720, seed=1)
    truth = draw_plate(frame, 240, 270, 800, ["AN 0123 L"])
    found = plates(frame)
    assert len(found) >= 1
    assert iou_matrix(truth, found.xyxy).max() >= 0.5
    # the shrunk view sees it well (267 px wide there), whatever the letterbox view makes of it
    _, (xyxy, score), _, _ = plates.sources(frame)
    assert len(xyxy)
    assert iou_matrix(truth, xyxy).max() >= 0.7


@pytest.mark.parametrize("size", [(1280, 720), (1280, 736), (768, 768), (1000, 900), (640, 480)])
def test_frames_the_letterbox_hardly_shrinks_get_no_tiles(size):
    gain, windows = tile_windows(*size, (1280, 736))
    assert windows == []


@pytest.mark.parametrize("size, gain, count", [
    ((1920, 1080), 1.0, 4),
    ((2560, 1440), (2 * 736 - plm.TILE_OVERLAP) / 1440, 4),  # 0.96 in 2x2: enough
    ((3065, 1300), (2 * 1280 - plm.TILE_OVERLAP) / 3065, 4),  # 0.80 in 2x2: just enough
    ((3840, 2160), (3 * 736 - 2 * plm.TILE_OVERLAP) / 2160, 9),  # 0.64 in 2x2 would shrink far plates: 3x3 at 0.93
])
def test_tiles_are_letterbox_windows_over_the_frame_at_up_to_its_own_size(size, gain, count):
    got, windows = tile_windows(*size, (1280, 736))
    assert got == pytest.approx(gain)
    assert len(windows) == count
    w, h = round(size[0] * got), round(size[1] * got)
    xs, ys = sorted({(x1, x2) for x1, _, x2, _ in windows}), sorted({(y1, y2) for _, y1, _, y2 in windows})
    assert all(x2 - x1 <= 1280 for x1, x2 in xs)
    assert all(y2 - y1 <= 736 for y1, y2 in ys)
    assert (xs[0][0], xs[-1][1], ys[0][0], ys[-1][1]) == (0, w, 0, h)  # the whole resized frame ...
    assert xs[0][1] - xs[1][0] >= plm.TILE_OVERLAP  # ... with a plate-wide overlap between neighbours
    assert ys[0][1] - ys[1][0] >= plm.TILE_OVERLAP


def test_a_far_plate_in_a_1080p_frame_is_found_by_the_tiles(plates):
    # 80 px wide in the frame, 53 px in the letterbox view: the model scores it under the threshold there
    frame = textured_scene(1920, 1080, seed=0)
    truth = draw_plate(frame, 1100, 600, 80, ["AN 0123 L"])
    no_tiles = copy.copy(plates)
    no_tiles.use_tiles = False
    alone = no_tiles(frame)
    assert not len(alone) or ios_matrix(truth, alone.xyxy).max() < 0.5
    found = plates(frame)
    assert len(found) == 1
    assert ios_matrix(truth, found.xyxy).max() >= 0.95  # the mask covers it whole
    quick = plates.quick(frame)  # between thorough keyframes the tracker carries it: no tiles there
    assert not len(quick) or ios_matrix(truth, quick.xyxy).max() < 0.5


def test_tiles_map_boxes_back_to_frame_pixels(plates):
    frame = textured_scene(3840, 2160, seed=4)
    truth = draw_plate(frame, 2900, 1500, 200, ["AN 0123 L"])  # 127 px at the tiles' gain, 67 px in the letterbox
    xyxy, score = plates.yolo.tiles(frame, plates.thresh)
    assert len(score) >= 1
    assert ios_matrix(truth, xyxy).max() >= 0.95
    assert (xyxy[:, 2] <= 3840 + 20).all()


def test_a_plate_cut_by_a_window_comes_only_from_the_window_that_sees_it_whole(plates):
    frame = textured_scene(1920, 1080, seed=0)
    truth = draw_plate(frame, 1240, 600, 80, ["AN 0123 L"])  # across x = 1280, where the first window ends
    xyxy, score = plates.yolo.tiles(frame, 0.2)
    assert len(score) >= 1
    assert (ios_matrix(truth, xyxy)[0] >= 0.95).all()  # no part-plate box from the window that cut it
    assert (xyxy[:, 0] < 1240).all()


def test_tiles_leave_plates_the_letterbox_sees_large_to_the_letterbox(plates):
    # 300 px wide in the frame, 200 px in the letterbox view: above TILE_MAX_WIDTH, so not the tiles' business
    frame = textured_scene(1920, 1080, seed=1)
    truth = draw_plate(frame, 700, 500, 300, ["AN 0123 L"])
    xyxy, _ = plates.yolo.tiles(frame, 0.2)
    assert not len(xyxy) or ios_matrix(truth, xyxy).max() < 0.5
    found = plates(frame)
    assert len(found) == 1
    assert ios_matrix(truth, found.xyxy).max() >= 0.95


def text_sign(words, seed=6):
    """Two lines of text on a wall: a block the text detector finds that is not a plate."""
    frame = textured_scene(1280, 720, seed=seed)
    cv2.rectangle(frame, (300, 200), (1000, 600), (225, 225, 225), -1)
    for i, text in enumerate(words):
        cv2.putText(frame, text, (450, 350 + 90 * i), cv2.FONT_HERSHEY_DUPLEX, 2.0, (30, 30, 30), 3, cv2.LINE_AA)
    return frame


def test_the_zoomed_look_confirms_a_two_line_plate_and_not_a_two_line_sign(plates):
    frame = textured_scene(1920, 1080, seed=2)
    truth = draw_plate(frame, 900, 700, 80, ["KA 01", "AB 1234"])
    _, _, (blocks, _), _ = plates.sources(frame)
    on_plate = blocks[iou_matrix(truth, blocks)[0] >= 0.3]
    assert len(on_plate) == 1
    xyxy, score = plates.zoom(frame, on_plate)
    assert score[0] >= plates.thresh
    assert iou_matrix(truth, xyxy)[0, 0] >= 0.5

    sign = text_sign(["OPEN", "DAILY"])
    _, _, (blocks, _), _ = plates.sources(sign)
    assert len(blocks) >= 1  # the text detector sees a two-line block ...
    assert (plates.zoom(sign, blocks)[1] < plates.thresh).all()  # ... the plate model does not call it a plate
    assert len(plates(sign)) == 0


def test_thresholds_move_every_source(plates):
    low = plates.lowered(0.5)
    assert low.thresh == pytest.approx(0.2)
    assert low.yolo.thresh == pytest.approx(0.2)
    assert plates.thresh == pytest.approx(0.4)
    assert plates.yolo.thresh == pytest.approx(0.4)
    names = [m["name"] for m in plates.models]
    assert names == ["plate_yolov8n", "plate_yolov8n_dynamic", "text_ppocrv4_det"]
    frame = textured_scene(640, 360, seed=4)
    draw_plate(frame, 200, 120, 120, ["KA 01", "AB 1234"])
    assert len(low(frame)) >= len(plates(frame))


def test_a_plain_scene_has_no_plate(plates):
    assert len(plates(textured_scene(1280, 720, seed=5))) == 0


def test_the_quick_pass_runs_the_two_views_without_the_text_detector(plates):
    class NoText:
        default_thresh = 0.5

        def lines(self, frame, thresh):
            raise AssertionError("the quick pass must not run the text detector")

    quick = copy.copy(plates)
    quick.text = NoText()
    frame = textured_scene(1280, 720, seed=1)
    truth = draw_plate(frame, 240, 270, 800, ["AN 0123 L"])
    found = quick.quick(frame)
    assert len(found) >= 1
    assert iou_matrix(truth, found.xyxy).max() >= 0.5
    with pytest.raises(AssertionError, match="quick pass"):
        quick(frame)
