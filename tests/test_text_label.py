"""The ``text`` label end to end: generated documents, badges and screens through the CLI, the report, the review
queue and the workbench's editing model."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from anonlab import cli
from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.detect import detector_for
from anonlab.evaluation.textscenes import KINDS, make_text_scene, text_coverage
from anonlab.regions import FACE, LABELS, TEXT, Regions
from anonlab.render.mask import mask_extent
from anonlab.review import build_queue
from anonlab.settings import Settings
from anonlab.widgets.editor import EditorModel
from anonlab.widgets.keymap import SHORTCUTS


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    scene = make_text_scene("document", seed=7)
    path = tmp_path_factory.mktemp("text") / "form.png"
    cv2.imwrite(str(path), scene.image)
    return path, scene


def test_a_generated_document_comes_out_with_its_text_masked(document, tmp_path):
    path, scene = document
    out, regions_out, report = tmp_path / "form_out.png", tmp_path / "r.jsonl", tmp_path / "rep.json"
    rc = cli.main(["anonymize", str(path), "-o", str(out), "--what", "text", "--regions-out", str(regions_out),
                   "--report", str(report), "--quiet"])
    assert rc == 0
    rows = json.loads(regions_out.read_text().splitlines()[0])["regions"]
    regions = Regions.from_records(rows)
    assert set(regions.label_names.tolist()) == {"text"}
    h, w = scene.image.shape[:2]
    covered = text_coverage(scene.boxes, mask_extent(regions, Settings(what=("text",))), w, h)
    assert (covered >= 0.8).mean() >= 0.9
    # and the pixels of those lines did change in the output
    before, after = scene.image.astype(int), cv2.imread(str(out)).astype(int)
    changed = [np.abs(after[int(y1):int(y2), int(x1):int(x2)] - before[int(y1):int(y2), int(x1):int(x2)]).mean()
               for x1, y1, x2, y2 in scene.boxes[covered >= 0.8]]
    assert min(changed) > 5
    counts = json.loads(report.read_text())["regions"]["by_label"]
    assert counts["text"] == len(regions)
    assert "face" not in counts  # the report names what the run looked for


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_text_scene_is_found(kind):
    # Lines of 10 px and more are found (measured 0.99-1.0 by benchmarks/eval_text.py); blurred print under
    # 10 px, barely legible to a person either, about 0.7 of the time.
    det = detector_for("text", Settings(what=("text",)))
    found, legible = [], []
    for seed in range(4):
        scene = make_text_scene(kind, seed=1000 + seed)
        r = det(scene.image)
        assert (r.label == TEXT).all()
        hit = text_coverage(scene.boxes, r.xyxy, *scene.image.shape[1::-1]) >= 0.8
        found += list(hit)
        legible += list(hit[scene.heights >= 10])
    assert np.mean(legible) >= 0.95
    assert np.mean(found) >= 0.7


def test_text_scenes_are_reproducible_and_their_boxes_lie_inside():
    a, b = make_text_scene("badge", 3), make_text_scene("badge", 3)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.boxes, b.boxes)
    h, w = a.image.shape[:2]
    assert (a.boxes[:, :2] >= -1).all()
    assert (a.boxes[:, 2] <= w + 1).all()
    assert (a.boxes[:, 3] <= h + 1).all()
    with pytest.raises(ValueError, match="unknown text scene"):
        make_text_scene("poster", 0)


def test_text_coverage_counts_the_union_of_boxes():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    halves = np.array([[0, 0, 5, 10], [5, 0, 10, 10]], np.float32)
    assert text_coverage(truth, halves, 40, 20).tolist() == [1.0, 0.0]


def test_text_tracks_are_proposals_decided_one_by_one():
    rows = Regions(xyxy=[[10, 10, 60, 20]] * 3 + [[100, 10, 130, 40]] * 3, score=[0.9] * 6,
                   label=[TEXT] * 3 + [FACE] * 3, track_id=[1, 1, 1, 2, 2, 2], frame=[0, 1, 2, 0, 1, 2])
    queue = {item.track_id: item for item in build_queue(rows, 3)}
    assert queue[1].kind == "text_proposal"
    assert not queue[1].routine
    assert queue[2].routine


def test_the_workbench_draws_text_boxes_with_its_label_key():
    case = Case.blank("doc.png", n_frames=1, width=320, height=200, kind="photo")
    model = EditorModel(case)
    key = str(LABELS.index("text") + 1)
    assert model.on_key(key) == "label"
    assert model.draw_label == "text"
    assert SHORTCUTS[key] == "draw text boxes"
    tid = model.draw_box((10, 10, 80, 30))
    assert LABELS[case.tracks[tid].label] == "text"


def test_the_cli_reads_plural_label_names(tmp_path):
    args = cli.build_parser().parse_args(["anonymize", "x.png", "--what", "faces,text"])
    assert cli.settings_from_args(args).what == ("face", "text")


def test_a_name_badge_in_a_small_photo_is_found(tmp_path):
    # sample_media/portrait.jpg (600 px tall) wears a name badge of 6-7 px letters near (108-162, 492-511): found
    # only once the frame is enlarged (TEXT_LABEL_MAX_UPSCALE), as small faces are.
    out, regions_out = tmp_path / "p.png", tmp_path / "r.jsonl"
    portrait = Path(__file__).resolve().parents[1] / "sample_media" / "portrait.jpg"
    assert cli.main(["anonymize", str(portrait), "-o", str(out), "--what", "text", "--regions-out", str(regions_out),
                     "--quiet"]) == 0
    regions = Regions.from_records(json.loads(regions_out.read_text().splitlines()[0])["regions"])
    badge = np.array([[110, 494, 160, 509]], np.float32)
    assert text_coverage(badge, mask_extent(regions, Settings(what=("text",))), 512, 600)[0] == 1.0


def test_the_red_team_looks_for_text_when_the_run_did():
    from anonlab.detect.text import TextDetector
    from anonlab.review import red_team_detectors

    dets = red_team_detectors(Settings(what=("face", "text")))
    texts = [d for d in dets if isinstance(d, TextDetector)]
    assert len(texts) == 1
    assert texts[0].label == TEXT
    assert texts[0].thresh == pytest.approx(0.15)  # half the analysis threshold, as for every model


def test_label_layers_hide_boxes_in_the_view_not_in_the_export():
    case = Case.blank("doc.png", n_frames=1, width=320, height=200, kind="photo")
    model = EditorModel(case)
    face = model.draw_box((10, 10, 40, 40), label="face")
    text = model.draw_box((60, 10, 160, 30), label="text")
    model.toggle_label_layer("text")
    assert [b.track for b in model.boxes()] == [face]
    assert model.selected is None  # the selected text track was hidden with its layer
    assert len(model.mask_regions()) == 2  # hiding is only a view
    model.toggle_label_layer("text")
    assert sorted(b.track for b in model.boxes()) == [face, text]
    with pytest.raises(AnonlabError, match="unknown label"):
        model.toggle_label_layer("cat")
