import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from anonlab import __version__
from anonlab.errors import AnonlabError, OutputError
from anonlab.regions import ANALYST, DETECTOR, FACE, INTERPOLATED, PLATE, TRACKER, Regions
from anonlab.report.audit import UnsafeReportError, assert_report_is_safe, make_report, render_markdown, write_report
from anonlab.settings import Settings

SHA_IN, SHA_OUT = "a" * 64, "b" * 64


def regions():
    return Regions(
        xyxy=[[10.5, 20.25, 50.75, 80.125]] * 6,
        label=[FACE, FACE, FACE, PLATE, PLATE, FACE],
        track_id=[0, 0, 1, 2, 2, -1],
        source=[DETECTOR, INTERPOLATED, ANALYST, DETECTOR, TRACKER, DETECTOR],
        frame=[0, 1, 1, 0, 1, 3],
    )


def report(**kw):
    args = dict(settings=Settings(face_model="/home/alice/models/my_face.onnx"),
                models=[{"name": "centerface", "file": "/opt/m/centerface.onnx", "sha256": "c" * 64, "licence": "MIT"}],
                input_path="/cases/2024-017 Jane Doe/bodycam.mp4", output_path="/out/bodycam_anon.mp4",
                input_sha256=SHA_IN, output_sha256=SHA_OUT, n_frames_in=4, n_frames_out=4, regions=regions(),
                timings={"analyse": 1.25, "render": 0.5}, edits=3,
                review={"status": "approved", "signed_off_by": "J. Analyst", "signed_off_at": "2024-05-01T10:00:00Z",
                        "secret_box_list": [1, 2, 3, 4]},
                exclusions=[{"reason": "public official, consent on file", "track_id": 1, "label": "face",
                             "xyxy": [1, 2, 3, 4]}])
    args.update(kw)
    return make_report(**args)


def test_report_contents():
    r = report()
    assert r["tool"]["version"] == __version__
    assert r["input"] == {"file": "bodycam.mp4", "sha256": SHA_IN, "frames": 4}
    assert r["output"]["file"] == "bodycam_anon.mp4"
    assert r["frames_match"]
    assert r["settings"]["face_model"] == "my_face.onnx"
    assert r["settings"]["what"] == "face,plate"
    assert r["settings_digest"] == Settings(face_model="/home/alice/models/my_face.onnx").digest
    assert r["models"] == [{"name": "centerface", "sha256": "c" * 64, "file": "centerface.onnx", "licence": "MIT"}]
    reg, tr = r["regions"], r["tracks"]
    assert reg["total"] == 6
    assert reg["frames_with_regions"] == 3
    assert reg["untracked"] == 1
    assert reg["by_label"] == {"face": 4, "plate": 2}
    assert reg["by_source"] == {"detector": 3, "tracker": 1, "interpolated": 1, "extended": 0, "analyst": 1}
    assert reg["by_label_and_source"]["plate"]["tracker"] == 1
    assert tr["total"] == 3
    assert tr["by_label"] == {"face": 2, "plate": 1}
    assert tr["by_source"]["detector"] == 2
    assert tr["by_source"]["analyst"] == 1
    assert tr["with_analyst_edits"] == 1
    assert r["manual_edits"] == 3
    assert r["review"] == {"status": "approved", "signed_off_by": "J. Analyst", "signed_off_at": "2024-05-01T10:00:00Z"}
    assert r["overrides"]["count"] == 1
    assert r["overrides"]["items"] == [{"reason": "public official, consent on file", "label": "face", "track_id": 1}]
    assert r["timings_s"] == {"analyse": 1.25, "render": 0.5}
    text = json.dumps(r)
    assert "/cases" not in text
    assert "Jane" not in text
    assert "alice" not in text


def test_defaults_and_mappings():
    r = make_report(settings=Settings(), models={"centerface.onnx": "d" * 64}, input_path="in.jpg",
                    output_path="out.jpg", input_sha256=SHA_IN, output_sha256=None, n_frames_in=1, n_frames_out=1,
                    regions=Regions.empty(), timings={})
    assert r["review"] == {"status": "not reviewed", "signed_off_by": None}
    assert r["overrides"] == {"count": 0, "reasons": {}, "items": []}
    assert r["regions"]["total"] == 0
    assert r["tracks"]["total"] == 0
    assert r["models"] == [{"name": "centerface.onnx", "sha256": "d" * 64}]


@pytest.mark.parametrize("kw, error", [
    ({"exclusions": [{"track_id": 1}]}, AnonlabError),                # override without a reason
    ({"models": [{"name": "x.onnx"}]}, AnonlabError),                 # model without hash
    ({"timings": {"total": "fast"}}, AnonlabError),
    ({"timings": {"total": float("nan")}}, AnonlabError),
    ({"review": "approved"}, AnonlabError),
    ({"extra": {"face_boxes": 3}}, UnsafeReportError),
    ({"extra": {"first_face": [12.5, 40.0, 80.0, 120.0]}}, UnsafeReportError),
    ({"extra": {"note": "face at 12, 40, 80, 120"}}, UnsafeReportError),
    ({"review": {"status": "approved", "note": "box 10 20 30 40 missed"}}, UnsafeReportError),
])
def test_make_report_rejects(kw, error):
    with pytest.raises(error, match="report"):
        report(**kw)


