"""The review queue inside the workbench: step through flagged items, decide each, gate the export.

`ReviewSession` is the plain-Python model (tests drive it without a browser); `ReviewPanel` is the thin
ipywidgets view the `Workbench` shows under its track list. Nothing is exported before every item is
accepted, fixed or dismissed, or the analyst overrides the gate with a reason (recorded in the report).
"""

from __future__ import annotations

from typing import Sequence

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.review import ReviewItem, build_queue, gate_summary, require_export_allowed

DECISIONS = ("accepted", "fixed", "dismissed")


class ReviewSession:
    """The queue of one case and where the analyst stands in it."""

    def __init__(self, case: Case, *, scene_cuts: Sequence[int] = (), disagreement_frames: Sequence[int] = ()):
        self.case = case
        self.scene_cuts = list(scene_cuts) or list(getattr(case, "scene_cuts", []))
        self.disagreement_frames = list(disagreement_frames)
        self.queue: list[ReviewItem] = []
        self.index = 0
        self.refresh()

    def refresh(self) -> None:
        """Recompute the queue from the case as it is now (after edits or a new analysis)."""
        self.queue = build_queue(self.case.effective_regions(), self.case.input.n_frames,
                                 scene_cuts=self.scene_cuts, disagreement_frames=self.disagreement_frames,
                                 edited=self.case.review_edits())
        self.index = min(self.index, max(len(self.queue) - 1, 0))

    @property
    def decisions(self) -> dict[str, str]:
        return self.case.review.decisions

    @property
    def pending(self) -> list[ReviewItem]:
        return [item for item in self.queue if item.id not in self.decisions]

    @property
    def current(self) -> ReviewItem | None:
        return self.queue[self.index] if self.queue else None

    def flagged_frames(self) -> list[int]:
        return sorted({item.frame for item in self.pending})

    def move(self, step: int) -> ReviewItem | None:
        if self.queue:
            self.index = (self.index + step) % len(self.queue)
        return self.current

    def next_pending(self) -> ReviewItem | None:
        """The next undecided item after the current one (wrapping), and make it current."""
        for k in range(1, len(self.queue) + 1):
            i = (self.index + k) % len(self.queue)
            if self.queue[i].id not in self.decisions:
                self.index = i
                return self.queue[i]
        return None

    def decide(self, decision: str) -> None:
        if decision not in DECISIONS:
            raise AnonlabError(f"a review decision is one of {', '.join(DECISIONS)}")
        item = self.current
        if item is None:
            raise AnonlabError("the review queue is empty")
        self.case.decide(item.id, decision)

    def override(self, reason: str, reviewer: str) -> None:
        self.case.override_gate(reason, reviewer)

    def gate(self, case: Case | None = None) -> None:
        """The workbench's export gate: raises `AnonlabError` while the queue blocks the export."""
        self.refresh()
        review = self.case.review
        require_export_allowed(self.queue, review.decisions, review.override)

    # --- residual risk: a stratified sample of frames the analyst checks by eye ---------------------
    def draw_sample(self, k: int, seed: int | None = None) -> list[int]:
        from anonlab.review import sample_frames

        seed = int(seed if seed is not None else int.from_bytes(__import__("os").urandom(4), "little"))
        frames = sample_frames(self.case.input.n_frames, int(k), scene_cuts=self.scene_cuts, seed=seed)
        self.case.set_risk_sample(frames, seed)
        return frames

    def unchecked_sample(self) -> list[int]:
        risk = self.case.review.risk
        return [] if risk is None else [f for f in risk["frames"] if str(f) not in risk["checked"]]

    def record_check(self, frame: int, misses: int) -> None:
        self.case.record_risk_check(frame, misses)

    def risk(self) -> dict | None:
        """`anonlab.review.risk_bound` over the frames checked so far (None before any check)."""
        from anonlab.review import risk_bound

        risk = self.case.review.risk
        if not risk or not risk["checked"]:
            return None
        misses = list(risk["checked"].values())
        info = self.case.input
        return risk_bound(len(misses), sum(misses), info.n_frames, info.fps or 25.0,
                          n_frames_with_miss=sum(1 for m in misses if m))

    def report_fields(self) -> dict:
        """The ``review`` argument of `anonlab.report.make_report` for this case."""
        from anonlab.review import report_review_fields

        self.refresh()
        return report_review_fields(self.case.review.to_dict(), self.queue, self.risk())

    def summary(self) -> dict:
        review = self.case.review
        return gate_summary(self.queue, review.decisions, review.override)


