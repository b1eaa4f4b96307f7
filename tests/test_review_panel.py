"""The review queue as the workbench uses it: decisions gate the export, overrides are recorded."""

import pytest

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.widgets.review_panel import ReviewSession


def case_with_track():
    case = Case.blank("clip.mp4", n_frames=20, width=64, height=48)
    case.add_track("face", {f: (10 + f, 10, 20 + f, 22) for f in range(2, 9)})
    return case


def test_queue_gate_and_decisions():
    session = ReviewSession(case_with_track(), scene_cuts=[12])
    session.case.actor = "Ann"
    kinds = {item.kind for item in session.queue}
    assert {"edited", "scene_cut"} <= kinds
    assert 12 in session.flagged_frames()
    with pytest.raises(AnonlabError):
        session.gate()
    while session.next_pending() is not None:
        session.decide("dismissed")
    session.gate()  # every item decided: allowed
    assert session.summary()["export_allowed"]


def test_override_needs_reason_and_name():
    session = ReviewSession(case_with_track())
    with pytest.raises(AnonlabError):
        session.override("", "Ann")
    session.override("deadline; second reviewer checks tomorrow", "Ann")
    session.gate()
    assert session.case.review.override["by"] == "Ann"


def test_bad_decision_rejected():
    session = ReviewSession(case_with_track())
    with pytest.raises(AnonlabError):
        session.decide("maybe")


def test_residual_risk_sample_is_recorded_and_bounded(tmp_path):
    from anonlab.review import risk_bound

    case = case_with_track()
    case.path = tmp_path / "c.case.json"
    session = ReviewSession(case)
    frames = session.draw_sample(5, seed=3)
    assert len(frames) == 5 and session.unchecked_sample() == frames and session.risk() is None
    for f, misses in zip(frames, [0, 1, 0, 0, 2]):
        session.record_check(f, misses)
    assert session.unchecked_sample() == []
    expected = risk_bound(5, 3, 20, 25.0, n_frames_with_miss=2)
    assert session.risk() == expected
    assert session.report_fields()["residual_risk"] == expected["statement"]
    with pytest.raises(AnonlabError):
        session.record_check(max(set(range(20)) - set(frames)), 0)  # not a sampled frame
    case.save()
    back = Case.load(case.path)
    assert back.review.risk == case.review.risk  # the sample and the checks survive a reload


def test_workbench_export_writes_the_audit_report(tmp_path):
    import json

    import cv2
    import numpy as np

    from anonlab.widgets import Workbench

    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((48, 64, 3), 120, np.uint8))
    wb = Workbench(photo)
    wb.model.draw_box((10, 10, 30, 30))
    wb.review.session.override("test photo", "Tester")
    wb.case.allow_without_analysis("manual_only", "Tester", "a grey test picture, checked by eye")
    wb.review.session.draw_sample(1, seed=0)
    wb.review.session.record_check(0, 0)
    wb.export_path.value = str(tmp_path / "out.jpg")
    assert wb.export() is not None
    report = json.loads((tmp_path / "out.jpg.report.json").read_text())
    assert report["manual_edits"] == 1 and report["review"]["residual_risk"]
    assert (tmp_path / "out.jpg.report.md").exists()


def test_scene_cuts_survive_the_case_file(tmp_path):
    import numpy as np

    from anonlab.pipeline import Analysis
    from anonlab.regions import Regions
    from anonlab.settings import Settings

    analysis = Analysis(path=tmp_path / "clip.mp4", kind="video", n_frames=20, width=64, height=48, fps=25.0,
                        times=np.arange(20) / 25, regions=Regions(xyxy=[[1, 1, 9, 9]], score=[0.9], track_id=[1]),
                        settings=Settings(), scene_cuts=[7, 15])
    case = Case.from_analysis(analysis, sha256="0" * 64)
    case.path = tmp_path / "clip.case.json"
    case.save()
    back = Case.load(case.path)
    assert back.scene_cuts == [7, 15]
    assert {i.frame for i in ReviewSession(back).queue if i.kind == "scene_cut"} == {7, 15}
