"""A real browser on the workbench: Voilà (``anonlab app``) and JupyterLab on 127.0.0.1, Debian's Chromium
driven by Playwright in a 1366×768 window.

* ``test_app_whole_loop``: the app refuses a request without its token; with it, the picture shows at once
  (no step needed), the analysis runs in the background while the page answers, the picture, the review card
  and the track tools sit side by side on screen, the review queue is decided card by card, a track is left
  unmasked with a reason and a name, and the export is checked pixel by pixel and in its report.
* ``test_app_photo_with_many_tracks``: a photo with 45 tracks: no video controls, the picture fills the view,
  the track list scrolls with rows that keep their height.
* ``test_jupyterlab``: ``anonlab lab``'s command opens the workbench notebook itself (no Launcher, no news
  prompt); a drag draws a box; export with the analyst's own boxes only.

Every test fails on any request that leaves 127.0.0.1 (the route handler aborts and records it) and saves
screenshots (``ANONLAB_SCREENSHOTS`` names the folder; default: the test's temporary folder, printed with
``-s``): look at them. Skipped, not failed, when /usr/bin/chromium is missing (``make browser`` installs it;
never ``playwright install``). See DEVELOPERS.md.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Keep in step with DEVELOPERS.md.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
ROOT = Path(__file__).resolve().parents[1]
#: A 1366×768 laptop screen: the window's page area is about 1366×650 below the browser's own bars.
WINDOW = {"width": 1366, "height": 768}
PAGE_H = 650

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _wait(predicate, timeout: float, what: str, interval: float = 0.1, state=None):
    """Poll ``predicate`` until it is true; on a timeout say what ``state()`` shows (the page's own words)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    shown = f"; the page shows: {state()!r}" if state is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{shown}")


def _need_browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make browser installs it)")
    pytest.importorskip("playwright.sync_api")


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("ANONLAB_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _browser(p, profile: Path):
    """Chromium in a fresh profile at 1366×768; every request off 127.0.0.1 is aborted and recorded."""
    ctx = p.chromium.launch_persistent_context(user_data_dir=str(profile), executable_path=str(CHROMIUM),
                                               headless=True, args=CHROMIUM_FLAGS, viewport=WINDOW,
                                               device_scale_factor=1)
    off: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:")) or urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            off.append(url)
            route.abort()

    ctx.route("**/*", guard)
    ctx.on("websocket", lambda ws: None if urlparse(ws.url).hostname == "127.0.0.1" else off.append(ws.url))
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.set_default_timeout(90_000)
    return ctx, page, off


def _frame_label(page) -> str:
    return page.evaluate("""() => { const w = document.querySelector('.anonlab-workbench');
        const c = w && [...w.querySelectorAll('code')].find(e => / \\/ /.test(e.innerText));
        return c ? c.innerText : ''; }""")


def _text(page, selector=".anonlab-workbench") -> str:
    return page.locator(selector).first.inner_text()


def _button(page, text: str):
    return page.locator(".anonlab-workbench button", has_text=text).first


def _box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def _picture(page, canvas) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))


