"""Start the workbench for people: as a local web app (Voilà) or in JupyterLab. Both bind 127.0.0.1 only.

``anonlab app [PATH]`` runs `run_app`: Voilà serves ``notebooks/workbench.ipynb`` (code hidden) and the
notebook opens ``PATH`` (a video, a photo, or a folder of photos), passed in the environment variable
``ANONLAB_MEDIA``. The input is checked first, so a file that is not media gets anonlab's own one line and no
server starts. The server asks for a random token (new at every start): the URL opened and printed carries it,
and a request without it gets no workbench (other users of the machine cannot open the footage). The page uses
anonlab's own Voilà template (``share/voila/templates/anonlab``), which loads nothing from off the machine.

``anonlab lab`` runs `run_lab`: JupyterLab on the same notebook, opened on it (not on the Launcher), with its
news feed, update check and PyPI extension manager switched off and the news prompt answered "no" through a
private settings-overrides folder.

When anonlab is installed without its source tree (no ``notebooks/`` folder beside the package), the
workbench notebook is written to a private temporary folder first.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path

from anonlab.errors import AnonlabError
from anonlab.media import open_media
from anonlab.widgets.inputs import photos_in

MEDIA_ENV = "ANONLAB_MEDIA"
HOST = "127.0.0.1"
#: anonlab's Voilà template: a folder holding ``voila/templates/anonlab`` (added to ``JUPYTER_PATH``).
TEMPLATE_ROOT = Path(__file__).resolve().parent / "share"
TEMPLATE = "anonlab"
#: JupyterLab settings anonlab sets for its own server: nothing asks the network, and no prompt covers the
#: page (the news question; the kernel choice JupyterLab asks for when its kernel list arrives late).
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
                 "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True}}

#: The workbench notebook written when the source tree's copy is not available.
FALLBACK_CELLS = [
    ("markdown", "# anonlab workbench\n\nScrub, correct and export. Keyboard help is under the picture."),
    ("code", "import os\nfrom anonlab.widgets import Workbench\n\n"
             "wb = Workbench(os.environ[\"ANONLAB_MEDIA\"])\nwb"),
    ("code", "wb.record"),
]


def repo_notebook(name: str = "workbench.ipynb") -> Path | None:
    """``notebooks/NAME`` of the source tree, when anonlab runs from one."""
    p = Path(__file__).resolve().parents[2] / "notebooks" / name
    return p if p.exists() else None


def _fallback_notebook() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="anonlab-app-"))  # mode 0700
    nb = {"cells": [{"cell_type": kind, "metadata": {}, "source": src,
                     **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                    for kind, src in FALLBACK_CELLS],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = folder / "workbench.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


def workbench_notebook() -> Path:
    return repo_notebook() or _fallback_notebook()


def new_token() -> str:
    """A random access token for one server start (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


#: Freeing the kernel of a closed ``anonlab app`` page. Voilà starts one kernel per page load (~170 MB, ~700 MB
#: once it has analysed) and frees it only through a ``beforeunload`` beacon, which jupyter_server refuses (403:
#: Voilà's page sets no ``_xsrf`` cookie) and which a crashed or killed browser never sends: every load and
#: reload kept its kernel until ``anonlab app`` stopped. jupyter_server's culler shuts down a kernel that no page
#: is connected to, that is not busy and that has sent nothing for ``KERNEL_IDLE_TIMEOUT`` seconds, looking every
#: ``KERNEL_CULL_INTERVAL`` seconds: a closed tab's kernel goes within about 2.5 minutes. ``cull_connected=False``:
#: a kernel whose tab is open is never culled, however long it sits idle (a tab left open over lunch).
#: Not shorter, because the timeout counts from the kernel's last message: an analysis carries on in a closed
#: tab, its progress (a message every 10 frames, ~11 s at 1080p here) keeps the kernel until it ends and its
#: result is autosaved into the case file, which the next page load opens. 120 s also covers the seconds between
#: Voilà running the notebook and the page's websocket connecting, and the page's reconnects.
#: What a closed tab loses: the case file holds every edit, review decision, sign-off and residual-risk check
#: (autosaved at each change) and the analysis once it has ended; only the kernel holds the frame shown, the
#: selection, the redo history, red-team findings, and an analysis still running that goes silent for 120 s
#: (one slow photo reports no progress): the settled frames are not saved as it goes, so it must be run again.
#: Should a later Voilà's beacon get through, a closed tab would end its running analysis at once (not saved).
#: Voilà's pre-heated kernel pool (``preheat_kernel``) is not used: it adds idle kernels, it frees none.
KERNEL_IDLE_TIMEOUT = 120
KERNEL_CULL_INTERVAL = 30


def app_command(notebook: Path, port: int, open_browser: bool = False, token: str | None = None,
                idle_timeout: int = KERNEL_IDLE_TIMEOUT, cull_interval: int = KERNEL_CULL_INTERVAL) -> list[str]:
    """The Voilà command line (exposed for tests): 127.0.0.1, anonlab's offline template, a token when given,
    and the kernel of a closed page shut down after ``idle_timeout`` seconds (see `KERNEL_IDLE_TIMEOUT`).

    Voilà opens its browser without the token (its URL lacks it), so `run_app` opens the browser itself.
    """
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={int(port)}", f"--Voila.ip={HOST}",
           f"--Voila.open_browser={open_browser}", "--Voila.port_retries=0", "--strip_sources=True",
           "--show_tracebacks=False", f"--template={TEMPLATE}",
           f"--MappingKernelManager.cull_idle_timeout={int(idle_timeout)}",
           f"--MappingKernelManager.cull_interval={int(cull_interval)}",
           "--MappingKernelManager.cull_connected=False", "--MappingKernelManager.cull_busy=False"]
    if token is not None:
        cmd.append(f"--token={token}")
    return cmd