@pytest.mark.parametrize("bad", [
    {"x": 1},
    {"a": {"Y": 1}},
    {"a": [{"w": 3}]},
    {"H": 2},
    {"xyxy": "hidden"},
    {"bbox": None},
    {"face_bbox": 1},
    {"boxes": []},
    {"box_0": 1},
    {"xtl": 1.0},
    {"crop": "..."},
    {"landmarks": 5},
    {"a": [1.0, 2.0]},
    {"a": [[1, 2, 3, 4]]},
    {"a": (5, 6)},
    {"a": np.zeros(4)},
    {"a": b"\x00\x01"},
    {"a": "10, 20, 30, 40"},
    {"a": "[10.5 20.5 30.5 40.5]"},
    {"a": float("inf")},
    {"a": object()},
    {"input": {"file": "/home/alice/in.mp4"}},
    {"input": {"file": "C:\\cases\\in.mp4"}},
    {"extra": {"case_file": "/home/alice/case.json"}},
    {1: "non-text key"},
    [1, 2],
])
def test_assert_report_is_safe_rejects(bad):
    with pytest.raises(UnsafeReportError, match="report entry") as exc:
        assert_report_is_safe(bad)
    # the message names where, never the value
    assert "alice" not in str(exc.value)
    assert "20" not in str(exc.value)


@pytest.mark.parametrize("good", [
    {},
    {"regions": {"total": 3, "by_label": {"face": 3}}},
    {"a": [1]},                               # one number is a count, not a coordinate
    {"a": ["face", "plate"]},
    {"created": "2024-05-01T10:00:00+00:00", "sha": "0123456789abcdef" * 4, "version": "0.1.0"},
    {"input": {"file": "VID 2024 05 01 1200.mp4"}},   # a user's file name is kept as given
    {"extra": {"case_file": "case 2024 05 01 7.json"}},
    {"width": 1920, "height": 1080, "frames": 25},
    {"a": None, "b": True, "c": np.int64(3), "d": 0.5},
])
def test_assert_report_is_safe_accepts(good):
    assert_report_is_safe(good)


def test_write_report_json_and_markdown(tmp_path):
    r = report()
    json_path, md_path = write_report(r, tmp_path / "run.json")
    assert md_path == tmp_path / "run.md"
    assert json.loads(json_path.read_text()) == r
    md = md_path.read_text()
    assert "bodycam.mp4" in md
    assert SHA_IN in md
    assert "J. Analyst" in md
    assert "public official" in md
    assert "| face | 4 | 2 |" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.md"]  # no temporary files left
    assert render_markdown(r) == md


def test_write_report_refuses_unsafe_and_bad_paths(tmp_path):
    r = report()
    r["extra"] = {"bbox": 1}
    with pytest.raises(UnsafeReportError, match="names a coordinate"):
        write_report(r, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match=r"use a \.json name"):
        write_report(report(), tmp_path / "r.md")
    with pytest.raises(OutputError, match="folder does not exist"):
        write_report(report(), tmp_path / "missing" / "r.json")


# --- property: whatever the regions, no coordinate reaches the report --------------------------------
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")
coord = st.floats(5.0, 5000.0, allow_nan=False, width=32)


@hsettings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(coord, coord, coord, coord, st.integers(0, 1), st.integers(-1, 5),
                               st.integers(0, 4), st.integers(0, 50)), max_size=30))
def test_random_regions_never_leak_coordinates(rows, tmp_path):
    arr = np.asarray([r[:4] for r in rows], np.float32).reshape(-1, 4)
    reg = Regions(xyxy=arr, label=[r[4] for r in rows], track_id=[r[5] for r in rows],
                  source=[r[6] for r in rows], frame=[r[7] for r in rows])
    r = make_report(settings=Settings(), models={"m.onnx": "e" * 64}, input_path="in.mp4", output_path="o.mp4",
                    input_sha256=SHA_IN, output_sha256=SHA_OUT, n_frames_in=51, n_frames_out=51, regions=reg,
                    timings={"total": 1.5})
    json_path, md_path = write_report(r, tmp_path / "r.json")
    for text in (json_path.read_text(), md_path.read_text()):
        # The only decimals a report holds are settings and timings (all < 5 here); any decimal >= 5 would be
        # a coordinate, a width or a height.
        leaked = [t for t in DECIMAL.findall(text) if float(t) >= 5]
        assert not leaked
        for v in np.unique(np.round(arr, 1)).tolist():
            assert f"{v:.1f}" not in DECIMAL.findall(text)
    assert r["regions"]["total"] == len(rows)
