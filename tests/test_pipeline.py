"""The shared engine: regions files in and out, rendering exactly the given regions."""

import json

import numpy as np
import pytest

from anonlab.errors import AnonlabError
from anonlab.media import VideoReader
from anonlab.pipeline import anonymize, describe, read_regions, render, write_regions
from anonlab.regions import ANALYST, FACE, PLATE, Regions
from anonlab.settings import Settings
from mediagen import read_barcode


def planted(n_frames):
    frames = np.arange(n_frames)
    boxes = np.stack([40 + frames, np.full(n_frames, 30), 80 + frames, np.full(n_frames, 70)], axis=1)
    return Regions(xyxy=boxes, score=np.full(n_frames, 0.9), label=np.where(frames % 2, FACE, PLATE),
                   track_id=np.full(n_frames, 7), source=np.full(n_frames, ANALYST), frame=frames)


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".xml"])
def test_regions_files_round_trip(tmp_path, clips, ext):
    analysis = describe(clips["vfr"])
    regions = planted(analysis.n_frames)
    write_regions(analysis, tmp_path / f"r{ext}", regions)
    back = read_regions(tmp_path / f"r{ext}", analysis.n_frames)
    order = np.lexsort((back.track_id, back.frame))
    back = back[order]
    assert back.frame.tolist() == regions.frame.tolist()
    assert np.allclose(back.xyxy, regions.xyxy, atol=0.06)
    assert back.label.tolist() == regions.label.tolist()


def test_jsonl_format_per_frame(tmp_path, clips):
    analysis = describe(clips["vfr"])
    write_regions(analysis, tmp_path / "r.jsonl", planted(analysis.n_frames)[:3])
    lines = [json.loads(l) for l in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == analysis.n_frames  # one line per frame, empty frames included
    assert lines[1]["time"] == pytest.approx(analysis.times[1])
    assert set(lines[0]["regions"][0]) == {"track_id", "label", "x", "y", "w", "h", "score", "source"}
    assert lines[5]["regions"] == []


@pytest.mark.parametrize("content, fragment", [
    ('{"frame": 0}\n', "line 1"),
    ('not json\n', "line 1"),
    ('{"frame": 999, "regions": [{"x": 1, "y": 1, "w": 2, "h": 2}]}\n', "outside frames"),
])
def test_read_regions_rejects_malformed(tmp_path, content, fragment):
    (tmp_path / "r.jsonl").write_text(content)
    with pytest.raises(AnonlabError, match=fragment):
        read_regions(tmp_path / "r.jsonl", 40)


def test_anonymize_with_regions_in_masks_exactly_those(tmp_path, clips):
    analysis = describe(clips["audio"])
    regions = planted(analysis.n_frames)
    write_regions(analysis, tmp_path / "r.jsonl", regions)
    report = anonymize(clips["audio"], tmp_path / "o.mp4", Settings(mask="solid"), regions_in=tmp_path / "r.jsonl",
                       progress=False, report=tmp_path / "rep.json")
    assert report["regions"]["total"] == analysis.n_frames
    with VideoReader(clips["audio"]) as a, VideoReader(tmp_path / "o.mp4") as b:
        for n in (0, 17, 39):
            x1, y1, x2, y2 = regions.at_frame(n).xyxy[0].astype(int)
            fa, fb = a.get(n).astype(int), b.get(n).astype(int)
            assert read_barcode(fb) == n  # outside the mask the frame is the same frame
            assert fb[y1:y2, x1:x2].max() < 30 and fa[y1:y2, x1:x2].mean() > 60  # solid fill landed there
            assert np.abs(fa[85:, :] - fb[85:, :]).mean() < 4  # and nowhere else


def test_render_masks_damaged_frames_whole(tmp_path, clips):
    analysis = describe(clips["plain"])
    analysis.damaged = [3]
    render(analysis, tmp_path / "o.mp4", progress=False)
    with VideoReader(tmp_path / "o.mp4") as out:
        assert out.get(3).max() < 30 and out.get(4).max() > 200


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_red_team_flags_a_face_left_unmasked(tmp_path):
    """The analyst's regions miss the face: the red-team pass on the output says so (no coordinates)."""
    photo = ROOT / "sample_media" / "portrait.jpg"
    (tmp_path / "none.jsonl").write_text('{"frame": 0, "time": 0, "regions": []}\n')
    bare = anonymize(photo, tmp_path / "bare.jpg", regions_in=tmp_path / "none.jsonl", red_team=True,
                     progress=False, report=tmp_path / "bare.json")
    assert bare["red_team"]["exposed"] >= 1 and "face found outside the masks" in bare["red_team"]["findings"][0]
    assert json.loads((tmp_path / "bare.json").read_text())["extra"]["red_team_exposed"] >= 1
    masked = anonymize(photo, tmp_path / "masked.jpg", progress=False)
    assert masked["regions"]["by_label"]["face"] >= 1
    # At half threshold the pass also fires on look-alikes (the cap badge); the face itself must be gone.
    from anonlab.regions import iou_matrix
    from anonlab.review import red_team
    from anonlab.settings import Settings

    face = describe(photo)
    found = red_team(tmp_path / "bare.jpg", face.regions, Settings())
    truth = np.array([[f.box for f in found if f.score > 0.5][0]])
    after = red_team(tmp_path / "masked.jpg", read_regions(tmp_path / "none.jsonl", 1), Settings())
    assert all(iou_matrix(truth, [f.box])[0, 0] < 0.1 for f in after)
