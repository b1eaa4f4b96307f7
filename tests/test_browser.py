"""A real browser on the workbench: JupyterLab on 127.0.0.1 with a token, Debian's Chromium via Playwright.

Opens ``workbench.ipynb`` (a copy, in a temporary root), waits for the kernel's "Idle", runs all cells,
drags a box on the canvas, checks the Python side (the autosaved case file) and a screenshot pixel (the
box's colour), then exports and checks the masked output. Skipped when /usr/bin/chromium is missing
(``make browser`` installs it; never ``playwright install``). See DEVELOPERS.md.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Keep in step with DEVELOPERS.md.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
ROOT = Path(__file__).resolve().parents[1]

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


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make browser installs it)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    from anonlab.widgets.launch import lab_command

    base = tmp_path_factory.mktemp("lab")
    root, home = base / "root", base / "home"
    (root / "media").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "workbench.ipynb", root / "workbench.ipynb")
    media = Path(shutil.copy(ROOT / "sample_media" / "street.mp4", root / "media" / "street.mp4"))
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No news toast, no update check: nothing asks the network, nothing covers the notebook.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ, "ANONLAB_MEDIA": str(media), "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    log = open(base / "lab.log", "wb")
    proc = subprocess.Popen(lab_command(root / "workbench.ipynb", port, open_browser=False, token=token),
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited: {(base / 'lab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    _wait(up, 90, "JupyterLab to start", 0.3)
    yield {"url": url, "token": token, "root": root, "media": media, "log": base / "lab.log"}
    _stop(proc, log)


def _kernel_idle(page) -> bool:
    return page.evaluate("""() => {
        const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
        if (ind && ind.getAttribute('data-status') === 'idle') return true;
        const bar = document.querySelector('#jp-main-statusbar');
        return !!bar && /\\bIdle\\b/.test(bar.innerText);
    }""")


def _started(page) -> bool:
    """The first code cell shows "[*]" or "[n]" (not "[ ]")."""
    return page.evaluate("""() => { const p = document.querySelector('.jp-CodeCell .jp-InputPrompt');
        return !!p && /\\[(\\*|\\d+)\\]/.test(p.innerText); }""")


def _frame_label(page) -> str:
    return page.evaluate("""() => { const w = document.querySelector('.anonlab-workbench');
        const c = w && [...w.querySelectorAll('code')].find(e => / \\/ /.test(e.innerText));
        return c ? c.innerText : ''; }""")


def test_workbench_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright
    from PIL import Image

    from anonlab.case import Case
    from anonlab.media import open_media
    from anonlab.widgets.model import hex_to_bgr, track_colour

    t0 = time.perf_counter()
    timings = {}
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1700, "height": 1100}, device_scale_factor=1)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{lab['url']}/lab/tree/workbench.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            _wait(lambda: _kernel_idle(page), 90, "the kernel to be Idle", 0.2)
            timings["lab_ready_s"] = time.perf_counter() - t0

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
            _wait(lambda: "0 / 99" in _frame_label(page), 60, "the first frame")
            _wait(lambda: _kernel_idle(page), 60, "Run All to finish", 0.2)
            timings["workbench_shown_s"] = time.perf_counter() - t0
            # the picture arrived: not a blank canvas (screenshot() scrolls the canvas into view)
            shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
            assert shot.std() > 10
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert round(box["width"]) == 640 and round(box["height"]) == 360  # 640x360 sample, scale 1

            # drag a box over the large face (no analysis has run: the analyst's box is the only mask)
            a, b = (60, 50), (170, 180)
            page.mouse.move(box["x"] + a[0], box["y"] + a[1])
            page.mouse.down()
            page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=8)
            page.mouse.up()
            case_file = lab["media"].with_name("street.case.json")
            _wait(lambda: case_file.exists() and Case.load(case_file).edit_count == 1, 20, "the autosaved case")
            case = Case.load(case_file)
            (tid, track), = case.tracks.items()
            assert track.value(0)[:4] == pytest.approx((*a, *b), abs=1.5)  # canvas px == image px here

            # the box is drawn in the track's colour (selected: 3 px line on the left edge)
            def edge_colour():
                img = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
                return img[(a[1] + b[1]) // 2, a[0]]
            want = np.array(hex_to_bgr(track_colour(tid))[::-1])
            _wait(lambda: np.abs(edge_colour() - want).max() <= 40, 10, "the box on the canvas")

            # scrub with the keyboard over the picture: the kernel redraws each step
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + 300, box["y"] + 200)
            ts = time.perf_counter()
            for _ in range(20):
                page.keyboard.press("ArrowRight")
            _wait(lambda: "20 / 99" in _frame_label(page), 30, "20 key steps")
            timings["step_ms"] = (time.perf_counter() - ts) / 20 * 1000
            page.keyboard.press("Home")
            _wait(lambda: "0 / 99" in _frame_label(page), 10, "Home")

            # export is gated by the review queue: blocked first, then the analyst overrides with a reason
            export_button = page.locator(".anonlab-workbench button", has_text="export").first
            export_button.click()
            _wait(lambda: "export failed" in page.locator(".anonlab-workbench").inner_text(), 30, "the gate")
            assert not lab["media"].with_name("street_anonymized.mp4").exists()
            page.locator(".anonlab-workbench input[placeholder='your name']").fill("Test Reviewer")
            page.locator(".anonlab-workbench input[placeholder='why export with open items']").fill("browser test")
            page.locator(".anonlab-workbench button", has_text="override gate").first.click()
            _wait(lambda: Case.load(case_file).review.override is not None, 20, "the override in the case")
            # export: the output masks the analyst's box, leaves the rest
            export_button.click()
            out = lab["media"].with_name("street_anonymized.mp4")
            _wait(lambda: out.exists(), 60, "the export")
            _wait(lambda: "exported" in page.locator(".anonlab-workbench").inner_text(), 30, "the export message")
            timings["total_s"] = time.perf_counter() - t0
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"\nscreenshot at failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            ctx.close()
    with open_media(out) as o, open_media(lab["media"]) as s:
        fo, fs = o.get(0).astype(int), s.get(0).astype(int)
        inner = (slice(a[1] + 10, b[1] - 10), slice(a[0] + 10, b[0] - 10))
        assert o.n_frames == s.n_frames == 100
        assert np.abs(fo[:, 250:430] - fs[:, 250:430]).mean() < 4  # elsewhere: untouched
        assert np.abs(fo[inner] - fs[inner]).mean() > 15  # the face: masked
    print("\nbrowser timings:", {k: round(v, 1) for k, v in timings.items()})
    assert "Traceback" not in lab["log"].read_text(errors="replace")


def test_voila_app(tmp_path):
    """``anonlab app PATH``: the workbench under Voilà on 127.0.0.1; a drag edits the case."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make browser installs it)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("voila")
    from playwright.sync_api import sync_playwright

    from anonlab.case import Case
    from anonlab.widgets.launch import app_command, workbench_notebook

    media = Path(shutil.copy(ROOT / "sample_media" / "street.mp4", tmp_path / "street.mp4"))
    port = _free_port()
    env = {**os.environ, "ANONLAB_MEDIA": str(media), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "IPYTHONDIR": str(tmp_path / "ipython")}
    log = open(tmp_path / "voila.log", "wb")
    proc = subprocess.Popen(app_command(workbench_notebook(), port, open_browser=False), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def up():
            assert proc.poll() is None, (tmp_path / "voila.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True  # the server answers
            except OSError:
                return False

        _wait(up, 60, "Voilà to start", 0.3)
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                user_data_dir=str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1500, "height": 1000})
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.set_default_timeout(90_000)
                page.goto(f"http://127.0.0.1:{port}/")
                canvas = page.locator(".anonlab-workbench canvas").last
                canvas.wait_for(state="visible")
                _wait(lambda: "0 / 99" in _frame_label(page), 60, "the first frame")
                assert "import os" not in page.inner_text("body")  # sources hidden
                canvas.scroll_into_view_if_needed()
                box = canvas.bounding_box()
                page.mouse.move(box["x"] + 60, box["y"] + 50)
                page.mouse.down()
                page.mouse.move(box["x"] + 170, box["y"] + 180, steps=6)
                page.mouse.up()
                case_file = media.with_name("street.case.json")
                _wait(lambda: case_file.exists() and Case.load(case_file).edit_count == 1, 20, "the autosaved case")
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                print(f"\nscreenshot at failure: {tmp_path / 'failure.png'}")
                raise
            finally:
                ctx.close()
    finally:
        _stop(proc, log)
