"""Command line.

``python -m fastspawn run SCRIPT|-m MODULE [ARGS...]`` runs an unmodified
program with fastspawn swapped into subprocess, exiting with the program's
status.

``python -m fastspawn bench [--gate] [--json FILE] [--plot FILE.png]``
benchmarks fastspawn against subprocess on this machine (see
``fastspawn._bench``); ``--gate`` is the regression gate.
"""
import argparse
import builtins
import importlib.machinery
import os
import runpy
import sys
import types
import zipfile

from ._install import install


def _run(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m fastspawn run (SCRIPT | -m MODULE) [ARGS...]\n\n"
              "Run a Python program with fastspawn installed into subprocess.")
        return 0 if argv else 2
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("fastspawn run: -m needs a module name", file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[:]
        _run_script(argv[0])
    return 0


def _run_script(given):
    """Run a script as `python SCRIPT` does: sys.argv[0] as given,
    __file__ and sys.path[0] absolute (Python >= 3.9). runpy.run_path()
    would set sys.argv[0] to its own argument: it serves only directories
    and zip files (their __main__.py)."""
    script = os.path.abspath(given)
    sys.path.insert(0, os.path.dirname(script))
    if not os.path.isfile(script) or zipfile.is_zipfile(script):
        sys.path[0] = script
        runpy.run_path(script, run_name="__main__")
        return
    loader = importlib.machinery.SourceFileLoader("__main__", script)
    code = loader.get_code("__main__")
    if code is None:    # a source loader always compiles; be explicit
        raise ImportError(f"cannot load {script!r}")
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __loader__=loader, __spec__=None,
                         __cached__=None, __package__=None,
                         __builtins__=builtins)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m fastspawn",
        description="fastspawn command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run a program with fastspawn installed "
                               "into subprocess", add_help=False)
    sub.add_parser("bench", help="benchmark fastspawn against subprocess "
                                 "(--gate: the regression gate)",
                   add_help=False)
    if argv[:1] == ["run"]:
        return _run(argv[1:])
    if argv[:1] == ["bench"]:
        from ._bench import main as bench_main
        return bench_main(argv[1:])
    parser.parse_args(argv)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
