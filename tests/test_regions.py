import numpy as np
import pytest
from hypothesis import given, strategies as st

from anonlab.errors import AnonlabError
from anonlab.regions import (ANALYST, DETECTOR, FACE, HEAD, LABELS, PERSON, PLATE, TEXT, Regions, iou_matrix, label_code,
                             nms)


def make(n=3):
    return Regions(xyxy=np.arange(n * 4, dtype=np.float32).reshape(n, 4) * [1, 1, 2, 2],
                   score=np.linspace(0.5, 0.9, n), label=[FACE, PLATE, FACE][:n], frame=[0, 1, 1][:n])


def test_defaults_and_lengths():
    r = Regions(xyxy=[[0, 0, 10, 10]])
    assert r.score.tolist() == [1.0]
    assert r.label.tolist() == [FACE]
    assert r.track_id.tolist() == [-1]
    assert r.source.tolist() == [DETECTOR]
    assert r.frame.tolist() == [0]


@pytest.mark.parametrize("kwargs, error", [
    ({"xyxy": [[0, 0, 1, 1]], "score": [0.1, 0.2]}, ValueError),
    ({"xyxy": [[0, 0, np.nan, 1]]}, ValueError),
    ({"xyxy": [[0, 0, 1, 1]], "label": [7]}, ValueError),
    ({"xyxy": [[0, 0, 1, 1]], "source": [9]}, ValueError),
    ({"xyxy": [[0, 0, 1, 1]], "turn": [4]}, ValueError),
])
def test_validation(kwargs, error):
    with pytest.raises(error, match=r"Regions\."):
        Regions(**kwargs)


def test_swapped_corners_are_sorted():
    r = Regions(xyxy=[[10, 20, 0, 5]])
    assert r.xyxy.tolist() == [[0, 5, 10, 20]]


def test_indexing_and_merge():
    r = make()
    assert len(r[r.label == FACE]) == 2
    assert len(r[1:]) == 2
    assert len(r[0]) == 1
    m = Regions.merge([r, Regions.empty(), r[0]])
    assert len(m) == 4
    assert m.frame.tolist() == [0, 1, 1, 0]
    assert Regions.merge([]) == Regions.empty()


def test_by_frame_and_at_frame():
    r = make()
    per = r.by_frame(3)
    assert [len(p) for p in per] == [1, 2, 0]
    assert r.at_frame(1) == per[1]


def test_records_round_trip():
    r = make().replace(source=ANALYST, track_id=[3, 4, 5])
    back = Regions.merge(Regions.from_records(r.at_frame(f).to_records(), frame=f) for f in (0, 1))
    assert np.allclose(back.xyxy, r.xyxy, atol=0.05)
    assert back.track_id.tolist() == [3, 4, 5]
    assert (back.source == ANALYST).all()
    # the turn that stands a region upright survives; upright rows (nearly all) do not write it
    turned = r.replace(turn=[0, 2, 3])
    records = [rec for f in (0, 1) for rec in turned.at_frame(f).to_records()]
    assert [rec.get("turn") for rec in records] == [None, 2, 3]
    back = Regions.merge(Regions.from_records(turned.at_frame(f).to_records(), frame=f) for f in (0, 1))
    assert back.turn.tolist() == [0, 2, 3]


@pytest.mark.parametrize("record", [{"x": 1}, {"x": "a", "y": 0, "w": 1, "h": 1}, {"x": 0, "y": 0, "w": 1, "h": 1, "label": "cat"},
                                    {"x": 0, "y": 0, "w": 1, "h": 1, "turn": 4}])
def test_from_records_rejects_malformed(record):
    with pytest.raises(AnonlabError, match="malformed region record|unknown label"):
        Regions.from_records([record])


def test_label_code_unknown():
    with pytest.raises(AnonlabError, match="unknown label 'cat'"):
        label_code("cat")


def test_new_labels_are_appended_so_saved_codes_keep_their_meaning():
    assert LABELS[:2] == ("face", "plate")
    assert [label_code(n) for n in ("face", "plate", "head", "person", "text")] == [FACE, PLATE, HEAD, PERSON, TEXT]
    assert (FACE, PLATE) == (0, 1)


def test_clip_and_pad():
    r = Regions(xyxy=[[-5, -5, 10, 10], [200, 200, 300, 300]])
    c = r.clip(100, 100)
    assert c.xyxy.tolist() == [[0, 0, 10, 10]]
    p = Regions(xyxy=[[10, 10, 20, 30]]).pad(0.5)
    assert p.xyxy.tolist() == [[5, 0, 25, 40]]


def test_iou_and_nms():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], np.float32)
    m = iou_matrix(a, a)
    assert m[0, 1] == pytest.approx(1.0)
    assert m[0, 2] == pytest.approx(1 / 3)
    assert m[0, 3] == 0
    keep = nms(a, np.array([0.9, 0.8, 0.7, 0.6]), 0.5)
    assert keep.tolist() == [0, 2, 3]


boxes = st.lists(st.tuples(*[st.floats(-1e4, 1e4, allow_nan=False)] * 4), min_size=0, max_size=20)


@given(boxes, boxes)
def test_iou_bounded_and_symmetric(a, b):
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    m = iou_matrix(a, b)
    assert m.shape == (len(a), len(b))
    assert ((m >= 0) & (m <= 1 + 1e-5)).all()
    assert np.allclose(m, iou_matrix(b, a).T, atol=1e-5)


@given(boxes, st.integers(1, 4000), st.integers(1, 4000))
def test_clip_stays_inside(a, w, h):
    r = Regions(xyxy=np.asarray(a, np.float32).reshape(-1, 4)).clip(w, h)
    assert (r.xyxy[:, [0, 2]] <= w).all()
    assert (r.xyxy[:, [1, 3]] <= h).all()
    assert (r.xyxy >= 0).all()
    assert (r.area > 0).all()


def test_regions_log_keeps_rows_in_order_in_few_objects():
    from anonlab.regions import RegionsLog

    rng = np.random.default_rng(3)
    log, pieces = RegionsLog(block=16), []
    for n in range(1000):  # a frame's rows at a time, some frames empty
        k = int(rng.integers(0, 3))
        part = Regions(xyxy=rng.uniform(0, 50, (k, 2)).repeat(2, axis=1), frame=[n] * k, track_id=rng.integers(0, 9, k))
        log.append(part, key=n)
        pieces.append(part)
    whole = Regions.merge(pieces)
    merged = log.merged()
    assert np.array_equal(merged.frame, whole.frame)
    assert np.array_equal(merged.track_id, whole.track_id)
    assert log.pieces <= 1000 // 16 + 2 * 16  # one object per merged run, the newest pieces apart
    for lo in (0, 5, 500, 990, 1000):
        got = log.since(lo)
        got = got[got.frame >= lo]
        assert np.array_equal(got.frame, whole.frame[whole.frame >= lo])
