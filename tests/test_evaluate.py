"""Detection evaluation on hand-made label/prediction tables with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab.detect import Detector, make_regions
from anonlab.errors import AnonlabError
from anonlab.evaluation.images import (
    detect_labelled_set,
    evaluate,
    format_summary,
    load_jsonl,
    match,
    pick_threshold,
    size_bucket,
    threshold_curve,
)
from anonlab.regions import FACE
from anonlab.settings import Settings

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


def box(x, y, w, h, label="face", score=None):
    b = {"label": label, "x": x, "y": y, "w": w, "h": h}
    if score is not None:
        b["score"] = score
    return b


def write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def table(tmp_path):
    """Two exhaustive images and one recall-only image, with known matches.

    a.jpg: truths A (100×100 at 0,0) and B (10×10 at 200,200); predictions: A exactly (0.9),
           B shifted so IoU = 0.47 (0.6), a false box (0.8), a weak duplicate of A (0.2).
    b.jpg: truth C (40×20); no prediction.
    c.jpg (openalpr_us, recall only): truth D found (0.7) plus an unlabelled plate-like box (0.9).
    """
    labels = write(tmp_path / "labels.jsonl", [
        {"image": "a.jpg", "source": "set1", "boxes": [box(0, 0, 100, 100), box(200, 200, 10, 10)]},
        {"image": "b.jpg", "source": "set1", "boxes": [box(50, 50, 40, 20)]},
        {"image": "c.jpg", "source": "openalpr_us", "boxes": [box(10, 10, 30, 30)]},
    ])
    pred = write(tmp_path / "pred.jsonl", [
        {"image": "a.jpg", "ms": 10.0, "boxes": [box(0, 0, 100, 100, score=0.9), box(202, 202, 10, 10, score=0.6),
                                                  box(400, 400, 50, 50, score=0.8), box(5, 5, 100, 100, score=0.2)]},
        {"image": "b.jpg", "ms": 20.0, "boxes": []},
        {"image": "c.jpg", "ms": 30.0, "boxes": [box(10, 10, 30, 30, score=0.7), box(300, 10, 30, 30, score=0.9)]},
    ])
    return labels, pred


def test_known_answers(table):
    res = evaluate(*table)
    face = res["by_label"]["face"]
    o = face["overall"]
    # Recall over all images: A, B, D found; C missed.
    assert (o["n_gt"], o["tp"], o["fn"]) == (4, 3, 1)
    assert o["recall"] == pytest.approx(0.75)
    # Precision on exhaustive images only (a, b): 4 predictions, 2 true.
    assert (o["n_pred"], o["fp"], o["images_exhaustive"]) == (4, 2, 2)
    assert o["precision"] == pytest.approx(0.5)
    assert o["fp_per_image"] == pytest.approx(1.0)
    recall_ex = 2 / 3
    assert o["f1"] == pytest.approx(2 * 0.5 * recall_ex / (0.5 + recall_ex))
    iou_b = 64 / 136
    assert o["mean_iou"] == pytest.approx((1 + iou_b + 1) / 3)
    assert res["ms_per_image"] == pytest.approx(20.0)
    assert res["recall_only_sources"] == ["openalpr_us"]
    # Sizes: B (10 px) is the only small truth; C (smaller side 20) missed.
    s = face["by_size"]
    assert (s["<16"]["n_gt"], s["<16"]["recall"]) == (1, 1.0)
    assert (s["16-32"]["n_gt"], s["16-32"]["tp"]) == (2, 1)
    assert s[">=64"]["recall"] == 1.0
    # Predicted-box sizes for precision: two 100-px boxes (one true), one 10-px (true), one 50-px (false).
    assert s[">=64"]["precision"] == pytest.approx(0.5)
    assert s["32-64"]["precision"] == 0.0
    src = face["by_source"]
    assert src["openalpr_us"]["precision"] is None
    assert src["openalpr_us"]["recall"] == 1.0
    assert src["set1"]["recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "iou, thresh, recall, precision",
    [
        (0.3, None, 0.75, 0.5),
        (0.5, None, 0.5, 0.25),     # B (IoU 0.47) no longer matches
        (0.3, 0.65, 0.5, 0.5),     # B (0.6) and the duplicate (0.2) dropped; D (0.7) kept
        (0.3, 0.95, 0.0, None),    # nothing left: precision undefined
    ],
)
def test_iou_and_threshold(table, iou, thresh, recall, precision):
    o = evaluate(*table, iou=iou, thresh=thresh)["by_label"]["face"]["overall"]
    assert o["recall"] == pytest.approx(recall)
    assert o["precision"] == (None if precision is None else pytest.approx(precision))


def test_exhaustive_flag_overrides_source(tmp_path, table):
    labels, pred = table
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    rows[2]["exhaustive"] = True
    rows[0]["exhaustive"] = False
    o = evaluate(write(tmp_path / "l2.jsonl", rows), pred)["by_label"]["face"]["overall"]
    # Now b and c count for precision: c has 2 predictions, 1 true.
    assert (o["n_pred"], o["fp"]) == (2, 1)
    assert evaluate(labels, pred, recall_only=())["by_label"]["face"]["overall"]["n_pred"] == 6


def test_greedy_matching_takes_best_iou_first():
    gt = np.array([[0, 0, 10, 10], [6, 0, 16, 10]], np.float32)
    pred = np.array([[4, 0, 14, 10], [0, 0, 10, 10]], np.float32)
    pairs = match(gt, pred, 0.3)
    assert sorted((g, p) for g, p, _ in pairs) == [(0, 1), (1, 0)]
    assert match(gt, np.zeros((0, 4)), 0.3) == []


@pytest.mark.parametrize("side, bucket", [(0, "<16"), (15.9, "<16"), (16, "16-32"), (31, "16-32"), (32, "32-64"),
                                          (64, ">=64"), (1e6, ">=64")])
def test_size_bucket(side, bucket):
    assert size_bucket(side) == bucket


def test_labels_only_scored_for_labels_present(tmp_path):
    labels = write(tmp_path / "l.jsonl", [{"image": "a.jpg", "boxes": [box(0, 0, 30, 20, "plate")]}])
    pred = write(tmp_path / "p.jsonl", [{"image": "a.jpg", "boxes": [box(0, 0, 30, 20, "plate", 0.9),
                                                                      box(50, 50, 30, 30, "face", 0.9)]}])
    res = evaluate(labels, pred)
    assert list(res["by_label"]) == ["plate"]
    assert res["by_label"]["plate"]["overall"]["precision"] == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a"]', "line 2: expected a JSON object"),
        ('{"boxes": []}', "line 2: missing 'image'"),
        ('{"image": "x.jpg"}', "line 2: missing 'boxes'"),
        ('{"image": "x.jpg", "boxes": [{"label": "face", "x": 1, "y": 1, "w": 2}]}', "lacks 'h'"),
        ('{"image": "x.jpg", "boxes": [{"label": "cat", "x": 1, "y": 1, "w": 2, "h": 2}]}', "unknown label 'cat'"),
        ('{"image": "x.jpg", "boxes": [{"label": "face", "x": 1, "y": 1, "w": -2, "h": 2}]}', "negative"),
        ('{"image": "x.jpg", "boxes": [{"label": "face", "x": "a", "y": 1, "w": 2, "h": 2}]}', "must be numbers"),
        ('{"image": "x.jpg", "boxes": [7]}', "must be an object"),
        ('{"image": "a.jpg", "boxes": []}', "appears twice"),
        ('{"image": "x.jpg", "exhaustive": "yes", "boxes": []}', "'exhaustive' must be true or false"),
    ],
)
def test_malformed_labels(tmp_path, line, message):
    path = write(tmp_path / "labels.jsonl", [{"image": "a.jpg", "boxes": []}, line])
    with pytest.raises(AnonlabError, match=message):
        load_jsonl(path)


def test_other_loading_errors(tmp_path, table):
    labels, _ = table
    with pytest.raises(AnonlabError, match="does not exist"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(AnonlabError, match="holds no images"):
        load_jsonl(write(tmp_path / "empty.jsonl", ["", "  "]))
    no_score = write(tmp_path / "p.jsonl", [{"image": "a.jpg", "boxes": [box(0, 0, 1, 1)]}])
    with pytest.raises(AnonlabError, match="lacks 'score'"):
        load_jsonl(no_score, "pred")
    partial = write(tmp_path / "p2.jsonl", [{"image": "a.jpg", "boxes": []}])
    with pytest.raises(AnonlabError, match="lack 2 of the 3 labelled images"):
        evaluate(labels, partial)
    with pytest.raises(AnonlabError, match="--iou"):
        evaluate(labels, partial, iou=0)


def test_threshold_curve_and_pick(table):
    curves = threshold_curve(*table, thresholds=[0.1, 0.5, 0.65, 0.85])
    rows = curves["face"]
    assert [r["thresh"] for r in rows] == [0.1, 0.5, 0.65, 0.85]
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls, reverse=True)
    assert recalls[0] == pytest.approx(0.75)
    assert "recall_<16" in rows[0]
    assert pick_threshold(rows, 0.7)["thresh"] == 0.5
    assert pick_threshold(rows, 0.99) is None


def test_format_summary(table):
    text = format_summary(evaluate(*table))
    assert "recall" in text
    assert "size <16 px" in text
    assert "src openalpr_us" in text
    assert "0.750" in text
    assert "recall only" in text


class SquareFinder(Detector):
    name = "squares"

    def __init__(self):
        super().__init__(0.5)
        self.models = [{"name": "squares"}]

    def detect(self, frame):
        ys, xs = np.nonzero(frame[:, :, 1] > 200)
        if not len(xs):
            return make_regions(np.zeros((0, 4)), np.zeros(0), FACE, frame.shape[1], frame.shape[0])
        return make_regions([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], [0.9], FACE, frame.shape[1], frame.shape[0])


def test_detect_labelled_set_round_trip(tmp_path):
    (tmp_path / "set" / "images").mkdir(parents=True)
    rows = []
    for i, (x, y, w, h) in enumerate([(10, 20, 30, 40), (50, 5, 12, 12)]):
        image = np.zeros((100, 120, 3), np.uint8)
        image[y : y + h, x : x + w] = 255
        cv2.imwrite(str(tmp_path / "set" / "images" / f"{i}.png"), image)
        rows.append({"image": f"images/{i}.png", "width": 120, "height": 100, "source": "gen", "boxes": [box(x, y, w, h)]})
    rows.append({"image": "images/empty.png", "source": "gen", "boxes": []})
    cv2.imwrite(str(tmp_path / "set" / "images" / "empty.png"), np.zeros((30, 30, 3), np.uint8))
    labels = write(tmp_path / "set" / "labels.jsonl", rows)
    out = tmp_path / "out" / "pred.jsonl"
    info = detect_labelled_set(labels, out, Settings(what=("face",)), progress=False, detector=SquareFinder())
    assert info["images"] == 3
    assert info["boxes"] == 2
    assert info["models"] == [{"name": "squares"}]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["image"] for line in lines] == ["images/0.png", "images/1.png", "images/empty.png"]
    assert lines[0]["boxes"] == [{"label": "face", "x": 10.0, "y": 20.0, "w": 30.0, "h": 40.0, "score": 0.9}]
    assert all(line["ms"] >= 0 for line in lines)
    assert not list(out.parent.glob(".*part"))
    o = evaluate(labels, out)["by_label"]["face"]["overall"]
    assert o["recall"] == 1.0
    assert o["precision"] == 1.0
    assert o["mean_iou"] == pytest.approx(1.0)


def test_detect_labelled_set_errors(tmp_path):
    labels = write(tmp_path / "labels.jsonl", [{"image": "missing.png", "boxes": []}])
    with pytest.raises(AnonlabError, match="cannot read image"):
        detect_labelled_set(labels, tmp_path / "p.jsonl", Settings(), progress=False, detector=SquareFinder())
    assert not (tmp_path / "p.jsonl").exists()
    assert not (tmp_path / ".p.jsonl.part").exists()
    with pytest.raises(AnonlabError, match="must not be the labels file"):
        detect_labelled_set(labels, labels, Settings(), progress=False, detector=SquareFinder())


@pytest.mark.eval
@pytest.mark.skipif(not (EVAL / "plates" / "labels.jsonl").exists(), reason="needs ../shared/eval")
def test_real_plates_on_a_few_shared_images(tmp_path):
    lines = (EVAL / "plates" / "labels.jsonl").read_text().splitlines()[:4]
    base = (EVAL / "plates").resolve()
    labels = write(tmp_path / "labels.jsonl",
                   [{**json.loads(x), "image": str(base / json.loads(x)["image"])} for x in lines])
    detect_labelled_set(labels, tmp_path / "pred.jsonl", Settings(what=("plate",)), progress=False)
    o = evaluate(labels, tmp_path / "pred.jsonl")["by_label"]["plate"]["overall"]
    assert o["recall"] >= 0.75
