"""Build fastspawn: the Cython binding + C core when possible, else pure.

Environment switches (read at build time):
  FASTSPAWN_NO_EXTENSIONS=1       build no extension (pure-Python backend;
                                  always so on interpreters other than
                                  CPython, e.g. PyPy)
  FASTSPAWN_REQUIRE_EXTENSIONS=1  a failed extension build fails the install
                                  (wheel builds, CI) instead of falling back
  FASTSPAWN_SANITIZE=address,undefined
                                  compile the C core with those sanitizers
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("FASTSPAWN_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("FASTSPAWN_REQUIRE_EXTENSIONS")
SANITIZE = os.environ.get("FASTSPAWN_SANITIZE", "").strip()

WARNING = """
**********************************************************************
* WARNING: fastspawn's C extension could not be built:
*   {error}
* fastspawn is installed with its pure-Python backend: same API and
* behaviour, slower. Install a C compiler and the Python headers and
* reinstall for the fast backend; set FASTSPAWN_REQUIRE_EXTENSIONS=1 to
* make this a hard error.
**********************************************************************
"""


class optional_build_ext(build_ext):
    """build_ext that degrades to the pure backend unless told otherwise."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing...
            self._give_up(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._give_up(exc, ext)

    def _give_up(self, exc, ext=None):
        if REQUIRE_EXTENSIONS:
            raise
        # A previous build's module must not ship in place of this one.
        for e in [ext] if ext is not None else self.extensions:
            try:
                os.remove(self.get_ext_fullpath(e.name))
            except OSError:
                pass
        msg = WARNING.format(error=f"{type(exc).__name__}: {exc}")
        sys.stderr.write(msg)
        # pip hides a successful build's output unless -v; leave a marker
        # the package reports at import (fastspawn.BUILD_WARNING).
        try:
            os.makedirs(os.path.join(self.build_lib, "fastspawn"), exist_ok=True)
            with open(os.path.join(self.build_lib, "fastspawn",
                                   "_build_warning.txt"), "w") as f:
                f.write(msg.strip() + "\n")
        except OSError:
            pass


def extensions():
    # PyPy (and any non-CPython) gets the pure backend, which is written and
    # tested against it; the Cython module would run through an emulation
    # of CPython's C API there, slower than the pure code and untested.
    if (NO_EXTENSIONS or os.name != "posix"
            or sys.implementation.name != "cpython"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            raise
        sys.stderr.write(WARNING.format(error=f"Cython is missing: {exc}"))
        return []
    cflags = ["-Wall", "-Wextra", "-std=gnu11"]
    ldflags = []
    if SANITIZE:
        cflags += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer",
                   "-O1", "-g"]
        ldflags += [f"-fsanitize={SANITIZE}"]
    ext = Extension(
        "fastspawn._spawn_c",
        sources=["src/fastspawn/_spawn_c.pyx", "csrc/fs_spawn.c",
                 "csrc/fs_io.c", "csrc/fs_loop.c"],
        include_dirs=["csrc"],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
    # freethreading_compatible: the module declares Py_mod_gil =
    # Py_MOD_GIL_NOT_USED, so importing it on a free-threaded build
    # (3.13t, 3.14t) does not turn the GIL back on. What makes that true
    # (no state shared between threads without a lock or an atomic):
    # README, "Free-threaded Python". Cython >= 3.1 (pyproject.toml).
    return cythonize([ext], compiler_directives={
        "language_level": "3", "freethreading_compatible": True},
        quiet=True)


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": optional_build_ext},
)
