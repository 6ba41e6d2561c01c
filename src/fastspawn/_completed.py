"""``fastspawn.CompletedProcess``: subprocess's, plus resource usage."""
import subprocess
from resource import struct_rusage as _struct_rusage

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
        self._rusage = rusage
        self.duration = duration

    @property
    def rusage(self):
        # The direct run() path hands over the backend's RawRusage: made a
        # struct_rusage only when somebody asks (most never do).
        ru = self._rusage
        if ru is not None and type(ru) is not _struct_rusage:
            ru = self._rusage = ru.value()
        return ru

    @rusage.setter
    def rusage(self, value):
        self._rusage = value
