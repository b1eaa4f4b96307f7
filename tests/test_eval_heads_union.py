"""The scoring of head boxes as face boxes (``benchmarks/eval_heads.py --union``) on a hand-made world.

The decision whether head boxes join the face defaults rests on these counts: a head box over a face that a face box
already found must not pass for a find, and a head box on nothing must count as false under every precision.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eh():
    spec = importlib.util.spec_from_file_location("eval_heads", ROOT / "benchmarks" / "eval_heads.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def world():
    """Face A (found by a face box, and inside head box 1), face B (12 px, no face box; head box 2 covers it), head
    box 3 on nobody."""
    row = {"image": "x.jpg", "source": "s", "width": 100, "height": 100,
           "boxes": [("face", 10, 10, 20, 20, 1.0), ("face", 60, 60, 12, 12, 1.0)]}
    faces = {"xyxy": [[10, 10, 30, 30]], "score": [0.9]}
    pose = {"score": [0.5, 0.4, 0.3], "head_ok": [True, True, True],
            "head": [[0, 0, 40, 40], [56, 56, 76, 76], [80, 0, 95, 15]]}
    return [row], [pose], [faces]


def test_every_head_box_finds_both_faces_and_the_precisions_differ_on_the_duplicate(eh):
    rows, poses, faces = world()
    t = eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[0])
    assert t["all"] == [2, 2, 4, 3, 2, 3]  # n_gt, found, boxes, on any face, one a face, head boxes
    recall, any_face, one_to_one, dups_out = eh.rates(t["all"])
    assert (recall, any_face, one_to_one) == (1.0, 0.75, 0.5)
    assert dups_out == pytest.approx(2 / 3)  # head box 1 left out; head box 3 still false
    assert t["<16"][:2] == [1, 1]  # face B, 12 px, found by its head box


def test_a_head_box_holding_a_face_box_is_dropped_by_the_rule(eh):
    rows, poses, faces = world()
    t = eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[1])
    assert t["all"] == [2, 2, 3, 2, 2, 2]
    assert eh.rates(t["all"])[2] == pytest.approx(2 / 3)


def test_a_small_face_box_inside_a_large_head_box_is_someone_else_s(eh):
    rows, poses, faces = world()
    faces[0] = {"xyxy": [[10, 10, 30, 30], [3, 3, 7, 7]], "score": [0.9, 0.9]}
    poses[0] = {"score": [0.5], "head_ok": [True], "head": [[0, 0, 60, 60]]}  # holds face A and the 4-px box
    assert eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[1])["all"][5] == 0
    # face A's box is a third of the head box (its own face): dropped under the scale rule too
    assert eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[2])["all"][5] == 0
    faces[0] = {"xyxy": [[3, 3, 7, 7]], "score": [0.9]}
    assert eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[2])["all"][5] == 1


def test_face_boxes_alone_and_the_face_threshold_by_size(eh):
    rows, poses, faces = world()
    t = eh.union_tally(rows, poses, faces, 0.25, None, "face boxes alone")
    assert t["all"] == [2, 1, 1, 1, 1, 0]
    assert t[eh.MASKED] == [pytest.approx(26 * 26 / 100**2), 1]  # the 20-px box grown 1.3 times
    with_heads = eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[0])[eh.MASKED][0]
    # grown 1.3 times and clipped: head box 1 (0..46)², head box 2 26², head box 3 21 × 18 at the top edge
    assert with_heads == pytest.approx((46 * 46 + 26 * 26 + 21 * 18) / 100**2)
    faces[0]["score"] = [0.2]  # under 0.25 for a 20-px box
    assert eh.union_tally(rows, poses, faces, 0.25, None, "face boxes alone")["all"][2] == 0
    assert eh.union_tally(rows, poses, faces, 0.25, 0.5, eh.RULES[0])["all"][2] == 1  # head box 1 alone
    # without the face box, head boxes 1 and 2 find the faces one each: 1:1 precision 2/3, recall 1
    assert eh.meets(eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[0]))
    rows, poses, faces = world()
    assert not eh.meets(eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[0]))  # 1:1 precision 0.5
    assert eh.meets(eh.union_tally(rows, poses, faces, 0.25, 0.1, eh.RULES[0]), which=1)  # 0.75 counting it