class ReviewPanel:
    """The review queue as a panel of the workbench (a thin view over `ReviewSession`)."""

    def __init__(self, workbench, session: ReviewSession | None = None) -> None:
        import ipywidgets as widgets

        self.wb = workbench
        self.session = session or ReviewSession(workbench.case)
        button = lambda desc, fn, tip="": self._button(widgets, desc, fn, tip)  # noqa: E731
        self.title = widgets.HTML()
        self.item = widgets.HTML()
        self.prev_button = button("◀", lambda: self._go(-1), "previous item")
        self.next_button = button("next undecided ▶", self._next_pending, "next undecided item")
        self.accept_button = button("accept", lambda: self._decide("accepted"), "the masks here are right")
        self.fixed_button = button("fixed", lambda: self._decide("fixed"), "I corrected this item")
        self.dismiss_button = button("dismiss", lambda: self._decide("dismissed"), "nothing to mask here")
        self.reviewer = widgets.Text(placeholder="your name", description="reviewer")
        self.reason = widgets.Text(placeholder="why export with open items", description="override")
        self.override_button = button("override gate", self._override, "record a reason and allow export")
        self.sample_size = widgets.BoundedIntText(value=30, min=1, max=10_000, description="sample",
                                                  layout=widgets.Layout(width="160px"))
        self.sample_button = button("draw frames to check", self._draw_sample,
                                    "a stratified random sample for the residual-risk estimate")
        self.misses = widgets.BoundedIntText(value=0, min=0, max=1000, description="missed here",
                                             layout=widgets.Layout(width="170px"))
        self.checked_button = button("checked ▶", self._checked, "record this sample frame and go to the next")
        self.risk_text = widgets.HTML()
        self.reviewed_button = button("mark reviewed", lambda: self._status("reviewed"))
        self.approved_button = button("approve", lambda: self._status("approved"))
        self.widget = widgets.VBox([
            self.title, self.item,
            widgets.HBox([self.prev_button, self.next_button]),
            widgets.HBox([self.accept_button, self.fixed_button, self.dismiss_button]),
            self.reviewer, widgets.HBox([self.reason, self.override_button]),
            widgets.HBox([self.reviewed_button, self.approved_button]),
            widgets.HTML("<b>Residual risk</b>: check a random sample of frames by eye"),
            widgets.HBox([self.sample_size, self.sample_button]),
            widgets.HBox([self.misses, self.checked_button]), self.risk_text,
        ])
        self.update()
        workbench.model.observe(self._on_model)

    def _on_model(self, changes: set[str]) -> None:
        if "case" in changes:  # an edit or a review decision: the queue may have changed
            self.refresh()

    @staticmethod
    def _button(widgets, desc, fn, tip):
        b = widgets.Button(description=desc, tooltip=tip, layout=widgets.Layout(width="auto"))
        b.on_click(lambda _: fn())
        return b

    def _guard(self, fn) -> None:
        try:
            fn()
        except AnonlabError as exc:
            self.wb.model.say(str(exc))
        self.update()

    def _go(self, step: int) -> None:
        self._show(self.session.move(step))

    def _next_pending(self) -> None:
        self._show(self.session.next_pending())

    def _show(self, item: ReviewItem | None) -> None:
        if item is not None:
            self.wb.model.seek(item.frame)
            if item.track_id is not None and item.track_id >= 0 and item.track_id in self.wb.case.tracks:
                self.wb.model.select(item.track_id)
        self.update()

    def _decide(self, decision: str) -> None:
        self._guard(lambda: (self.session.decide(decision), self.session.next_pending()))
        self._show(self.session.current)

    def _draw_sample(self) -> None:
        self._guard(lambda: self.session.draw_sample(self.sample_size.value))
        self._show_sample()

    def _show_sample(self) -> None:
        todo = self.session.unchecked_sample()
        if todo:
            self.wb.model.seek(todo[0])
        self.update()

    def _checked(self) -> None:
        todo = self.session.unchecked_sample()
        if not todo:
            self.wb.model.say("no sample frame left to check; draw a sample first")
            return
        self._guard(lambda: self.session.record_check(todo[0], self.misses.value))
        self.misses.value = 0
        self._show_sample()

    def _override(self) -> None:
        self._guard(lambda: self.session.override(self.reason.value, self.reviewer.value))

    def _status(self, status: str) -> None:
        self._guard(lambda: self.wb.case.set_status(status, self.reviewer.value))

    def refresh(self) -> None:
        self.session.refresh()
        self.update()

    def update(self) -> None:
        s = self.session
        summary = s.summary()
        self.title.value = (f"<b>Review</b> — {len(s.pending)} of {len(s.queue)} item(s) open; "
                            f"status <b>{self.wb.case.review.status}</b>"
                            + (" — export allowed" if summary["export_allowed"] else " — export blocked"))
        item = s.current
        self.item.value = "queue empty" if item is None else (
            f"{s.index + 1}/{len(s.queue)}: <b>{item.kind}</b> at frame {item.frame}"
            + (f", track {item.track_id}" if item.track_id is not None and item.track_id >= 0 else "")
            + f" — {item.reason}" + (f" <i>({s.decisions[item.id]})</i>" if item.id in s.decisions else ""))
        self.wb.flagged_frames = s.flagged_frames()
        risk, todo = s.risk(), s.unchecked_sample()
        self.risk_text.value = ((f"{len(todo)} sample frame(s) left to check (now at frame {todo[0]}). " if todo else "")
                                + (risk["statement"] if risk else "no frames checked yet"))