def app_env(env: dict | None = None) -> dict:
    """The environment for Voilà: anonlab's template folder first on ``JUPYTER_PATH``."""
    env = dict(os.environ if env is None else env)
    env["JUPYTER_PATH"] = os.pathsep.join([str(TEMPLATE_ROOT), *([env["JUPYTER_PATH"]] if env.get("JUPYTER_PATH")
                                                                    else [])])
    return env


def lab_settings_dir() -> Path:
    """A private app-settings folder for JupyterLab: the installed one's files plus anonlab's overrides."""
    from jupyterlab.labapp import LabApp

    folder = Path(tempfile.mkdtemp(prefix="anonlab-lab-settings-"))  # mode 0700
    default = Path(LabApp().app_settings_dir)
    if default.is_dir():
        shutil.copytree(default, folder, dirs_exist_ok=True)
    overrides = folder / "overrides.json"
    current = json.loads(overrides.read_text()) if overrides.exists() else {}
    for plugin, values in LAB_OVERRIDES.items():
        current[plugin] = {**current.get(plugin, {}), **values}
    overrides.write_text(json.dumps(current, indent=1))
    return folder


def lab_command(notebook: Path, port: int, open_browser: bool = True, token: str | None = None,
                settings_dir: Path | None = None) -> list[str]:
    """The JupyterLab command line (exposed for tests): 127.0.0.1, opened on ``notebook``, offline."""
    # No kernel culler here, unlike `app_command`: JupyterLab keeps one kernel per notebook (a session), not
    # one per page load; a reload or a reopened notebook attaches to it again, with its analysis and state, and
    # the Running panel shuts it down. A kernel outliving its tab is how JupyterLab users expect it to work.
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebook.parent}",
           f"--LabApp.default_url=/lab/tree/{notebook.name}",
           f"--ServerApp.ip={HOST}", f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0",
           f"--ServerApp.open_browser={open_browser}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if settings_dir is not None:
        cmd.append(f"--LabApp.app_settings_dir={settings_dir}")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and CI often run as root; the server listens on 127.0.0.1 behind a token anyway.
        cmd.append("--ServerApp.allow_root=True")
    return cmd


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, int(port))) == 0


