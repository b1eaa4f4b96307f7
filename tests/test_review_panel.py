"""The review queue as the workbench uses it: cards, pages of routine tracks, decisions gate the export."""

import numpy as np
import pytest

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.pipeline import Analysis
from anonlab.regions import Regions
from anonlab.settings import Settings
from anonlab.widgets.review_panel import Page, ReviewSession


def case_with_track():
    case = Case.blank("clip.mp4", n_frames=20, width=64, height=48)
    case.add_track("face", {f: (10 + f, 10, 20 + f, 22) for f in range(2, 9)})
    return case


def analysed_case(n_tracks=30, n_frames=60, hole=None):
    rows = []
    for t in range(1, n_tracks + 1):
        frames = [f for f in range(t % 7, n_frames - t % 5) if hole is None or t != 1 or not hole[0] <= f < hole[1]]
        rows.append(Regions(xyxy=[[t, t, t + 9, t + 9]] * len(frames), score=np.full(len(frames), 0.9),
                            track_id=np.full(len(frames), t), frame=frames))
    analysis = Analysis(path="clip.mp4", kind="video", n_frames=n_frames, width=320, height=192, fps=25.0,
                        times=np.arange(n_frames) / 25, regions=Regions.merge(rows), settings=Settings())
    return Case.from_analysis(analysis, sha256="0" * 64)


def test_queue_gate_and_decisions():
    case = analysed_case(hole=(20, 40))
    case.scene_cuts = [30]
    session = ReviewSession(case)
    case.actor = "Ann"
    own = [c for c in session.cards if not isinstance(c, Page)]
    assert [c.kind for c in own] == ["unmasked_gap", "scene_cut"]  # the risks first, one decision each
    pages = [c for c in session.cards if isinstance(c, Page)]
    assert [len(p.items) for p in pages] == [12, 12, 5]
    assert pages[0].of == 3
    assert session.stats()["decisions"] == 5
    assert session.stats()["events"] > 30
    assert 30 in session.flagged_frames()
    assert 20 in session.flagged_frames()
    with pytest.raises(AnonlabError, match="blocked"):
        session.gate()
    while (card := session.next_pending()) is not None:
        session.show(card)
        session.decide("accepted")
    session.gate()  # every card decided: allowed
    assert session.summary()["export_allowed"]
    assert session.stats()["decisions_left"] == 0


def test_a_page_is_accepted_only_after_it_was_shown():
    session = ReviewSession(analysed_case(n_tracks=5))
    (page,) = session.cards
    assert isinstance(page, Page)
    with pytest.raises(AnonlabError, match="thumbnails first"):
        session.decide("accepted")
    with pytest.raises(AnonlabError, match="accepted together"):
        session.decide("dismissed")
    session.show(page)
    session.decide("accepted")
    assert all(session.decisions[i.id] == "accepted" for i in page.items)


def test_one_card_of_a_page_can_be_opened_and_decided_alone():
    case = analysed_case(n_tracks=5)
    case.actor = "Ann"
    session = ReviewSession(case)
    item = session.open_item("track:3")
    assert session.current is item
    session.decide("dismissed")
    assert case.review.decided["track:3"]["by"] == "Ann"
    session.refresh()
    page = next(c for c in session.cards if isinstance(c, Page))
    assert "track:3" not in [i.id for i in page.items]


def test_next_undecided_goes_to_the_current_card_first():
    """Item 14: 'next undecided' skipped the current undecided card (the first one was never shown)."""
    case = analysed_case(n_tracks=2, hole=(20, 40))
    case.scene_cuts = [5, 30]
    session = ReviewSession(case)
    first = session.current
    assert session.next_pending() is first  # not shown yet: go there
    session.show(first)
    assert session.next_pending() is not first  # shown: on to the next


def test_an_edit_reopens_the_tracks_card():
    case = analysed_case(n_tracks=3)
    case.actor = "Ann"
    session = ReviewSession(case)
    session.show()
    session.decide("accepted")
    assert session.decisions
    case.set_keys(2, {10: (1, 1, 30, 30)})
    assert "track:2" not in session.decisions
    assert "track:1" in session.decisions
    case.undo()
    case.redo()
    assert "track:2" not in session.decisions


def test_never_analysed_case_is_blocked_even_with_an_empty_queue():
    session = ReviewSession(Case.blank("clip.mp4", n_frames=20, width=64, height=48))
    assert session.queue == []
    with pytest.raises(AnonlabError, match="not analysed"):
        session.gate()
    session.case.allow_without_analysis("whole_frames", "Ann")
    session.gate()