def _voila(media: Path, tmp_path: Path, env_extra: dict | None = None):
    from anonlab.widgets.launch import app_command, app_env, new_token, workbench_notebook

    pytest.importorskip("voila")
    token = new_token()
    port = _free_port()
    env = app_env({**os.environ, "ANONLAB_MEDIA": str(media), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "IPYTHONDIR": str(tmp_path / "ipython"),
                   **(env_extra or {})})
    log = open(tmp_path / "voila.log", "wb")
    proc = subprocess.Popen(app_command(workbench_notebook(), port, token=token), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, (tmp_path / "voila.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # the server answers
        except OSError:
            return False

    _wait(up, 90, "Voilà to start", 0.3)
    return proc, log, url, token


def _no_workbench_without_token(url: str) -> None:
    """Item 0: no credential, no workbench (and no kernel started for the request)."""
    for path in ("/", "/voila/render/workbench.ipynb", "/?token=wrong"):
        try:
            with urllib.request.urlopen(url + path, timeout=30) as r:
                body, status = r.read().decode(errors="replace"), r.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read().decode(errors="replace"), exc.code
        assert status in (401, 403, 404) or "anonlab" not in body, (path, status)
        assert "anonlab-workbench" not in body
        assert "ANONLAB_MEDIA" not in body


def _our_tracebacks(log: Path) -> list[str]:
    """Tracebacks in a server log that pass through anonlab's code (JupyterLab may start a kernel twice on a
    busy machine and kill one while it imports: that traceback is JupyterLab's own)."""
    blocks = log.read_text(errors="replace").split("Traceback (most recent call last):")[1:]
    return [b[:2000] for b in blocks if "anonlab" in b.split("\n[")[0]]


def _fail_shot(page, shots, name="failure.png", log: Path | None = None):
    """Keep what a failure in CI needs to be understood: a screenshot and the kernel's own tracebacks (a
    widget callback that raises leaves the page unchanged and writes only to the server log)."""
    try:
        page.screenshot(path=str(shots / name))
        print(f"\nscreenshot at failure: {shots / name}")
    except Exception:  # noqa: BLE001 - the original error matters more
        pass
    if log is not None and log.exists():
        for tb in _our_tracebacks(log):
            print("\nkernel traceback:", tb)


def _settle(page, selector: str, still: float = 1.0, timeout: float = 60) -> str:
    """The text of ``selector`` once it stopped changing for ``still`` seconds: clicks queue in the kernel, so a
    text read while earlier clicks are still being handled would be compared with a state about to change."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = page.locator(selector).first.inner_text()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return now
        time.sleep(0.1)
    return last


def test_app_whole_loop(tmp_path, shots):
    _need_browser()
    from playwright.sync_api import sync_playwright

    from anonlab.case import Case
    from anonlab.media import open_media

    clip = Path(os.environ.get("ANONLAB_BROWSER_CLIP") or ROOT / "sample_media" / "street.mp4")
    media = Path(shutil.copy(clip, tmp_path / clip.name))
    proc, log, url, token = _voila(media, tmp_path)
    timings: dict[str, float] = {}
    try:
        _no_workbench_without_token(url)
        with sync_playwright() as p:
            ctx, page, off = _browser(p, tmp_path / "profile")
            try:
                t0 = time.perf_counter()
                page.goto(f"{url}/?token={token}")
                canvas = page.locator(".anonlab-workbench canvas").last
                canvas.wait_for(state="visible")
                _wait(lambda: "0 / " in _frame_label(page), 120, "the first frame")
                assert "import os" not in page.inner_text("body")  # sources hidden
                # item 3: the picture is there at once, without a step
                _wait(lambda: _picture(page, canvas).std() > 10, 30, "the first picture")
                timings["open_s"] = time.perf_counter() - t0
                page.screenshot(path=str(shots / "app_01_open.png"))

                page.locator(".anonlab-workbench input[placeholder='your name']").first.fill("Ann Analyst")
                _button(page, "analyse").click()
                _wait(lambda: "analysing" in _text(page), 30, "the analysis to start")
                # item 18: the page answers while the analysis runs
                cbox = canvas.bounding_box()
                page.mouse.move(cbox["x"] + cbox["width"] / 2, cbox["y"] + cbox["height"] / 2)
                page.keyboard.press("ArrowRight")
                _wait(lambda: _frame_label(page).startswith("1 / "), 30, "a step during the analysis")
                page.screenshot(path=str(shots / "app_02_analysing.png"))
                _wait(lambda: "analysis done" in _text(page), 600, "the analysis", 0.5)
                timings["analysis_s"] = time.perf_counter() - t0 - timings["open_s"]
                page.keyboard.press("Home")
                _wait(lambda: _frame_label(page).startswith("0 / "), 30, "Home")
                page.screenshot(path=str(shots / "app_03_analysed.png"))

                # items 10 and 11: picture, review decision and track tools on screen together, no overlap
                pic, review = canvas.bounding_box(), _box(page, ".anonlab-review")
                tools = _box(page, ".anonlab-tools")
                accept = _button(page, "accept").bounding_box()
                for name, b in (("picture", pic), ("review", review), ("tools", tools), ("accept", accept)):
                    assert b["x"] >= 0, (name, b)
                    assert b["x"] + b["width"] <= WINDOW["width"], (name, b)
                    assert b["y"] >= 0, (name, b)
                    assert b["y"] + b["height"] <= PAGE_H, (name, b)
                assert pic["x"] + pic["width"] <= review["x"]
                assert pic["x"] + pic["width"] <= tools["x"]
                assert review["y"] + review["height"] <= tools["y"] + 1
                assert page.evaluate("() => document.documentElement.scrollWidth") <= WINDOW["width"]

                # a click on the slider draws that frame (timed); its last pixel reaches the last frame (item 20)
                track = page.locator(".anonlab-workbench .widget-slider .noUi-base").first.bounding_box()
                n_last = int(_frame_label(page).split(" / ")[1].split()[0])
                seeks = []
                for frac in (0.5, 0.25, 0.75):
                    time.sleep(0.5)  # noUiSlider ignores a tap while the last one's 300 ms animation runs
                    x = track["x"] + frac * track["width"]
                    want = round(frac * n_last)
                    ts = time.perf_counter()
                    page.mouse.click(x, track["y"] + track["height"] / 2)
                    _wait(lambda: abs(int(_frame_label(page).split(" / ")[0]) - want) <= 1, 30, "the slider seek")
                    seeks.append(time.perf_counter() - ts)
                time.sleep(0.5)
                page.mouse.click(track["x"] + track["width"] - 1, track["y"] + track["height"] / 2)
                _wait(lambda: _frame_label(page).startswith(f"{n_last} / "), 30, "the last frame from the last pixel")

                # the review queue, card by card; a filmstrip click seeks (click -> drawn frame, timed)
                title = lambda: page.locator(".anonlab-review").first.inner_text()  # noqa: E731
                clicks = 0
                _button(page, "next undecided").click()
                for _ in range(200):
                    if " 0 of " in title().split("\n")[0]:
                        break
                    strip = page.locator(".anonlab-review button.anonlab-seek")
                    for k in range(min(strip.count(), 3)):
                        label = strip.nth(k).inner_text().strip()
                        if not _frame_label(page).startswith(f"{label} / "):
                            ts = time.perf_counter()
                            strip.nth(k).click()
                            _wait(lambda: _frame_label(page).startswith(f"{label} / "), 30, "the filmstrip seek")
                            seeks.append(time.perf_counter() - ts)
                    before = title()
                    _button(page, "accept").click()
                    clicks += 1
                    _wait(lambda: title() != before, 60, "the decision", state=title)
                else:
                    raise AssertionError("the review queue did not empty")
                timings["review_clicks"] = clicks
                timings["click_to_frame_s_median"] = float(np.median(seeks))
                timings["click_to_frame_s_max"] = float(np.max(seeks))
                page.screenshot(path=str(shots / "app_04_reviewed.png"))

                # step with the keyboard: the round trip of a key to a drawn frame
                page.mouse.move(cbox["x"] + cbox["width"] / 2, cbox["y"] + cbox["height"] / 2)
                page.keyboard.press("Home")
                _wait(lambda: _frame_label(page).startswith("0 / "), 30, "Home")
                ts = time.perf_counter()
                for _ in range(10):
                    page.keyboard.press("ArrowRight")
                _wait(lambda: _frame_label(page).startswith("10 / "), 60, "10 key steps")
                timings["key_step_s"] = (time.perf_counter() - ts) / 10

                # draw a box where nothing is, leave it unmasked with a reason (the name is typed already)
                a, b = (cbox["width"] * 0.40, cbox["height"] * 0.03), (cbox["width"] * 0.52, cbox["height"] * 0.15)
                page.mouse.move(cbox["x"] + a[0], cbox["y"] + a[1])
                page.mouse.down()
                page.mouse.move(cbox["x"] + b[0], cbox["y"] + b[1], steps=6)
                page.mouse.up()
                case_file = media.with_name(media.stem + ".case.json")
                _wait(lambda: any(op["op"] == "add_track" for op in Case.load(case_file).edits), 30, "the new box")
                page.locator(".anonlab-workbench input[placeholder='reason to leave it unmasked']").fill(
                    "a sign, not a person: shown on purpose")
                _button(page, "leave unmasked").click()
                _wait(lambda: Case.load(case_file).exclusions(), 30, "the exclusion")
                assert Case.load(case_file).exclusions()[0]["by"] == "Ann Analyst"  # item 8
                # the new cards (an edit, an unmasked track): decide them, then export
                _settle(page, ".anonlab-review")  # the exclusion's own update first (it was awaited on disk)
                _button(page, "next undecided").click()
                for _ in range(20):
                    before = _settle(page, ".anonlab-review")
                    if " 0 of " in before.split("\n")[0]:
                        break
                    _button(page, "accept").click()
                    _wait(lambda: title() != before, 60, "the decision", state=title)
                page.screenshot(path=str(shots / "app_05_before_export.png"))
                _button(page, "export").click()
                out = media.with_name(media.stem + "_anonymized" + media.suffix)
                _wait(lambda: "exported" in _text(page), 300, "the export", 0.5)
                page.screenshot(path=str(shots / "app_06_exported.png"))
                timings["total_s"] = time.perf_counter() - t0
                assert not off, f"requests off 127.0.0.1: {off}"  # item 2
            except BaseException:
                _fail_shot(page, shots, log=tmp_path / "voila.log")
                raise
            finally:
                ctx.close()
    finally:
        _stop(proc, log)
    print(f"\nscreenshots in {shots}\nbrowser timings:", {k: round(v, 3) for k, v in timings.items()})
    case = Case.load(media.with_name(media.stem + ".case.json"))
    assert case.analysed
    assert case.review.decided
    assert all(d["by"] == "Ann Analyst" for d in case.review.decided.values())
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    assert report["overrides"]["items"][0]["by"] == "Ann Analyst"
    with open_media(out) as o, open_media(media) as s:
        assert o.n_frames == s.n_frames
        masked = case.effective_regions()
        big = int(np.argmax(masked.area))  # the largest mask: blurred, it must differ from the source
        f = int(masked.frame[big])
        fo, fs = o.get(f).astype(int), s.get(f).astype(int)
        x1, y1, x2, y2 = masked.xyxy[big].astype(int).tolist()
        inner = (slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4), slice(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4))
        assert np.abs(fo[inner] - fs[inner]).mean() > 3  # masked
    assert not _our_tracebacks(tmp_path / "voila.log")


def test_app_photo_with_many_tracks(tmp_path, shots):
    """Items 4 and 17 in a browser: rows keep their height and the list scrolls; a photo has no transport."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    from anonlab.case import Case, default_case_path

    photo = Path(shutil.copy(ROOT / "sample_media" / "portrait.jpg", tmp_path / "portrait.jpg"))
    case = Case.new(photo)
    W, H = case.input.width, case.input.height
    for k in range(45):
        x, y = (k % 9) * W / 9, (k // 9) * H / 5
        case.add_track("face", {0: (x + 2, y + 2, x + W / 9 - 2, y + H / 5 - 2)})
    case.save(default_case_path(photo))
    proc, log, url, token = _voila(photo, tmp_path)
    try:
        with sync_playwright() as p:
            ctx, page, off = _browser(p, tmp_path / "profile")
            try:
                page.goto(f"{url}/?token={token}")
                canvas = page.locator(".anonlab-workbench canvas").last
                canvas.wait_for(state="visible")
                _wait(lambda: _picture(page, canvas).std() > 10, 120, "the picture")
                _wait(lambda: page.locator(".anonlab-row").count() == 45, 60, "45 track rows")
                heights = page.evaluate("() => [...document.querySelectorAll('.anonlab-row')]"
                                        ".map(e => e.getBoundingClientRect().height)")
                assert min(heights) >= 26, heights
                lst = page.evaluate("""() => { const r = document.querySelector('.anonlab-row').parentElement;
                    return [r.scrollHeight, r.clientHeight]; }""")
                assert lst[0] > lst[1] + 100  # it scrolls
                assert not page.locator(".anonlab-workbench .widget-play").first.is_visible()  # no transport
                pic = canvas.bounding_box()
                assert pic["width"] >= 400 or pic["height"] >= 440  # fit to the view, not native size
                # a portrait photo has no transport to make room for: the side panel follows the picture
                assert _box(page, ".anonlab-side")["x"] - (pic["x"] + pic["width"]) <= 60
                # no box overflows sideways: where a browser shows classic scroll bars (Playwright's headless
                # one hides them) each such box had one, under every panel
                over = page.evaluate("""() => [...document.querySelectorAll('.anonlab-workbench, .anonlab-workbench *')]
                    .filter(e => e.scrollWidth > e.clientWidth + 1
                                 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
                    .map(e => e.className)""")
                assert over == [], over
                page.screenshot(path=str(shots / "photo_01_many_tracks.png"), full_page=True)
                assert not off, f"requests off 127.0.0.1: {off}"
            except BaseException:
                _fail_shot(page, shots, "photo_failure.png", log=tmp_path / "voila.log")
                raise
            finally:
                ctx.close()
    finally:
        _stop(proc, log)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make browser installs it)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    from anonlab.widgets.launch import lab_command, lab_notebook, lab_settings_dir, new_token

    base = tmp_path_factory.mktemp("lab")
    root, home = base / "root", base / "home"
    (root / "media").mkdir(parents=True)
    notebook = lab_notebook(root)  # the analyst's copy `anonlab lab` serves, with this kernel's language_info
    media = Path(shutil.copy(ROOT / "sample_media" / "street.mp4", root / "media" / "street.mp4"))
    settings = lab_settings_dir()  # what `anonlab lab` uses: the news prompt is answered there
    token = new_token()
    port = _free_port()
    env = {**os.environ, "ANONLAB_MEDIA": str(media), "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    log = open(base / "lab.log", "wb")
    proc = subprocess.Popen(lab_command(notebook, port, open_browser=False, token=token,
                                        settings_dir=settings), env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=root)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited: {(base / 'lab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    _wait(up, 120, "JupyterLab to start", 0.3)
    yield {"url": url, "token": token, "root": root, "media": media, "log": base / "lab.log"}
    _stop(proc, log)
    shutil.rmtree(settings, ignore_errors=True)


def _kernel_idle(page) -> bool:
    """The notebook's kernel is up and idle. Under load the execution indicator said "idle" while the status
    bar still read "No Kernel | Initializing" and the notebook was half loaded (its tab's dirty dot still on)."""
    return page.evaluate("""() => {
        const bar = document.querySelector('#jp-main-statusbar');
        if (!bar || /No Kernel|Initializing|Connecting|Starting/.test(bar.innerText)) return false;
        const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
        if (ind && ind.getAttribute('data-status') === 'idle') return true;
        return /\\bIdle\\b/.test(bar.innerText);
    }""")


def _started(page) -> bool:
    """The first code cell shows "[*]" or "[n]" (not "[ ]")."""
    return page.evaluate("""() => { const p = document.querySelector('.jp-CodeCell .jp-InputPrompt');
        return !!p && /\\[(\\*|\\d+)\\]/.test(p.innerText); }""")


def test_jupyterlab(lab, tmp_path, shots):
    from playwright.sync_api import sync_playwright

    from anonlab.case import Case
    from anonlab.media import open_media

    t0 = time.perf_counter()
    timings = {}
    with sync_playwright() as p:
        ctx, page, off = _browser(p, tmp_path / "profile")
        try:
            page.goto(f"{lab['url']}/?token={lab['token']}")  # item 19: the default URL is the notebook
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            assert "workbench.ipynb" in page.url
            _wait(lambda: _kernel_idle(page), 120, "the kernel to be Idle", 0.2)
            timings["lab_ready_s"] = time.perf_counter() - t0
            page.screenshot(path=str(shots / "lab_00_ready.png"))
            # the analyst's copy opens unmodified (it opened with the tab's "unsaved" dot: the kernel's
            # language_info replaced the notebook's shorter one)
            assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0
            canvas = page.locator(".anonlab-workbench canvas").last
            for attempt in range(3):
                # An execute request sent while the kernel connection is still settling can be lost
                # (the prompt stays "[ ]"): run all again if nothing started.
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                try:
                    _wait(lambda: _started(page), 15, "the first cell to start", 0.2)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            canvas.wait_for(state="visible")
            _wait(lambda: "0 / 99" in _frame_label(page), 90, "the first frame")
            _wait(lambda: _kernel_idle(page), 90, "Run All to finish", 0.2)
            body = page.inner_text("body")
            assert "notified about official Jupyter news" not in body
            assert "Select Kernel" not in body  # no prompt
            timings["workbench_shown_s"] = time.perf_counter() - t0
            canvas.scroll_into_view_if_needed()
            assert _picture(page, canvas).std() > 10
            page.screenshot(path=str(shots / "lab_01_open.png"))
            box = canvas.bounding_box()
            scale = box["width"] / 640  # the 640x360 sample is enlarged to fill the view
            assert round(box["width"]) == 832
            assert round(box["height"]) == 468

            # drag a box over the large face (no analysis has run: the analyst's box is the only mask)
            a, b = (60, 50), (170, 180)
            page.mouse.move(box["x"] + a[0] * scale, box["y"] + a[1] * scale)
            page.mouse.down()
            page.mouse.move(box["x"] + b[0] * scale, box["y"] + b[1] * scale, steps=8)
            page.mouse.up()
            case_file = lab["media"].with_name("street.case.json")
            _wait(lambda: case_file.exists() and Case.load(case_file).edit_count == 1, 30, "the autosaved case")
            (tid, track), = Case.load(case_file).tracks.items()
            assert track.value(0)[:4] == pytest.approx((*a, *b), abs=1.5)

            # export is refused before any analysis (item 1); the analyst exports their own boxes with a reason
            _button(page, "export").click()
            _wait(lambda: "not analysed yet" in _text(page), 30, "the refusal")
            assert not lab["media"].with_name("street_anonymized.mp4").exists()
            page.locator(".anonlab-workbench input[placeholder='your name']").first.fill("Test Reviewer")
            page.locator(".anonlab-workbench .p-Accordion-child, .anonlab-workbench .lm-Accordion-child, "
                         ".anonlab-workbench .jupyter-widget-Collapse-header").first.click()
            page.locator(".anonlab-workbench input[placeholder='why only your own boxes']").fill("browser test")
            _button(page, "export my boxes only").click()
            _wait(lambda: Case.load(case_file).review.without_analysis is not None, 30, "the choice in the case")
            page.locator(".anonlab-workbench input[placeholder='why export with open cards']").fill("browser test")
            _button(page, "override gate").click()
            _wait(lambda: Case.load(case_file).review.override is not None, 30, "the override in the case")
            _button(page, "export").click()
            out = lab["media"].with_name("street_anonymized.mp4")
            _wait(lambda: out.exists(), 120, "the export")
            _wait(lambda: "exported" in _text(page), 60, "the export message")
            page.screenshot(path=str(shots / "lab_02_exported.png"))
            timings["total_s"] = time.perf_counter() - t0
            assert not off, f"requests off 127.0.0.1: {off}"
        except BaseException:
            _fail_shot(page, shots, "lab_failure.png")
            raise
        finally:
            ctx.close()
    with open_media(out) as o, open_media(lab["media"]) as s:
        fo, fs = o.get(0).astype(int), s.get(0).astype(int)
        inner = (slice(a[1] + 10, b[1] - 10), slice(a[0] + 10, b[0] - 10))
        assert o.n_frames == s.n_frames == 100
        assert np.abs(fo[:, 250:430] - fs[:, 250:430]).mean() < 4  # elsewhere: untouched
        assert np.abs(fo[inner] - fs[inner]).mean() > 15  # the face: masked
    print(f"\nscreenshots in {shots}\nbrowser timings:", {k: round(v, 1) for k, v in timings.items()})
    assert not _our_tracebacks(lab["log"])
