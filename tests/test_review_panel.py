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
