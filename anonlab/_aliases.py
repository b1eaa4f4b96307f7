"""Old import paths, kept working after the package was grouped by pipeline stage.

Notebooks and scripts that analysts wrote against earlier releases import ``anonlab.evaluate``,
``anonlab.mask`` and so on. Rather than leave a shim file per old name at the top of the package (which
would hide the stages again), one table maps each old module name to where its code lives now, and a
meta-path finder hands out the new module under the old name: the same module object, so
``anonlab.mask.mask_frame is anonlab.render.mask.mask_frame`` and monkeypatching either name patches both.
``python -m anonlab.verify`` keeps working through the loader's ``get_code``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module name -> the module that holds its code now.
MOVED = {
    "anonlab.evaluate": "anonlab.evaluation.images",
    "anonlab.evaluate_temporal": "anonlab.evaluation.temporal",
    "anonlab.synth": "anonlab.evaluation.synth",
    "anonlab.teaching": "anonlab.evaluation.teaching",
    "anonlab.mask": "anonlab.render.mask",
    "anonlab.fx": "anonlab.render.fx",
    "anonlab.interchange": "anonlab.report.interchange",
    "anonlab.verify": "anonlab.report.verify",
    "anonlab.models": "anonlab.models",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # the target module is already executed; executing it again would reset its state

    def get_code(self, fullname):
        # runpy (``python -m anonlab.verify``) runs the target's code as __main__.
        target = importlib.util.find_spec(MOVED[fullname])
        return target.loader.get_code(target.name)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
