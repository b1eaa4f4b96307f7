"""The review queue inside the workbench: one card at a time, one decision per card, and the export gate.

`ReviewSession` is the plain-Python model (tests drive it without a browser); `ReviewPanel` is the thin
ipywidgets view the `Workbench` shows beside the picture.

Review tracks, not events: the queue (`anonlab.review.build_queue`) has one card per track, with the
frames that raised its flags as a filmstrip, and frame-level cards (shot starts, detector disagreements,
red-team findings, deleted tracks). Cards that need a decision of their own come first, by risk; the rest (tracks
masked throughout, with routine flags only) come as pages of thumbnails, each page accepted with one click after
it was shown. Nothing is exported before every card is decided, or the analyst overrides the gate with a reason
and a name (recorded in the report); a case never analysed is refused whatever the gate says
(`anonlab.case.Case.export_check`).
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from typing import Sequence

from anonlab.case import Case
from anonlab.errors import AnonlabError
from anonlab.review import (DECISIONS, FILMSTRIP, PAGE_SIZE, ExportBlocked, Finding, ReviewItem, decisions_needed,
                            event_count, gate_summary, report_review_fields, review_pages, risk_bound, sample_frames)

__all__ = ["DECISIONS", "Page", "ReviewPanel", "ReviewSession"]


@dataclass(frozen=True)
class Page:
    """A page of routine track cards, decided together (``number`` of ``of``, counting from 1)."""

    items: tuple[ReviewItem, ...]
    number: int
    of: int

    @property
    def id(self) -> str:
        return f"page:{self.items[0].id}" if self.items else "page:empty"

    @property
    def frame(self) -> int:
        return self.items[0].frame

    @property
    def track_id(self) -> int:
        return self.items[0].track_id


#: Queue item kinds read as adjectives ("2 exposed", "1 nothing found"): the others take an "s" for more than one.
_NO_PLURAL = frozenset({"exposed", "deleted", "excluded", "doubtful", "edited", "nothing_found"})


def _kind_words(kind: str, n: int) -> str:
    """A queue item kind in words for ``n`` of them: ``scene_cut`` -> ``scene cut`` / ``scene cuts``."""
    words = kind.replace("_", " ")
    return words if n == 1 or kind in _NO_PLURAL else f"{words}s"


class ReviewSession:
    """The queue of one case, as cards: the decisions of their own first, then pages of routine tracks.

    Args:
        case: the case under review.
        scene_cuts: first frames of shots (default: the case's).
        disagreement_frames: frames where the face detectors disagree (`anonlab.review.find_disagreements`).
        findings: red-team findings on an export (`anonlab.review.red_team`).
        page_size: routine cards per page.
    """

    def __init__(self, case: Case, *, scene_cuts: Sequence[int] = (), disagreement_frames: Sequence[int] = (),
                 findings: Sequence[Finding] = (), page_size: int = PAGE_SIZE):
        self.case = case
        self.scene_cuts = list(scene_cuts) or list(getattr(case, "scene_cuts", []))
        self.disagreement_frames = list(disagreement_frames)
        self.findings = list(findings)
        self.page_size = int(page_size)
        self.queue: list[ReviewItem] = []
        self.cards: list[ReviewItem | Page] = []
        self.index = 0
        #: The card whose frames the player showed last (`show`): "next undecided" goes there first.
        self.shown: str | None = None
        self._seen_pages: set[tuple[str, ...]] = set()
        case.observe(self._on_case)
        self.refresh()

    # --- the queue ----------------------------------------------------------------------------------------
    def _on_case(self, what: str) -> None:
        """An edit to a track re-opens its card: the decision was about the track as it was."""
        if what not in ("edit", "undo", "redo"):
            return
        log = self.case.redo_log if what == "undo" else self.case.edits  # undo moved the op to the redo log
        if log and "track" in log[-1]:  # (an audio edit names no track)
            op = log[-1]
            ids = {op["track"], op.get("other", op["track"]), op.get("new", op["track"])}
            self.case.forget_decisions([f"track:{t}" for t in ids])

    def refresh(self) -> None:
        """Recompute the queue from the case as it is now (after edits or a new analysis)."""
        case = self.case
        self.queue = case.review_queue(scene_cuts=self.scene_cuts, disagreement_frames=self.disagreement_frames,
                                       findings=self.findings)
        current = self.current_id
        own = [i for i in self.queue if not i.routine]
        pages = review_pages(self.queue, self.decisions, size=self.page_size)
        done = [i for i in self.queue if i.routine and i.id in self.decisions]
        self.cards = [*own, *[Page(tuple(p), k + 1, len(pages)) for k, p in enumerate(pages)], *done]
        ids = [c.id for c in self.cards]
        self.index = ids.index(current) if current in ids else min(self.index, max(len(self.cards) - 1, 0))

    @property
    def decisions(self) -> dict[str, str]:
        return self.case.review.decisions

    @property
    def current(self) -> ReviewItem | Page | None:
        return self.cards[self.index] if self.cards else None

    @property
    def current_id(self) -> str | None:
        c = self.current if self.cards else None
        return None if c is None else c.id

    def is_decided(self, card: ReviewItem | Page) -> bool:
        if isinstance(card, Page):
            return all(i.id in self.decisions for i in card.items)
        return card.id in self.decisions

    @property
    def pending(self) -> list[ReviewItem]:
        return [item for item in self.queue if item.id not in self.decisions]

    @property
    def pending_cards(self) -> list[ReviewItem | Page]:
        return [c for c in self.cards if not self.is_decided(c)]

    def flagged_frames(self) -> list[int]:
        """Frames the player marks (the filmstrips of the cards still open)."""
        return sorted({f for item in self.pending for f in item.frames})

    def stats(self) -> dict:
        """Counts for the panel and the benchmark: cards, decisions left, and what the per-event queue asked."""
        return {"tracks": sum(1 for i in self.queue if i.id.startswith("track:")), "items": len(self.queue),
                "decisions": decisions_needed(self.queue, page_size=self.page_size),
                "decisions_left": len(self.pending_cards), "events": event_count(self.queue)}

    # --- moving -------------------------------------------------------------------------------------------
    def move(self, step: int) -> ReviewItem | Page | None:
        if self.cards:
            self.index = (self.index + step) % len(self.cards)
        return self.current

    def show(self, card: ReviewItem | Page | None = None) -> None:
        """The player shows ``card`` (default: the current one); a page counts as seen from now on."""
        card = self.current if card is None else card
        if card is None:
            return
        self.shown = card.id
        if isinstance(card, Page):
            self.saw_page(card)

    def saw_page(self, page: Page) -> None:
        """The page's thumbnails were shown: it may be accepted."""
        self._seen_pages.add(tuple(i.id for i in page.items))

    def next_pending(self) -> ReviewItem | Page | None:
        """The next undecided card, and make it current; the current one first if it is undecided and was not
        shown yet."""
        if not self.cards:
            return None
        cur = self.current
        if cur is not None and not self.is_decided(cur) and self.shown != cur.id:
            return cur
        for k in range(1, len(self.cards) + 1):
            i = (self.index + k) % len(self.cards)
            if not self.is_decided(self.cards[i]):
                self.index = i
                return self.cards[i]
        return None

    # --- deciding -----------------------------------------------------------------------------------------
    def decide(self, decision: str, by: str | None = None) -> None:
        """Decide the current card (a page can only be accepted, and only once it was shown).

        Raises:
            ValueError: an unknown decision (a programming error: the panel's buttons offer the three).
            AnonlabError: what the analyst can fix (a page not shown yet, a dismissal without a name).
        """
        if decision not in DECISIONS:
            raise ValueError(f"a review decision is one of {', '.join(DECISIONS)}")
        card = self.current
        if card is None:
            raise AnonlabError("the review queue is empty")
        if isinstance(card, Page):
            if decision != "accepted":
                raise AnonlabError("a page of routine tracks is accepted together; to fix or dismiss one, open it "
                                   "from its thumbnail")
            self.accept_page(card, by=by)
            return
        self.case.decide(card.id, decision, by=by)

    def accept_page(self, page: Page | None = None, by: str | None = None) -> None:
        """Accept every card of ``page`` (default: the current card) with one decision, after it was shown."""
        page = self.current if page is None else page
        if not isinstance(page, Page):
            raise AnonlabError("the current card is not a page of routine tracks")
        if tuple(i.id for i in page.items) not in self._seen_pages:
            raise AnonlabError("look at the page's thumbnails first (the page was not shown)")
        self.case.decide([i.id for i in page.items], "accepted", by=by)

    def open_item(self, item_id: str) -> ReviewItem | None:
        """Make one card of a page (or any item) current on its own, to fix or dismiss it."""
        item = next((i for i in self.queue if i.id == item_id), None)
        if item is None:
            return None
        if item.id not in [c.id for c in self.cards]:
            self.cards.insert(self.index, item)
        self.index = [c.id for c in self.cards].index(item.id)
        return item

    def override(self, reason: str, reviewer: str) -> None:
        self.case.override_gate(reason, reviewer)

    def gate(self, case: Case | None = None) -> None:
        """The workbench's export gate: raises `AnonlabError` while the case may not be exported.

        The refusal counts review cards, as the panel does (`open_cards_text`): the gate's own line counted
        queue items, and "18 of 18 review item(s) undecided" beside "4 of 4 card(s) open" were two counts of one
        gate. The rule itself is `anonlab.review.export_allowed`'s."""
        self.case.export_check()
        self.refresh()
        if not self.summary()["export_allowed"]:
            raise ExportBlocked(f"export blocked: {self.open_cards_text()}: decide them in the REVIEW panel, or give "
                                "an override reason under sign-off")

    def open_cards_text(self) -> str:
        """The open cards and the queue items they hold, in words: ``4 of 4 review cards open (18 items: 2 scene
        cuts, 16 tracks)``."""
        cards, items = self.pending_cards, self.pending
        counts: dict[str, int] = {}
        for i in sorted(items, key=lambda i: -i.priority):  # the most urgent kind first, as the cards come
            counts[i.kind] = counts.get(i.kind, 0) + 1
        kinds = ", ".join(f"{n} {_kind_words(k, n)}" for k, n in counts.items())
        return (f"{len(cards)} of {len(self.cards)} review card{'' if len(self.cards) == 1 else 's'} open "
                f"({len(items)} item{'' if len(items) == 1 else 's'}: {kinds})")

    # --- residual risk: a stratified sample of frames the analyst checks by eye ---------------------
    def draw_sample(self, k: int, seed: int | None = None) -> list[int]:
        seed = int(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
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
        risk = self.case.review.risk
        if not risk or not risk["checked"]:
            return None
        misses = list(risk["checked"].values())
        info = self.case.input
        return risk_bound(len(misses), sum(misses), info.n_frames, info.fps or 25.0,
                          n_frames_with_miss=sum(1 for m in misses if m))

    def report_fields(self) -> dict:
        """The ``review`` argument of `anonlab.report.make_report` for this case."""
        self.refresh()
        return report_review_fields(self.case.review.to_dict(), self.queue, self.risk())

    def summary(self) -> dict:
        review = self.case.review
        return gate_summary(self.queue, review.decisions, review.override)

    def describe(self, card: ReviewItem | Page | None = None) -> str:
        """The current card in one line of HTML (the panel shows it; tests read it)."""
        card = self.current if card is None else card
        if card is None:
            if not self.case.analysed:
                return ("<b>not analysed yet</b>: press <i>analyse</i> (top); or, to export without an analysis, "
                        "choose under <i>sign-off</i> below (your name is recorded)")
            return "nothing to review"
        if isinstance(card, Page):
            return (f"<b>routine tracks</b>, page {card.number} of {card.of}: {len(card.items)} track(s) masked "
                    "throughout. Look at each thumbnail; the number under one opens it on its own.")
        state = f" <i>({self.decisions[card.id]})</i>" if card.id in self.decisions else ""
        return f"<b>{html.escape(card.kind.replace('_', ' '))}</b>: {html.escape(card.reason)}{state}"


class ReviewPanel:
    """The review card beside the picture (a thin view over `ReviewSession`), and the sign-off box.

    The card shows the current item (its reason, a filmstrip of its flagged frames: click = seek) or a page
    of routine tracks (a thumbnail per track: click = open it on its own), and the decision buttons.

    A decision button clicked less than `min_look_s` seconds after its card was put on the panel is not
    applied: clicks queue in the kernel, so the second click of a double click (or clicks made while the
    kernel was busy) would otherwise decide the next card, which nobody has seen. A person needs longer than
    that to see a new card; the time is the kernel's (`clock`), from the card's drawing to the click's handling.
    """

    THUMB = 50
    #: Seconds a card is on the panel before a decision on it counts (see the class docstring).
    MIN_LOOK_S = 0.3

    def __init__(self, workbench, session: ReviewSession | None = None) -> None:
        import ipywidgets as widgets  # here, not at the top: ReviewSession is used without ipywidgets

        self.widgets = widgets
        self.wb = workbench
        self.session = session or ReviewSession(workbench.case)
        L = widgets.Layout
        self.title = widgets.HTML(layout=L(width="100%"))
        self.item = widgets.HTML(layout=L(width="100%", min_height="36px", max_height="64px", overflow="auto"))
        self.item.add_class("anonlab-msg")
        self.strip = widgets.HBox(layout=L(flex_flow="row wrap", width="100%", min_height="54px"))
        self.prev_button = self._button("◀", lambda: self._go(-1), "previous card", "36px")
        self.clock = time.monotonic
        self.min_look_s = self.MIN_LOOK_S
        self._on_panel: tuple[str | None, float] = (None, 0.0)  # the card drawn last, and when
        self.accept_button = self._button("accept", lambda: self._clicked("accepted"), "the masks here are right",
                                          style="success")
        self.fixed_button = self._button("fixed", lambda: self._clicked("fixed"), "I corrected what was wrong")
        self.dismiss_button = self._button("dismiss", lambda: self._clicked("dismissed"),
                                           "a false alarm: nothing to mask here (masks already drawn stay; "
                                           "recorded with your name)")
        self.next_button = self._button("next undecided ▶", self._next_pending, "the next card not decided yet")
        self.message = widgets.HTML(layout=L(width="100%"))
        self.message.add_class("anonlab-msg")
        self.card = widgets.VBox([
            self.title, self.item, self.strip,
            widgets.HBox([self.prev_button, self.accept_button, self.fixed_button, self.dismiss_button,
                          self.next_button]),
            self.message], layout=L(width="100%", border="1px solid #ccc", padding="4px"))
        self.card.add_class("anonlab-review")

        # sign-off and export choices (under the track tools, folded)
        self.reason = widgets.Text(placeholder="why export with open cards", layout=L(width="250px"))
        self.override_button = self._button("override gate", self._override,
                                            "record this reason with your name and allow the export")
        self.reviewed_button = self._button("mark reviewed", lambda: self._status("reviewed"),
                                            "sign the review with your name")
        self.approved_button = self._button("approve", lambda: self._status("approved"),
                                            "approve the reviewed case with your name")
        self.whole_button = self._button("mask whole frames", lambda: self._without("whole_frames"),
                                         "export a case never analysed with every frame masked whole")
        self.manual_reason = widgets.Text(placeholder="why only your own boxes", layout=L(width="250px"))
        self.manual_button = self._button("export my boxes only", lambda: self._without("manual_only"),
                                          "export a case never analysed with only your boxes masked (reason "
                                          "and name recorded)")
        self.sample_size = widgets.BoundedIntText(value=30, min=1, max=10_000, description="sample",
                                                  layout=L(width="150px"))
        self.sample_button = self._button("draw frames to check", self._draw_sample,
                                          "a stratified random sample for the residual-risk estimate")
        self.misses = widgets.BoundedIntText(value=0, min=0, max=1000, description="missed here",
                                             layout=L(width="170px"))
        self.checked_button = self._button("checked ▶", self._checked, "record this sample frame and go to the next")
        self.risk_text = widgets.HTML()
        self.red_team_button = self._button("red-team check of the export", lambda: self.wb.red_team(),
                                            "run every detector again, at a lower threshold, on the exported file; "
                                            "what it finds becomes review cards")
        self.without_box = widgets.VBox([
            widgets.HTML("<b>Not analysed</b>: export only with one of these (recorded with your name)"),
            widgets.HBox([self.whole_button]), widgets.HBox([self.manual_reason, self.manual_button])])
        self.signoff = widgets.VBox([
            widgets.HBox([self.reviewed_button, self.approved_button]),
            widgets.HBox([self.red_team_button]),
            widgets.HBox([self.reason, self.override_button]),
            self.without_box,
            widgets.HTML("<b>Residual risk</b>: check a random sample of frames by eye"),
            widgets.HBox([self.sample_size, self.sample_button]),
            widgets.HBox([self.misses, self.checked_button]), self.risk_text,
        ])
        self.signoff_box = widgets.Accordion(children=[self.signoff], titles=("sign-off, override, residual risk",),
                                             selected_index=None, layout=L(width="100%"))
        self.widget = self.card
        self.strip_page = 0
        self._strip_key = None
        self.update()
        workbench.model.observe(self._on_model)

    def _button(self, desc, fn, tip="", width="auto", style=""):
        b = self.widgets.Button(description=desc, tooltip=tip, button_style=style,
                                layout=self.widgets.Layout(width=width))
        b.on_click(lambda _: self._guard(fn))
        return b

    @staticmethod
    def _enable(button, on: bool, style: str = "") -> None:
        """Enable or disable a decision button; disabled, it loses its colour (a disabled "accept" drawn green
        looked clickable), which comes back when it is enabled."""
        button.disabled = not on
        button.button_style = style if on else ""

    def _on_model(self, changes: set[str]) -> None:
        if "analysis" in changes:  # "recorded: only your own boxes will be masked" stayed after an analysis
            self._say("")
        if "case" in changes:  # an edit or a review decision: the queue may have changed
            self.refresh()

    def _say(self, text: str) -> None:
        self.message.value = f"<span>{html.escape(text)}</span>" if text else ""

    def _guard(self, fn) -> None:
        try:
            fn()
        except AnonlabError as exc:
            self._say(str(exc))
        self.update()

    def _go(self, step: int) -> None:
        self._say("")
        self._show(self.session.move(step))

    def _next_pending(self) -> None:
        card = self.session.next_pending()
        self._say("" if card is not None else "every card is decided")
        self._show(card)

    def _show(self, card) -> None:
        """Seek the player to the card's first frame and select its track."""
        if card is not None:
            self.wb.model.seek(card.frame)
            if card.track_id is not None and card.track_id >= 0 and card.track_id in self.wb.case.tracks:
                self.wb.model.select(card.track_id)
            self.session.show(card)
        self.update()

    def show_current(self) -> None:
        self._show(self.session.current)

    def _clicked(self, decision: str) -> None:
        """A decision button: applied unless its card was drawn too recently to have been seen."""
        card = self.session.current
        drawn, at = self._on_panel
        if card is not None and card.id == drawn and self.clock() - at < self.min_look_s:
            self._say(f"not {decision}: that click came before this card was on screen (a double click?); "
                      "look at it, then decide")
            return
        self._decide(decision)

    def _decide(self, decision: str) -> None:
        card = self.session.current
        self.wb.sync_actor()
        self.session.decide(decision)
        # in words, not the queue's ids ("track:1", "deleted:0:4"): what was decided, on which track
        what = ("page of routine tracks" if isinstance(card, Page) else
                f"{card.kind.replace('_', ' ')} card of track {card.track_id}" if card.track_id >= 0 else
                f"{card.kind.replace('_', ' ')} card")
        self._say(f"{what}: {decision}")
        nxt = self.session.next_pending()
        if nxt is None:
            self._say("every card is decided: export is open (sign-off below)")
        self._show(nxt if nxt is not None else self.session.current)

    def _open(self, item_id: str) -> None:
        self._show(self.session.open_item(item_id))

    def _seek(self, frame: int, track: int) -> None:
        self.wb.model.seek(frame)
        if track >= 0 and track in self.wb.case.tracks:
            self.wb.model.select(track)

    def _draw_sample(self) -> None:
        self.session.draw_sample(self.sample_size.value)
        self._show_sample()

    def _show_sample(self) -> None:
        todo = self.session.unchecked_sample()
        if todo:
            self.wb.model.seek(todo[0])

    def _checked(self) -> None:
        todo = self.session.unchecked_sample()
        if not todo:
            raise AnonlabError("no sample frame left to check; draw a sample first")
        self.session.record_check(todo[0], self.misses.value)
        self.misses.value = 0
        self._show_sample()

    def _override(self) -> None:
        self.session.override(self.reason.value, self.wb.actor_name())
        self._say("override recorded: export is open")

    def _status(self, status: str) -> None:
        if status != "draft":  # this queue also holds the detectors' disagreements and the red team's findings
            try:
                self.session.gate()
            except ExportBlocked as exc:
                raise AnonlabError(f"not {status}: {str(exc).removeprefix('export blocked: ')}") from None
        self.wb.case.set_status(status, self.wb.actor_name())
        self._say(f"case {status} by {self.wb.actor_name()}")

    def _without(self, mode: str) -> None:
        self.wb.case.allow_without_analysis(mode, self.wb.actor_name(), self.manual_reason.value)
        self._say("recorded: every frame will be masked whole" if mode == "whole_frames" else
                  "recorded: only your own boxes will be masked")

    def refresh(self) -> None:
        self.session.refresh()
        self.update()

    # --- drawing ------------------------------------------------------------------------------------------
    def _thumb(self, frame: int, track: int, box=None) -> bytes:
        return self.wb.thumbnail(frame, track, self.THUMB)

    def _strip_for(self, card) -> list:
        w = self.widgets
        out = []
        if isinstance(card, Page):
            for item in card.items:
                img = w.Image(value=self._thumb(item.frame, item.track_id), format="jpeg", width=self.THUMB,
                              height=self.THUMB)
                b = self._button(f"{item.track_id}", lambda i=item.id: self._open(i),
                                 f"open track {item.track_id} on its own: {item.reason[:120]}", f"{self.THUMB}px")
                b.add_class("anonlab-open")
                out.append(w.VBox([img, b], layout=w.Layout(width=f"{self.THUMB + 4}px")))
            return out
        frames = card.frames
        pages = max(1, -(-len(frames) // FILMSTRIP))
        self.strip_page %= pages
        shown = frames[self.strip_page * FILMSTRIP:(self.strip_page + 1) * FILMSTRIP]
        for f in shown:
            img = w.Image(value=self._thumb(f, card.track_id), format="jpeg", width=self.THUMB, height=self.THUMB)
            b = self._button(f"{f}", lambda f=f, t=card.track_id: self._seek(f, t), f"show frame {f}",
                             f"{self.THUMB}px")
            b.add_class("anonlab-seek")
            out.append(w.VBox([img, b], layout=w.Layout(width=f"{self.THUMB + 4}px")))
        if pages > 1:  # every flagged frame stays one click away: page through the strip
            more = self._button(f"▸ {self.strip_page + 1}/{pages}", self._more, f"{len(frames)} flagged frames: the "
                                "next ones", "56px")
            out.append(more)
        return out

    def _more(self) -> None:
        self.strip_page += 1
        self._strip_key = None

    def update(self) -> None:
        s = self.session
        stats = s.stats()
        summary = s.summary()
        case = self.wb.case
        gate = ("export open" if summary["export_allowed"] and (case.analysed or case.review.without_analysis)
                else "export blocked")
        self.title.value = (f"<b>REVIEW</b> {stats['decisions_left']} of {len(s.cards)} card(s) open · "
                            f"{stats['tracks']} track(s) · status <b>{case.review.status}</b> · {gate}")
        card = s.current
        self.item.value = s.describe(card)
        key = None if card is None else (card.id, tuple(i.id for i in card.items) if isinstance(card, Page) else
                                         card.frames)
        if key is not None and self._strip_key is not None and key[0] != self._strip_key[0]:
            self.strip_page = 0  # another card: its strip from the start
        if key != self._strip_key:
            for child in self.strip.children:
                child.close()
            self.strip.children = self._strip_for(card) if card is not None else []
            self._strip_key = key
            self._on_panel = (None if card is None else card.id, self.clock())
            if isinstance(card, Page):  # its thumbnails are on screen now
                s.saw_page(card)
        is_page = isinstance(card, Page)
        self._enable(self.fixed_button, card is not None and not is_page)
        self._enable(self.dismiss_button, card is not None and not is_page)
        self._enable(self.accept_button, card is not None, "success")
        self.prev_button.disabled = self.next_button.disabled = card is None
        self.accept_button.description = f"accept these {len(card.items)}" if is_page else "accept"
        self.without_box.layout.display = "none" if case.analysed else ""
        self.wb.model.set_flagged(s.flagged_frames())
        risk, todo = s.risk(), s.unchecked_sample()
        self.risk_text.value = ((f"{len(todo)} sample frame(s) left to check (now at frame {todo[0]}). " if todo else "")
                                + (risk["statement"] if risk else "no frames checked yet"))
