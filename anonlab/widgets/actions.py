"""The workbench's long actions: analyse and red-team in the background, export, and the hand-over of their
threads' callbacks to the kernel.

`LongActions` is a mixin of `anonlab.widgets.workbench.Workbench`: it drives the controls the view builds
(the analyse and cancel buttons, the progress bar, the export path and button, the review panel) and the
case, and says how things went through the model's messages. It is kept apart from the view because it is
the part that runs work in threads (`anonlab.widgets.jobs`) and writes files (`anonlab.case.render_case`,
the report), not the part that lays out and draws; widgets and the decoder are not thread-safe, so
everything a thread hands back goes through `LongActions._dispatch`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Callable

import anonlab.review
from anonlab.case import case_report, render_case
from anonlab.case.storage import CaseChangedElsewhere, check_unchanged
from anonlab.errors import AnonlabError
from anonlab.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from anonlab.pipeline import RED_TEAM_MAX_FRAMES
from anonlab.regions import Regions
from anonlab.report.audit import write_report
from anonlab.review import sample_frames
from anonlab.settings import SPEED_PROFILES, speed_figures, speed_of, speed_settings, speed_summary
from anonlab.widgets.jobs import AnalysisJob, BackgroundJob

#: The speed choice shown when the case's settings are none of the profiles (a profile with a flag over it).
CUSTOM_SPEED = "custom"


def speed_dropdown(settings):
    """The analysis' speed profile beside "analyse" (`anonlab.settings.SPEED_PROFILES`): the case's own when its
    settings are one, else ``custom`` (they are kept as they are); the tooltip gives every profile's measured
    per-frame recall and fps (`anonlab.settings.speed_summary`, the benchmark's figures, as ``--help`` does)."""
    import ipywidgets as widgets

    current = speed_of(settings)
    figures = speed_figures()
    tip = "\n".join(speed_summary(name, figures) for name in SPEED_PROFILES)
    return widgets.Dropdown(options=list(SPEED_PROFILES) + ([] if current else [CUSTOM_SPEED]),
                            value=current or CUSTOM_SPEED, description="speed", tooltip=tip,
                            layout=widgets.Layout(width="150px"), style={"description_width": "40px"})


class LongActions:
    """Analyse, red-team check and export for the `Workbench` (a mixin: it uses the view's widgets)."""

    def _dispatch(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the kernel's thread: through its event loop when the call comes from the analysis
        thread (widgets and the decoder are not thread-safe); without a loop (tests, plain Python) at the next
        `poll`, or at once when already on the main thread."""
        loop = self._loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            loop.call_soon_threadsafe(fn)
        elif threading.current_thread() is threading.main_thread():
            fn()
        else:
            self._pending.append(fn)

    def poll(self) -> None:
        """Run what the analysis thread handed over (outside a kernel: tests and scripts call it)."""
        while self._pending:
            self._pending.pop(0)()

    def analyse(self, *, background: bool = True, analyse: Callable | None = None) -> AnalysisJob | None:
        """Detect and track in the background (progress and cancel in the strip); the page stays usable, and the
        frames already settled show their regions. When it ends the analysis goes into the case."""
        if self.job is not None and self.job.running:
            raise AnonlabError("the analysis is running already")
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.25:
                return
            last[0] = now
            self._dispatch(lambda: self._show_progress(done, total))

        self.job = AnalysisJob(self.input_path, self.analysis_settings(), analyse=analyse, on_progress=progress,
                               on_done=lambda job: self._dispatch(lambda: self._finish_analysis(job)))
        self.analyse_button.disabled = True
        self.analyse_button.description = "analysing…"
        self.cancel_button.layout.display = ""
        self.progress_bar.layout.display = ""
        self.progress_bar.value, self.progress_bar.max = 0, max(self.case.input.n_frames, 1)
        # a photo has nothing to scrub: say what can be done while it runs
        meanwhile = "look and draw boxes" if self.is_photo else "scrub"
        self.model.say(f"analysing in the background: you can {meanwhile} meanwhile (the masked view hides each "
                       "frame whole until its masks settle; switch 'masked' off to see it)", "status")
        self.model.set_provisional(Regions.empty(), settled=0)  # nothing settled yet: hidden whole in the masked view
        self.job.start(background=background)
        return self.job

    def analysis_settings(self):
        """The case's settings with the speed profile chosen beside "analyse" (``custom``: the case's as they are)."""
        choice = getattr(getattr(self, "speed", None), "value", CUSTOM_SPEED)
        return self.case.settings if choice == CUSTOM_SPEED else speed_settings(choice, base=self.case.settings)

    def _show_progress(self, done: int, total: int) -> None:
        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = min(done, self.progress_bar.max)
        if self.job is not None and self.job.running:
            settled = self.job.settled_frames
            self.model.set_provisional(self.job.settled_regions(), settled=settled)
            if "status" not in self.model.failed:  # a refusal said meanwhile ("still running") stays until the end
                # the tracker settles a frame some seconds after it is read: a newcomer saw "the first ones show
                # their regions already" beside a bare face at 80 of 100
                self.model.say(f"analysing: {done} of {total} frame(s), {settled} with their masks settled (the "
                               "masked view hides the others whole until then)", "status")

    def cancel(self) -> None:
        if self.job is None or not self.job.running:
            raise AnonlabError("no analysis is running")
        self.job.cancel()
        self.model.say("cancelling…", "status")

    def _finish_analysis(self, job: AnalysisJob) -> None:
        self.analyse_button.disabled = False
        self.analyse_button.description = "analyse"
        self.cancel_button.layout.display = "none"
        self.progress_bar.layout.display = "none"
        self.model.set_provisional(None)
        if job.state == "cancelled":
            self.model.say("analysis cancelled; the case is unchanged", "status", error=True)
            return
        if job.state == "failed":
            exc = job.error
            text = str(exc) if isinstance(exc, AnonlabError) else f"internal error ({type(exc).__name__})"
            self.model.say(f"analysis failed: {text}", "status", error=True)
            return
        try:
            self.case.set_analysis(job.result)
        except AnonlabError as exc:
            self.model.say(f"analysis failed: {exc}", "status", error=True)
            return
        self.review.session.scene_cuts = list(self.case.scene_cuts)
        self.review.refresh()
        stats = self.review.session.stats()
        # A masked preview switched off before the analysis (a stray 'm') would show every face bare now:
        # say so where the result is announced, without overriding the analyst's choice.
        hidden = "" if self.model.show_masked else " · the masked preview is off: m or 'masked' shows the masks"
        self.model.say(f"analysis done: {len(self.case.tracks)} track(s), {stats['decisions']} review decision(s)"
                       f"{hidden}", "status")
        self._draw_record()

    def red_team(self, *, background: bool = True, red_team: Callable | None = None) -> BackgroundJob:
        """Check the last export with every detector at a lowered threshold (`anonlab.review.red_team`, up to
        300 frames sampled over a long video); what it finds becomes review cards, ranked first."""
        out = self.last_output
        if out is None or not out.exists():
            raise AnonlabError("export first: the red team checks the exported file")
        if self.red_team_job is not None and self.red_team_job.running:
            raise AnonlabError("the red-team check is running already")
        case = self.case
        n = case.input.n_frames
        frames = sample_frames(n, RED_TEAM_MAX_FRAMES, seed=0) if n > RED_TEAM_MAX_FRAMES else None
        regions, settings, whole = case.effective_regions(), case.settings, set(case.damaged)
        if not case.analysed and case.review.without_analysis and case.review.without_analysis["mode"] == "whole_frames":
            whole = set(range(n))
        fn = red_team or anonlab.review.red_team  # looked up now: patching anonlab.review.red_team works
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.red_team_job = BackgroundJob(lambda: fn(out, regions, settings, frames=frames, whole_frames=whole),
                                          on_done=lambda job: self._dispatch(lambda: self._finish_red_team(job)))
        self.model.say(f"red team checking {out.name} in the background…", "status")
        return self.red_team_job.start(background=background)

    def _finish_red_team(self, job: BackgroundJob) -> None:
        if job.state == "failed":
            exc = job.error
            text = str(exc) if isinstance(exc, AnonlabError) else f"internal error ({type(exc).__name__})"
            self.model.say(f"red-team check failed: {text}", "status", error=True)
            return
        found = list(job.result or [])
        self.review.session.findings = found
        self.review.refresh()
        sure = [f for f in found if f.sure]
        exposed = sum(f.kind == "exposed" for f in sure)
        self.model.say(f"red team: {exposed} exposure(s), {len(sure) - exposed} weak mask(s), "
                       f"{len(found) - len(sure)} doubtful finding(s)" + (": see the review cards" if found else
                                                                           ": the output gives nothing away"),
                       "status", error=bool(sure))
        if found:
            self.review.session.index = 0
            self.review.show_current()

    def _check_output(self, out: Path) -> None:
        want = PHOTO_EXTENSIONS if self.case.input.kind == "photo" else VIDEO_EXTENSIONS
        if out.suffix.lower() not in want:
            kind = "photo" if self.case.input.kind == "photo" else "video"
            raise AnonlabError(f"{out.name}: not a {kind} file name; end it with {self.input_path.suffix or '.mp4'} "
                               f"(or another {kind} extension)")
        if out.exists() and not self.overwrite.value:
            raise AnonlabError(f"{out.name} exists already; tick 'replace' to write over it, or choose another name")

    def export(self) -> dict | None:
        """Render the output with exactly the case's regions (after the review gate, when one is set)."""
        out = Path(self.export_path.value).expanduser()
        self.export_button.disabled = True
        self.model.say(f"exporting {out.name}…", "status")
        try:
            if self.job is not None and self.job.running:  # "not analysed yet … analyse it first" read as ignored
                raise AnonlabError("the analysis is still running: export when it has ended and its review cards "
                                   "are decided (or cancel it)")
            self._check_case_file()
            self.sync_actor()
            self.case.export_check()  # "not analysed yet" says more to a first click than a missing name
            self._check_output(out)
            if not self.actor_name():  # a person answers for what is published
                raise AnonlabError("type your name under 'analyst' first: whoever exports answers for what is "
                                   "published" + self._also_blocked())
            info = self._in_progress(lambda: render_case(self.case, out, overwrite=self.overwrite.value,
                                                         progress=True, gate=self.export_gate))
            report = case_report(self.case, out, info, review=self.review.session.report_fields())
            write_report(report, out.with_name(out.name + ".report.json"))
            status = self.case.review.status
            # render-cases publishes approved cases only: an export from here may be a draft to look at, and
            # its report says so; the message says it too, so nobody takes a draft for what may be published
            self.model.say(f"exported {out.name}: {info.get('frames', 0)} frame(s), "
                           f"{info['case']['regions']} masked region(s); report {out.name}.report.json"
                           + ("" if status == "approved" else f"; the case is {status}, not approved: sign it off "
                              "(sign-off, below) before this file is published"), "status")
            self.last_export, self.last_output = info, out
            if self.review.session.findings:  # they were about the previous export
                self.review.session.findings = []
                self.review.refresh()
            return info
        except AnonlabError as exc:
            self.model.say(f"export failed: {exc}", "status", error=True)
            return None
        except Exception as exc:  # never leave "exporting…" on screen: say it, in one line
            self.model.say(f"export failed: internal error ({type(exc).__name__}); nothing was written", "status",
                           error=True)
            return None
        finally:
            self.export_button.disabled = False
            self.progress.clear_output()
            self._draw_record()

    def _check_case_file(self) -> None:
        """Refuse (one line) when the case file on disk is no longer the one this window read or saved last
        (`anonlab.case.Case.disk_digest`): another tab deleted a track, this one still showed it and exported it
        masked, and the export and its report no longer matched the case file. Edits are refused the same way by
        the case itself, so the other tab's edits are kept."""
        if self.case.path is None:
            return
        try:
            check_unchanged(self.case.path, self.case.disk_digest)
        except CaseChangedElsewhere:
            raise AnonlabError("this case was changed in another window or tab: reload the page to see its edits "
                               "(nothing was exported)") from None

    def _also_blocked(self) -> str:
        """What the export gate would say next, as a clause (empty when it lets the export through): a refusal
        that names only the missing name sent a newcomer to type it, only to be refused again for the open
        review cards."""
        if self.export_gate is None:
            return ""
        try:
            self.export_gate(self.case)
        except AnonlabError as exc:
            return f"; then: {exc}"
        return ""

    def _in_progress(self, fn: Callable[[], object]):
        """Run ``fn`` with its progress bars shown in the workbench.

        In a kernel, an ``Output`` widget used as a context manager swallows exceptions (it displays
        them instead), so the error is carried out of the ``with`` block and raised here.
        """
        result, error = None, None
        with self.progress:
            try:
                result = fn()
            except BaseException as exc:  # re-raised below, outside the Output widget
                error = exc
        if error is not None:
            raise error
        return result
