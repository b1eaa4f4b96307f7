"""Start the workbench for people: as a local web app (Voilà) or in JupyterLab. Both bind 127.0.0.1 only.

``anonlab app [PATH]`` runs `run_app`: Voilà serves ``notebooks/workbench.ipynb`` (code hidden) and the
notebook opens ``PATH``, passed in the environment variable ``ANONLAB_MEDIA``. ``anonlab lab`` runs
`run_lab`: JupyterLab on the same notebook. Nothing is fetched from the network: JupyterLab's news feed,
update check and PyPI extension manager are switched off.

When anonlab is installed without its source tree (no ``notebooks/`` folder beside the package), the
workbench notebook is written to a private temporary folder first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from anonlab.errors import AnonlabError

MEDIA_ENV = "ANONLAB_MEDIA"
HOST = "127.0.0.1"

#: The workbench notebook written when the source tree's copy is not available.
FALLBACK_CELLS = [
    ("markdown", "# anonlab workbench\n\nScrub, correct and export. Keyboard help is under the picture."),
    ("code", "import os\nfrom anonlab.widgets import Workbench\n\n"
             "wb = Workbench(os.environ[\"ANONLAB_MEDIA\"])\nwb"),
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


def app_command(notebook: Path, port: int, open_browser: bool = True) -> list[str]:
    """The Voilà command line (exposed for tests)."""
    return [sys.executable, "-m", "voila", str(notebook), f"--port={int(port)}", f"--Voila.ip={HOST}",
            f"--Voila.open_browser={open_browser}", "--Voila.port_retries=0", "--strip_sources=True",
            "--show_tracebacks=False"]


def lab_command(notebook: Path, port: int, open_browser: bool = True, token: str | None = None) -> list[str]:
    """The JupyterLab command line (exposed for tests)."""
    cmd = [sys.executable, "-m", "jupyterlab", str(notebook), f"--ServerApp.root_dir={notebook.parent}",
           f"--ServerApp.ip={HOST}", f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0",
           f"--ServerApp.open_browser={open_browser}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and CI often run as root; the server listens on 127.0.0.1 behind a token anyway.
        cmd.append("--ServerApp.allow_root=True")
    return cmd


def _run(cmd: list[str], env: dict) -> int:
    proc = subprocess.Popen(cmd, env=env)
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


def run_app(path: str | Path | None, port: int = 8866, open_browser: bool = True) -> int:
    """Serve the workbench for ``path`` (default: the sample video) with Voilà on 127.0.0.1:``port``."""
    if shutil.which("voila") is None:
        try:
            import voila  # noqa: F401
        except ImportError:
            raise AnonlabError("the web app needs the jupyter extra: pip install 'anonlab[jupyter]'") from None
    env = dict(os.environ)
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise AnonlabError(f"{p}: no such file")
        if p.is_dir():
            raise AnonlabError(f"{p}: is a folder; the workbench opens one video or photo")
        env[MEDIA_ENV] = str(p.resolve())
    elif repo_notebook() is None:
        raise AnonlabError("give the video or photo to open: anonlab app PATH")
    print(f"anonlab workbench on http://{HOST}:{port}/ (Ctrl+C to stop)", file=sys.stderr)
    return _run(app_command(workbench_notebook(), port, open_browser), env)


def run_lab(port: int = 8888, open_browser: bool = True) -> int:
    """JupyterLab on 127.0.0.1:``port``, opened on the workbench notebook."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise AnonlabError("JupyterLab needs the jupyter extra: pip install 'anonlab[jupyter]'") from None
    return _run(lab_command(workbench_notebook(), port, open_browser), dict(os.environ))
