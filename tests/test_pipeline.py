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
    # 32 x 40 px: as tall as a face box (`FACE_ASPECT`), so a face's mask grows no further down than the test expects
    boxes = np.stack([40 + frames, np.full(n_frames, 30), 72 + frames, np.full(n_frames, 70)], axis=1)
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
            assert fb[y1:y2, x1:x2].max() < 30
            assert fa[y1:y2, x1:x2].mean() > 60  # solid fill landed there
            assert np.abs(fa[85:, :] - fb[85:, :]).mean() < 4  # and nowhere else


def test_render_masks_damaged_frames_whole(tmp_path, clips):
    analysis = describe(clips["plain"])
    analysis.damaged = [3]
    render(analysis, tmp_path / "o.mp4", progress=False)
    with VideoReader(tmp_path / "o.mp4") as out:
        assert out.get(3).max() < 30
        assert out.get(4).max() > 200


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_red_team_flags_a_face_left_unmasked(tmp_path):
    """The analyst's regions miss the face: the red-team pass on the output says so (no coordinates)."""
    photo = ROOT / "sample_media" / "portrait.jpg"
    (tmp_path / "none.jsonl").write_text('{"frame": 0, "time": 0, "regions": []}\n')
    bare = anonymize(photo, tmp_path / "bare.jpg", regions_in=tmp_path / "none.jsonl", red_team=True,
                     progress=False, report=tmp_path / "bare.json")
    assert bare["red_team"]["exposed"] >= 1
    assert "face found outside the masks" in bare["red_team"]["findings"][0]
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


# --- streaming: render while the analysis goes on ---------------------------------------------------------


class BarcodeDetector:
    """Finds one face that moves with the frame number (read from the barcode); blind on some frames."""

    models: list = []

    def __init__(self, blind=(5, 6, 7, 20), fail_at=None):
        self.blind, self.fail_at, self.calls = set(blind), fail_at, 0

    def __call__(self, frame):
        self.calls += 1
        n = read_barcode(frame)
        if n == self.fail_at:
            raise RuntimeError("detector failed")
        if n in self.blind:
            return Regions.empty()
        return Regions(xyxy=[[40 + n, 30, 80 + n, 70]], score=[0.9], label=[FACE])


STREAM_SETTINGS = Settings(detect_every=1, max_gap=3, lead=2, trail=2)


def sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def streamed(monkeypatch):
    """Patches in the barcode detector and records each block the streaming render publishes."""
    from anonlab import pipeline

    det = BarcodeDetector()
    monkeypatch.setattr("anonlab.detect.build_detector", lambda settings: det)
    monkeypatch.setattr(pipeline._StreamingRender, "BLOCK", 2)
    stops = []
    publish = pipeline._StreamingRender._publish

    def spy(self, rows, stop):
        stops.append(stop)
        publish(self, rows, stop)

    monkeypatch.setattr(pipeline._StreamingRender, "_publish", spy)
    return det, stops


def test_streaming_render_writes_what_analyse_then_render_writes(tmp_path, clips, streamed):
    from anonlab.pipeline import analyse, analyse_and_render

    _, stops = streamed
    analysis, info = analyse_and_render(clips["audio"], tmp_path / "s.mp4", STREAM_SETTINGS, progress=False)
    assert len(stops) > 2
    assert stops[0] < analysis.n_frames  # frames were rendered before the analysis ended
    assert info["frames"] == analysis.n_frames
    assert info["audio_packets"] > 0
    render(analyse(clips["audio"], STREAM_SETTINGS, progress=False), tmp_path / "q.mp4", progress=False)
    assert sha(tmp_path / "s.mp4") == sha(tmp_path / "q.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.mp4", "s.mp4"]


def test_streaming_render_falls_back_when_streamed_regions_differ(tmp_path, clips, streamed, monkeypatch):
    from anonlab.pipeline import analyse, analyse_and_render
    from anonlab.track.analyse import Analyser

    _, stops = streamed
    settled_rows = Analyser.settled_rows
    monkeypatch.setattr(Analyser, "settled_rows", lambda self, *a: (lambda r: r.replace(xyxy=r.xyxy + 5))(
        settled_rows(self, *a)))
    analysis, _ = analyse_and_render(clips["audio"], tmp_path / "s.mp4", STREAM_SETTINGS, progress=False)
    assert stops  # something was streamed, then found to differ, discarded and rendered again
    render(analyse(clips["audio"], STREAM_SETTINGS, progress=False), tmp_path / "q.mp4", progress=False)
    assert sha(tmp_path / "s.mp4") == sha(tmp_path / "q.mp4")


def test_streaming_render_leaves_nothing_when_the_analysis_fails(tmp_path, clips, streamed):
    from anonlab.pipeline import analyse_and_render

    det, stops = streamed
    det.fail_at = 30
    with pytest.raises(RuntimeError, match="detector failed"):
        analyse_and_render(clips["audio"], tmp_path / "s.mp4", STREAM_SETTINGS, progress=False)
    assert stops
    assert list(tmp_path.iterdir()) == []


def test_streaming_render_stops_the_analysis_when_the_render_fails(tmp_path, clips, streamed, monkeypatch):
    from anonlab import pipeline

    det, _ = streamed

    def broken(src, dst, render_frame, **kw):
        render_frame(0, np.zeros((8, 8, 3), np.uint8))
        raise AnonlabError("disk full")

    monkeypatch.setattr(pipeline, "write_video", broken)
    with pytest.raises(AnonlabError, match="disk full"):
        pipeline.analyse_and_render(clips["audio"], tmp_path / "s.mp4", STREAM_SETTINGS, progress=False)
    assert det.calls < 40
    assert list(tmp_path.iterdir()) == []
