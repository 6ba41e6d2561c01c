"""``fastspawn.CompletedProcess``: subprocess's, plus resource usage."""
import subprocess

__all__ = ["CompletedProcess"]


class CompletedProcess(subprocess.CompletedProcess):
    """subprocess.CompletedProcess with two more attributes:

    ``rusage``: the child's ``resource.struct_rusage`` from wait4() (user and
    system CPU time, max RSS, faults, context switches...), or None;
    ``duration``: wall-clock seconds from spawn to reap, or None.
    ``repr()`` and equality-relevant fields stay those of subprocess.
    """

    def __init__(self, args, returncode, stdout=None, stderr=None, *,
                 rusage=None, duration=None):
        # subprocess.CompletedProcess.__init__ sets just these four.
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.rusage = rusage
        self.duration = duration