def _open_when_up(url: str, port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _port_open(port):
            webbrowser.open(url)
            return
        time.sleep(0.3)


#: Signals that stop ``anonlab app`` / ``anonlab lab`` and the server with it, as Ctrl+C does.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt


#: Linux's prctl option that sends the calling process a signal when its parent dies.
PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent: int) -> None:
    """In the server's process before it starts (``preexec_fn``): SIGTERM it when anonlab dies, however it dies.

    A SIGKILL (an out-of-memory kill, ``kill -9``, a crashed terminal emulator) gives anonlab no chance to stop
    the server, which then served the footage on 127.0.0.1 with nobody to stop it. Linux only; best effort.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # anonlab died between the fork and the prctl: nobody would send it
        os.kill(os.getpid(), signal.SIGTERM)


def _run(cmd: list[str], env: dict, open_url: tuple[str, int] | None = None) -> int:
    parent = os.getpid()
    preexec = (lambda: _stop_with_parent(parent)) if sys.platform.startswith("linux") else None
    proc = subprocess.Popen(cmd, env=env, preexec_fn=preexec)
    if open_url is not None:
        threading.Thread(target=_open_when_up, args=(*open_url, proc), daemon=True).start()
    # Only Ctrl+C stopped the server before: a closed terminal (SIGHUP) or a `kill` (SIGTERM) ended anonlab
    # and left Voila and its kernel running, the footage open on 127.0.0.1, found later by nobody.
    before = {}
    if threading.current_thread() is threading.main_thread():
        before = {sig: signal.signal(sig, _stop_on_signal) for sig in STOP_SIGNALS}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def check_media_path(path: str | Path) -> Path:
    """The file or folder the workbench will open, checked before any server starts.

    Raises:
        AnonlabError: one line a person can act on: missing, not media (judged by content), or a folder
            without photos.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise AnonlabError(f"{p}: no such file or folder")
    if p.is_dir():
        photos_in(p)  # raises "no photos in this folder"
        return p.resolve()
    open_media(p).close()  # anonlab's own line for a file that is not a photo or video it can read
    return p.resolve()


def run_app(path: str | Path | None, port: int = 8866, open_browser: bool = True) -> int:
    """Serve the workbench for ``path`` (default: the sample video) with Voilà on 127.0.0.1:``port``.

    ``path`` may be a video, a photo or a folder of photos. The URL printed (and opened) carries a token
    made for this start.
    """
    if shutil.which("voila") is None:
        try:
            import voila  # noqa: F401
        except ImportError:
            raise AnonlabError("the web app needs the jupyter extra: pip install 'anonlab[jupyter]'") from None
    env = app_env()
    if path is not None:
        env[MEDIA_ENV] = str(check_media_path(path))
    elif repo_notebook() is None:
        raise AnonlabError("give the video or photo to open: anonlab app PATH")
    if _port_open(port):
        raise AnonlabError(f"port {port} on {HOST} is in use; choose another with --port")
    token = new_token()
    url = f"http://{HOST}:{port}/?token={token}"
    print(f"anonlab workbench on {url} (Ctrl+C to stop; the token keeps other users out)", file=sys.stderr)
    return _run(app_command(workbench_notebook(), port, open_browser=False, token=token), env,
                (url, port) if open_browser else None)


#: The user's copy of the workbench notebook that ``anonlab lab`` opens (in the working folder).
LAB_NOTEBOOK = "anonlab-workbench.ipynb"


def lab_notebook(folder: Path | None = None) -> Path:
    """The notebook ``anonlab lab`` opens: ``LAB_NOTEBOOK`` in ``folder`` (default: the working folder, or a
    private temporary one where that is read-only), copied there from the packaged one unless it exists.

    The packaged notebook is never served itself: JupyterLab writes checkpoints beside what it opens and
    autosaves it, which wrote into the installation (a read-only one fails), and its working folder (where the
    notebook's ``out/`` goes, and the footage the analyst browses to) should be the analyst's.
    """
    folder = Path.cwd() if folder is None else Path(folder)
    if not os.access(folder, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="anonlab-lab-"))  # mode 0700
    nb = folder / LAB_NOTEBOOK
    if not nb.exists():
        notebook = json.loads(workbench_notebook().read_text(encoding="utf-8"))
        notebook["metadata"]["language_info"] = _kernel_language_info()
        nb.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return nb


def _kernel_language_info() -> dict:
    """The ``language_info`` this Python's kernel announces. JupyterLab writes the kernel's into the notebook
    when it connects: a copy with the shorter one the repository keeps opened marked as modified."""
    try:
        from ipykernel.ipkernel import IPythonKernel
    except ImportError:  # no kernel here: nothing to match
        return {"name": "python"}
    return json.loads(json.dumps(IPythonKernel.language_info))  # a plain copy


def run_lab(port: int = 8888, open_browser: bool = True) -> int:
    """JupyterLab on 127.0.0.1:``port``, opened on the analyst's copy of the workbench notebook (`lab_notebook`,
    in the working folder), news and update checks off."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise AnonlabError("JupyterLab needs the jupyter extra: pip install 'anonlab[jupyter]'") from None
    nb = lab_notebook()
    print(f"anonlab: opening {nb} (your copy of the workbench notebook)", file=sys.stderr)
    settings = lab_settings_dir()
    try:
        return _run(lab_command(nb, port, open_browser, settings_dir=settings), dict(os.environ))
    finally:
        shutil.rmtree(settings, ignore_errors=True)
