import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from anonlab.render.mask import (MIN_FACE_MARGIN, MOSAIC_CELLS, blur, mask_boxes, mask_frame, mask_whole_frame,
                                  pixelate, shape_alpha, solid)
from anonlab.regions import FACE, PLATE, Regions
from anonlab.settings import MASK_SHAPES, MASK_STYLES, Settings

STYLES_SHAPES = [(m, s) for m in MASK_STYLES for s in MASK_SHAPES]


def noise(h=240, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def outside_mask(frame_shape, boxes):
    keep = np.ones(frame_shape[:2], bool)
    for x1, y1, x2, y2 in boxes.tolist():
        keep[y1:y2, x1:x2] = False
    return keep


def highpass_ratio(masked, original, size):
    """Energy above ~2 cycles across the object, masked vs original (1 = untouched, 0 = none left)."""
    def hp(a):
        a = a.astype(np.float64)
        return a - cv2.GaussianBlur(a, (0, 0), size / 8.0, borderType=cv2.BORDER_REFLECT_101)
    return float((hp(masked) ** 2).sum() / (hp(original) ** 2).sum())


# --- only the padded box changes ----------------------------------------------------------------------
@pytest.mark.parametrize("style, shape", STYLES_SHAPES)
@pytest.mark.parametrize("feather", [0.0, 0.2])
def test_changes_only_inside_padded_box(style, shape, feather):
    frame = noise()
    regions = Regions(xyxy=[[100, 60, 160, 140], [10, 10, 30, 40]])
    settings = Settings(mask=style, shape=shape, feather=feather)
    out = mask_frame(frame, regions, settings)
    boxes = mask_boxes(regions, settings, frame.shape[1], frame.shape[0])
    keep = outside_mask(frame.shape, boxes)
    assert np.array_equal(out[keep], frame[keep])
    for x1, y1, x2, y2 in regions.xyxy.astype(int).tolist():  # the object itself is thoroughly changed
        changed = (out[y1:y2, x1:x2] != frame[y1:y2, x1:x2]).any(axis=2).mean()
        assert changed > 0.9


def test_padding_follows_mask_scale():
    r = Regions(xyxy=[[40, 40, 60, 60]], label=[PLATE])
    assert mask_boxes(r, Settings(mask_scale=1.0), 100, 100).tolist() == [[40, 40, 60, 60]]
    assert mask_boxes(r, Settings(mask_scale=2.0), 100, 100).tolist() == [[30, 30, 70, 70]]
    # an ellipse is never smaller than the one that contains the box's corners
    assert mask_boxes(r, Settings(mask_scale=1.0, shape="ellipse"), 100, 100).tolist() == [[35, 35, 65, 65]]


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
def test_a_face_mask_reaches_below_the_box_to_the_chin(shape):
    from anonlab.render.mask import FACE_CHIN, mask_extent

    # a face large enough that the even growth is above MIN_FACE_MARGIN: only the chin differs from a plate
    face, plate = Regions(xyxy=[[40, 40, 80, 100]], label=[FACE]), Regions(xyxy=[[40, 40, 80, 100]], label=[PLATE])
    settings = Settings(shape=shape)
    f, p = mask_extent(face, settings)[0], mask_extent(plate, settings)[0]
    assert f[:3].tolist() == p[:3].tolist()
    assert f[3] == pytest.approx(p[3] + FACE_CHIN * 60)
    # the pixels below the plain growth are masked for a face (inside the shape), never for a plate
    frame = noise()
    below = int(p[3]) + 1
    out_f = mask_frame(frame, face, Settings(shape=shape, mask="solid"))
    out_p = mask_frame(frame, plate, Settings(shape=shape, mask="solid"))
    assert (out_f[below, 60] == 0).all()
    assert np.array_equal(out_p[below, 60], frame[below, 60])


def test_a_flat_face_box_is_masked_to_a_face_s_height_below_it():
    from anonlab.render.mask import FACE_ASPECT, FACE_CHIN, mask_extent

    # the eyes of a face above a medical mask: a box twice as wide as tall; the whole face lies below it
    eyes = Regions(xyxy=[[100, 100, 200, 150]], label=[FACE])
    whole = Regions(xyxy=[[100, 100, 200, 100 + FACE_ASPECT * 100]], label=[FACE])
    assert mask_extent(eyes, Settings()).tolist() == mask_extent(whole, Settings()).tolist()
    # the whole face's box grown about its centre, then the chin: the mask ends there, no sooner and no later
    h = FACE_ASPECT * 100
    bottom = int(round(100 + h / 2 + h * Settings().mask_scale / 2 + FACE_CHIN * h))
    out = mask_frame(noise(300, 300), eyes, Settings(mask="solid"))
    assert (out[bottom - 1, 150] == 0).all() and not (out[bottom + 1, 150] == 0).all()
    # a plate keeps its shape, and so does a face box already as tall as a face
    plate = Regions(xyxy=[[100, 100, 200, 150]], label=[PLATE])
    assert mask_extent(plate, Settings())[0, 3] == pytest.approx(150 + 0.15 * 50)
    tall = Regions(xyxy=[[100, 100, 200, 230]], label=[FACE])
    assert mask_extent(tall, Settings())[0, 3] == pytest.approx(230 + 0.15 * 130 + FACE_CHIN * 130)


@pytest.mark.parametrize("shape", ["rect", "ellipse"])
@pytest.mark.parametrize("turn", [1, 2, 3])
def test_a_turned_face_s_mask_grows_towards_its_own_chin(turn, shape):
    from anonlab.detect.orientation import turn_boxes, unturn_boxes
    from anonlab.render.mask import mask_extent

    # Content stood upright by `turn`: a face box in the upright picture and the same face as displayed. The mask
    # as displayed must be the upright face's mask, turned back: extended towards the chin, wherever that lies.
    w, h = 320, 240
    uw, uh = (h, w) if turn % 2 else (w, h)  # the upright picture's size
    boxes = np.array([[40, 30, 140, 80], [60, 50, 100, 110], [10, 20, 22, 34]], np.float32)  # eyes, face, tiny
    assert (boxes[:, 2] <= uw).all() and (boxes[:, 3] <= uh).all()
    settings = Settings(shape=shape)
    upright = mask_extent(Regions(xyxy=boxes, label=[FACE] * 3), settings)
    shown = Regions(xyxy=unturn_boxes(boxes, turn, w, h), label=[FACE] * 3, turn=[turn] * 3)
    assert np.allclose(mask_extent(shown, settings), unturn_boxes(upright, turn, w, h), atol=1e-3)
    # and not the frame's "down" (what a face found turned was given before `Regions.turn`)
    assert not np.allclose(mask_extent(shown.replace(turn=0), settings), mask_extent(shown, settings), atol=1)
    # plates have no chin: their growth is even, whatever the turn
    plates = shown.replace(label=PLATE)
    assert np.allclose(mask_extent(plates, settings), mask_extent(plates.replace(turn=0), settings))
    assert np.allclose(turn_boxes(unturn_boxes(boxes, turn, w, h), turn, w, h), boxes)


def test_ellipse_leaves_corners():
    frame = noise()
    settings = Settings(mask="solid", shape="ellipse", mask_scale=1.6)
    regions = Regions(xyxy=[[100, 60, 160, 140]])
    out = mask_frame(frame, regions, settings)
    (x1, y1, x2, y2), = mask_boxes(regions, settings, 320, 240).tolist()
    for y, x in [(y1, x1), (y1, x2 - 1), (y2 - 1, x1), (y2 - 1, x2 - 1)]:
        assert (out[y, x] == frame[y, x]).all()
    assert (out[100, 130] == 0).all()  # centre filled
    rect = mask_frame(frame, regions, settings.replace(shape="rect"))
    assert (rect[y1, x1] == 0).all()


def test_ellipse_and_feather_keep_the_object_box_fully_masked():
    frame = np.full((200, 200, 3), 255, np.uint8)
    regions = Regions(xyxy=[[50, 40, 130, 160]])
    for shape in MASK_SHAPES:
        for feather in (0.0, 0.1, 0.5):
            out = mask_frame(frame, regions, Settings(mask="solid", shape=shape, feather=feather, mask_scale=1.0))
            assert (out[40:160, 50:130] == 0).all(), (shape, feather)


def test_feather_softens_the_edge_in_the_padding():
    frame = np.full((200, 200, 3), 255, np.uint8)
    regions = Regions(xyxy=[[60, 60, 140, 140]])
    out = mask_frame(frame, regions, Settings(mask="solid", feather=0.2, mask_scale=1.5))
    row = out[100, :, 0].astype(int)
    ramp = row[40:60]  # padding left of the object: from white towards black
    assert ramp[0] > 200
    assert 0 < ramp[10] < 255
    assert (np.diff(ramp) <= 0).all()
    hard = mask_frame(frame, regions, Settings(mask="solid", feather=0.0, mask_scale=1.5))
    assert (hard[100, 40:60] == 0).all()


def test_shape_alpha_values():
    a = shape_alpha(20, 20, (0, 0, 20, 20), shape="rect")
    assert (a == 1).all()
    e = shape_alpha(20, 20, (0, 0, 20, 20), shape="ellipse", feather=0.25)
    assert e[0, 0] == 0
    assert e[10, 10] == 1
    assert 0 < e[10, 1] < 1
    assert (shape_alpha(20, 20, (0, 0, 20, 20), shape="ellipse", inner=(5, 5, 15, 15))[5:15, 5:15] == 1).all()
    with pytest.raises(ValueError, match="unknown mask shape"):
        shape_alpha(2, 2, (0, 0, 2, 2), shape="star")


# --- strength ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [20, 64, 300])
def test_default_blur_leaves_no_fine_detail(size):
    """Above ~2 cycles across the object, (almost) no energy survives, for small and large boxes alike."""
    frame = noise(400, 400, seed=size)
    x0 = 50
    regions = Regions(xyxy=[[x0, x0, x0 + size, x0 + size]])
    out = mask_frame(frame, regions, Settings(mask="blur"))
    inner = slice(x0, x0 + size)
    for c in range(3):
        assert highpass_ratio(out[inner, inner, c], frame[inner, inner, c], size) < 0.01
    # and it is smooth at the pixel level too: neighbours differ by a few levels at most
    assert np.abs(np.diff(out[inner, inner].astype(int), axis=1)).mean() < 3


def test_blur_strength_is_relative_to_the_object_not_the_frame():
    small, large = noise(64, 64, 1), cv2.resize(noise(64, 64, 1), (640, 640), interpolation=cv2.INTER_NEAREST)
    b_small, b_large = blur(small, 64), blur(large, 640)
    # The large box blurred is (up to resampling) the small one blurred, scaled: same detail per object.
    back = cv2.resize(b_large, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(back - b_small.astype(int)).mean() < 6


@pytest.mark.parametrize("size", [12, 37, 90, 400])
@pytest.mark.parametrize("scale", [1.0, 1.3, 2.5])
def test_default_mosaic_has_few_cells_across_the_object(size, scale):
    frame = noise(600, 600, seed=size)
    x0 = 100
    regions = Regions(xyxy=[[x0, x0, x0 + size, x0 + size]])
    out = mask_frame(frame, regions, Settings(mask="pixelate", mask_scale=scale))
    obj = out[x0 : x0 + size, x0 : x0 + size].astype(int)
    # cells across one row of the object = number of value changes + 1 (a cut cell at each end at most)
    for line in (obj[size // 2], obj[:, size // 2]):
        cells = 1 + int((np.abs(np.diff(line, axis=0)).sum(axis=1) > 0).sum())
        assert cells <= math.ceil(MOSAIC_CELLS) + 1 <= 8
    # cell size follows the object, not the padding
    assert len(np.unique(obj.reshape(-1, 3), axis=0)) <= (math.ceil(MOSAIC_CELLS) + 1) ** 2


def test_pixelate_cells_are_block_means():
    crop = np.arange(12 * 12, dtype=np.uint8).reshape(12, 12, 1).repeat(3, axis=2)
    out = pixelate(crop, 12, cells=2)
    assert np.allclose(out[:6, :6, 0], crop[:6, :6, 0].mean(), atol=0.51)
    assert (out[:6, :6] == out[0, 0]).all()
    assert (out[6:, 6:] == out[11, 11]).all()


def test_solid_fill():
    out = mask_frame(noise(), Regions(xyxy=[[10, 10, 50, 50]]), Settings(mask="solid", mask_scale=1.0))
    assert (out[10:50, 10:50] == 0).all()
    assert solid(np.zeros((2, 3, 3), np.uint8), color=(1, 2, 3))[1, 2].tolist() == [1, 2, 3]
    assert solid(np.zeros((2, 3, 4), np.uint8), color=(1, 2, 3))[0, 0].tolist() == [1, 2, 3, 255]


# --- frames, copies, edge cases -----------------------------------------------------------------------
@pytest.mark.parametrize("style, shape", STYLES_SHAPES)
def test_input_array_is_never_modified(style, shape):
    frame = noise()
    before = frame.copy()
    out = mask_frame(frame, Regions(xyxy=[[0, 0, 400, 300], [50, 50, 90, 100]]), Settings(mask=style, shape=shape,
                                                                                           feather=0.1))
    assert np.array_equal(frame, before)
    assert not np.shares_memory(out, frame)


def test_empty_regions_return_a_copy():
    frame = noise()
    out = mask_frame(frame, Regions.empty())
    assert np.array_equal(out, frame)
    assert out is not frame
    assert not np.shares_memory(out, frame)


def test_boxes_outside_or_without_area_are_skipped():
    frame = noise(50, 60)
    regions = Regions(xyxy=[[-100, -100, -40, -40], [70, 10, 90, 30], [20, 20, 20, 40], [10, 10, 10, 10]])
    assert np.array_equal(mask_frame(frame, regions), frame)


def test_partly_outside_box_is_clipped_and_keeps_full_strength():
    frame = noise(100, 100)
    half = mask_frame(frame, Regions(xyxy=[[-40, 20, 40, 100]]), Settings(mask="pixelate", mask_scale=1.0))
    # the cell size comes from the whole (80 px) object, not from the 40 visible px
    c = math.ceil(80 / MOSAIC_CELLS)
    row = half[50, :40, 0].astype(int)
    assert 1 + int((np.diff(row) != 0).sum()) == math.ceil(40 / c) < math.ceil(40 / math.ceil(40 / MOSAIC_CELLS))
    # a face's mask reaches MIN_FACE_MARGIN px past its box whatever mask_scale; nothing further
    assert np.array_equal(half[:, 41 + int(MIN_FACE_MARGIN):], frame[:, 41 + int(MIN_FACE_MARGIN):])


def test_bad_frames_are_programming_errors():
    with pytest.raises(ValueError, match="frames are uint8"):
        mask_frame(np.zeros((4, 4, 3), np.float32), Regions.empty())
    with pytest.raises(ValueError, match=r"frames are \(H, W, 3\)"):
        mask_frame(np.zeros((4, 4, 2), np.uint8), Regions.empty())


def test_gray_and_bgra_frames():
    gray = noise()[:, :, 0].copy()
    out = mask_frame(gray, Regions(xyxy=[[10, 10, 50, 50]]), Settings(mask="blur"))
    assert out.shape == gray.shape
    assert not np.array_equal(out, gray)
    bgra = np.dstack([noise(), np.full((240, 320), 7, np.uint8)])
    out = mask_frame(bgra, Regions(xyxy=[[10, 10, 50, 50]]), Settings(mask="pixelate"))
    assert out.shape == bgra.shape


@pytest.mark.parametrize("style", MASK_STYLES)
def test_mask_whole_frame(style):
    frame = noise(90, 160)
    out = mask_whole_frame(frame, style)
    assert out.shape == frame.shape
    assert not np.shares_memory(out, frame)
    if style == "solid":
        assert (out == 0).all()
    else:
        assert highpass_ratio(out[..., 0], frame[..., 0], 160) < 0.02
    with pytest.raises(ValueError, match="unknown mask style"):
        mask_whole_frame(frame, "swirl")


# --- property: any boxes, any settings ----------------------------------------------------------------
coord = st.floats(-80, 140, allow_nan=False, width=32)
box = st.tuples(coord, coord, coord, coord)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes=st.lists(box, max_size=5), style=st.sampled_from(MASK_STYLES), shape=st.sampled_from(MASK_SHAPES),
       scale=st.floats(1.0, 4.0), feather=st.sampled_from([0.0, 0.05, 0.5]))
def test_any_boxes(boxes, style, shape, scale, feather):
    frame = noise(60, 80, seed=len(boxes))
    before = frame.copy()
    regions = Regions(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4))
    settings = Settings(mask=style, shape=shape, mask_scale=scale, feather=feather)
    out = mask_frame(frame, regions, settings)
    assert out.shape == frame.shape
    assert out.dtype == np.uint8
    assert np.array_equal(frame, before)
    mboxes = mask_boxes(regions, settings, 80, 60)
    assert ((mboxes[:, [0, 2]] >= 0) & (mboxes[:, [0, 2]] <= 80)).all()
    assert ((mboxes[:, [1, 3]] >= 0) & (mboxes[:, [1, 3]] <= 60)).all()
    keep = outside_mask(frame.shape, mboxes)
    assert np.array_equal(out[keep], frame[keep])
    if style == "solid":  # every pixel the object touches is covered, whatever shape, feather or clipping
        solid_out = out
        for x1, y1, x2, y2 in regions.clip(80, 60).xyxy.tolist():
            sl = solid_out[math.floor(y1):math.ceil(y2), math.floor(x1):math.ceil(x2)]
            assert (sl == 0).all()


def test_sliver_box_still_masks_the_pixel_it_touches():
    frame = noise(60, 80, seed=1)
    regions = Regions(xyxy=[[0.0, 0.0, 1.0, 9.042119830660056e-10], [10.0, 20.0, 10.001, 25.0]])
    out = mask_frame(frame, regions, Settings(mask="solid", mask_scale=1.0))
    assert (out[0, 0] == 0).all()
    assert (out[20:25, 10] == 0).all()
