"""Command line.

``python -m fastspawn run SCRIPT|-m MODULE [ARGS...]`` runs an unmodified
program with fastspawn swapped into subprocess, exiting with the program's
status.

``python -m fastspawn bench [--gate] [--json FILE] [--plot FILE.png]``
benchmarks fastspawn against subprocess on this machine (see
``fastspawn._bench``); ``--gate`` is the regression gate.
"""
import argparse
import runpy
import sys

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
        sys.path.insert(0, __import__("os").path.dirname(
            __import__("os").path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


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
