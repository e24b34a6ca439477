"""Build hook: compile echoops.core.native._ingest (the ingest hot loops in C) into the wheel.

Optional by design: without a C compiler or the Python headers the build goes on with a warning
and echoops runs its Python loops (echoops.core.native). Editable installs compile in place, next
to the source, which is where their import finds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "echoops.core.native._ingest"
SOURCE = "echoops/core/native/_ingest.c"


def compile_in_place(root: Path) -> Path | None:
    """Build the extension next to its source; its path, or None (with a warning) when it can't be."""
    try:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext
    except ImportError as exc:
        print(f"echoops: not compiling {MODULE} ({exc}); the Python ingest loops will run", file=sys.stderr)
        return None
    ext = Extension(MODULE, [SOURCE], extra_compile_args=["-O2"])
    here = os.getcwd()
    try:
        os.chdir(root)
        cmd = build_ext(Distribution({"name": "echoops", "ext_modules": [ext]}))
        cmd.inplace = True
        cmd.ensure_finalized()
        cmd.run()
        return root / cmd.get_ext_filename(MODULE)
    except Exception as exc:  # no compiler, no headers: a working install all the same
        print(f"echoops: could not compile {MODULE} ({exc}); the Python ingest loops will run", file=sys.stderr)
        return None
    finally:
        os.chdir(here)


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        built = compile_in_place(Path(self.root))
        if built is None:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(built)] = str(built.relative_to(self.root))