def test_an_analysis_that_found_nothing_asks_for_a_look():
    analysis = Analysis(path="clip.mp4", kind="video", n_frames=20, width=64, height=48, fps=25.0,
                        times=np.arange(20) / 25, regions=Regions.empty(), settings=Settings())
    session = ReviewSession(Case.from_analysis(analysis, sha256="0" * 64))
    assert [c.kind for c in session.cards] == ["nothing_found"]


def test_override_needs_reason_and_name():
    session = ReviewSession(analysed_case(n_tracks=2))
    with pytest.raises(AnonlabError, match="needs a reason"):
        session.override("", "Ann")
    with pytest.raises(AnonlabError, match="name"):
        session.override("deadline", "")
    session.override("deadline; second reviewer checks tomorrow", "Ann")
    session.gate()
    assert session.case.review.override["by"] == "Ann"


def test_bad_decision_rejected():
    session = ReviewSession(case_with_track())
    with pytest.raises(ValueError, match="a review decision is one of"):
        session.decide("maybe")


def test_residual_risk_sample_is_recorded_and_bounded(tmp_path):
    from anonlab.review import risk_bound

    case = case_with_track()
    case.path = tmp_path / "c.case.json"
    session = ReviewSession(case)
    frames = session.draw_sample(5, seed=3)
    assert len(frames) == 5
    assert session.unchecked_sample() == frames
    assert session.risk() is None
    for f, misses in zip(frames, [0, 1, 0, 0, 2]):
        session.record_check(f, misses)
    assert session.unchecked_sample() == []
    expected = risk_bound(5, 3, 20, 25.0, n_frames_with_miss=2)
    assert session.risk() == expected
    assert session.report_fields()["residual_risk"] == expected["statement"]
    with pytest.raises(AnonlabError, match="not in the residual-risk sample"):
        session.record_check(max(set(range(20)) - set(frames)), 0)  # not a sampled frame
    case.save()
    back = Case.load(case.path)
    assert back.review.risk == case.review.risk  # the sample and the checks survive a reload


def test_workbench_export_writes_the_audit_report_with_who_decided(tmp_path):
    import json

    import cv2

    from anonlab.widgets import Workbench

    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((48, 64, 3), 120, np.uint8))
    wb = Workbench(photo)
    wb.analyst.value = "Tess Tester"
    a = wb.model.draw_box((10, 10, 30, 30))
    b = wb.model.draw_box((35, 10, 55, 30))
    wb.model.exclude(b, "the speaker, consent on file")
    wb.case.allow_without_analysis("manual_only", None, "a grey test picture, checked by eye")
    wb.review.session.draw_sample(1, seed=0)
    wb.review.session.record_check(0, 0)
    review = wb.review
    while review.session.next_pending() is not None:
        review.show_current()
        review._decide("accepted")
        # said in words, not with the queue's ids ("track:1 accepted", "deleted:0:4 accepted")
        said = review.message.value
        assert (": accepted" in said or "every card is decided" in said) and "track:" not in said
    wb.export_path.value = str(tmp_path / "out.jpg")
    assert wb.export() is not None, wb.status_msg.value
    report = json.loads((tmp_path / "out.jpg.report.json").read_text())
    assert report["manual_edits"] == 3
    assert report["review"]["residual_risk"]
    item = report["overrides"]["items"][0]
    assert (item["track_id"], item["by"], item["reason"]) == (b, "Tess Tester", "the speaker, consent on file")
    md = (tmp_path / "out.jpg.report.md").read_text()
    assert "Tess Tester" in md
    assert "| — |" not in md.split("## Overrides")[1].split("##")[0]# item 8
    assert "analyst boxes only, chosen by Tess Tester" in report["extra"]["exported_without_analysis"]
    del a


def test_scene_cuts_survive_the_case_file(tmp_path):
    analysis = Analysis(path=tmp_path / "clip.mp4", kind="video", n_frames=20, width=64, height=48, fps=25.0,
                        times=np.arange(20) / 25, regions=Regions(xyxy=[[1, 1, 9, 9]], score=[0.9], track_id=[1]),
                        settings=Settings(), scene_cuts=[7, 15])
    case = Case.from_analysis(analysis, sha256="0" * 64)
    case.path = tmp_path / "clip.case.json"
    case.save()
    back = Case.load(case.path)
    assert back.scene_cuts == [7, 15]
    assert {i.frame for i in ReviewSession(back).queue if i.kind == "scene_cut"} == {7, 15}
