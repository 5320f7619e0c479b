"""The build: swserve's typed cores compiled by mypyc, with the pure-Python source as fallback.

mypyc compiles the same ``.py`` files that run pure (as mypy and black ship themselves): no
second dialect.  The wheel holds both, the compiled module beside its source; Python imports the
compiled one when it is there.  ``swserve --version`` says which build runs.

What gets built (one line on stderr says which):

* ``pip install .`` / ``pip wheel .``: compiled, where a C compiler is present; pure Python,
  saying why, where none is or when ``SWSERVE_PURE_PYTHON=1``.
* ``pip install -e .``: pure Python, so that an edit to a compiled module takes effect at once
  (a compiled module shadows its source).  ``SWSERVE_COMPILE=1 pip install -e .`` compiles the
  cores in place (CI runs the tests on them); a later plain ``pip install -e .`` removes the
  in-place builds again.

The list of compiled modules is ``swserve/build_info.py``'s; ``docs/compiled.md`` explains it.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup

HERE = Path(__file__).resolve().parent

# swserve/build_info.py holds the list (swserve --version reads it too); read without
# importing the package, whose dependencies the build environment does not have.
_INFO = runpy.run_path(str(HERE / "swserve" / "build_info.py"))
COMPILED = tuple(name.replace(".", "/") + ".py" for name in _INFO["COMPILED"])


def _say(message: str) -> None:
    print(f"swserve build: {message}", file=sys.stderr, flush=True)


def _editable() -> bool:
    # PEP 660: pip runs the backend's build_editable hook, which runs setuptools' editable_wheel
    return "editable_wheel" in sys.argv


def _no_compiler() -> str:
    """Why no C compiler can build extensions here, or "" if one can."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc} not found)"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return f"no Python headers ({include}/Python.h not found)"
    return ""


def _why_pure() -> str:
    """Why this build stays pure Python, or "" to compile."""
    if os.environ.get("SWSERVE_PURE_PYTHON", "") not in ("", "0"):
        return "SWSERVE_PURE_PYTHON is set"
    if _editable() and os.environ.get("SWSERVE_COMPILE", "") in ("", "0"):
        return "an editable install runs its source (SWSERVE_COMPILE=1 compiles it in place)"
    return _no_compiler()


def _remove_in_place_builds() -> None:
    """A pure editable install must not leave an earlier in-place build shadowing the source."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    stale = [HERE / path.replace(".py", suffix) for path in COMPILED]
    stale += HERE.glob(f"*__mypyc{suffix}")
    removed = [path for path in stale if path.exists()]
    for path in removed:
        path.unlink()
    if removed:
        _say(f"removed {len(removed)} compiled modules built in place earlier")


# The setup.py runs that build (pip's metadata and requirements runs must not compile).
_BUILDS = frozenset({"bdist_wheel", "build", "build_ext", "editable_wheel", "install", "develop"})


def _ext_modules() -> list[Any]:
    if not _BUILDS.intersection(sys.argv[1:]):
        return []
    why = _why_pure()
    if _editable() and why:
        _remove_in_place_builds()
    if why:
        _say(f"pure Python: {why}")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("pure Python: mypyc is not installed (it comes with mypy)")
        return []
    _say(f"compiling {len(COMPILED)} modules with mypyc")
    # opt_level 3 (mypyc's default) compiles the C at -O3; debug_level 0 keeps the .so small
    # The isolated build environment has mypy but not swserve's dependencies (their types only
    # sharpen what mypyc can specialise): --ignore-missing-imports types them Any, and
    # --follow-imports=silent keeps the strict checks that then fail in the modules that are
    # not compiled (websocket.py subclasses an Any) out of the build; `mypy` in CI checks them.
    # debug_level 0 keeps the shared library small; group_name names it swserve__mypyc.
    args = ["--ignore-missing-imports", "--follow-imports=silent", *COMPILED]
    return list(mypycify(args, opt_level="3", debug_level="0", group_name="swserve"))


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it
    setup(ext_modules=_ext_modules())
