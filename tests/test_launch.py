"""The kernel of a closed ``anonlab app`` page is freed (launch.py builds the culling settings; no browser).

tests/test_widgets_view.py covers the rest of the command lines; tests/test_browser.py runs the servers.
"""

from __future__ import annotations

import pytest

from anonlab.widgets import launch

CULL_FLAGS = ("--MappingKernelManager.cull_idle_timeout=", "--MappingKernelManager.cull_interval=",
              "--MappingKernelManager.cull_connected=", "--MappingKernelManager.cull_busy=")


def _flags(cmd: list[str]) -> dict[str, str]:
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for a in cmd if a.startswith("--MappingKernelManager.")}


def test_app_culls_the_kernel_of_a_closed_page_never_one_with_a_page_open(tmp_path):
    flags = _flags(launch.app_command(tmp_path / "nb.ipynb", 8866, token="t"))
    assert flags == {"--MappingKernelManager.cull_idle_timeout": str(launch.KERNEL_IDLE_TIMEOUT),
                     "--MappingKernelManager.cull_interval": str(launch.KERNEL_CULL_INTERVAL),
                     "--MappingKernelManager.cull_connected": "False",  # an open tab, however idle, keeps it
                     "--MappingKernelManager.cull_busy": "False"}
    # freed soon (minutes, not when `anonlab app` stops), yet well past an analysis' gap between progress messages
    assert 60 <= launch.KERNEL_IDLE_TIMEOUT <= 300
    assert 0 < launch.KERNEL_CULL_INTERVAL <= launch.KERNEL_IDLE_TIMEOUT
    short = _flags(launch.app_command(tmp_path / "nb.ipynb", 8866, idle_timeout=5, cull_interval=2))
    assert short["--MappingKernelManager.cull_idle_timeout"] == "5"
    assert short["--MappingKernelManager.cull_interval"] == "2"


def test_lab_keeps_jupyterlabs_own_kernel_lifetime(tmp_path):
    lab = launch.lab_command(tmp_path / "nb.ipynb", 8888, open_browser=False)
    assert not [a for a in lab if a.startswith(CULL_FLAGS)]


def test_voila_hands_the_culling_settings_to_its_kernel_manager(tmp_path):
    """A misspelt trait would be ignored in silence: parse the command line as Voilà does and build its manager."""
    pytest.importorskip("voila")
    from voila.app import Voila
    from voila.configuration import VoilaConfiguration
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    app = Voila()
    app.parse_command_line(launch.app_command(tmp_path / "nb.ipynb", 8866, token="t", idle_timeout=7,
                                              cull_interval=3)[3:])
    manager_class = voila_kernel_manager_factory(VoilaConfiguration().multi_kernel_manager_class, False, 0)
    manager = manager_class(config=app.config)
    assert (manager.cull_idle_timeout, manager.cull_interval) == (7, 3)
    assert manager.cull_connected is False
    assert manager.cull_busy is False
