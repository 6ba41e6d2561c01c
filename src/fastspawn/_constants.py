"""Constants shared by C and Python: GENERATED from csrc/fs_spawn.h and
csrc/fs_loop.h by scripts/gen_constants.py -- change the header and run the
script; do not edit (tests/test_contract.py fails on any difference)."""

__all__ = [
    "STDIO_INHERIT", "STDIO_PIPE", "STDIO_DEVNULL", "STDIO_STDOUT",
    "VIA_POSIX_SPAWN", "VIA_VFORK", "VIA_FORK", "STEP_OK", "STEP_EXEC",
    "STEP_CHDIR", "STEP_OTHER", "STEP_PREEXEC", "CLOSE_FDS", "SETSID",
    "RESTORE_SIGNALS", "WANT_PIDFD", "FORCE_VFORK", "PREFER_POSIX_SPAWN",
    "FEAT_ADDCHDIR", "FEAT_ADDCLOSEFROM", "FEAT_PIDFD", "FEAT_CLOSE_RANGE",
    "FEAT_CLONE_WAIT", "LOOP_EXITED", "LOOP_EXPIRED", "LOOP_WAKE", "LOOP_IDLE",
    "LOOP_NOTIFY",
]

# What the child gets as fd 0/1/2; a value >= 0 is a parent fd to dup2.
STDIO_INHERIT = -1
STDIO_PIPE = -2          # new pipe; the parent end is returned
STDIO_DEVNULL = -3       # /dev/null, O_RDWR
STDIO_STDOUT = -4        # stderr only: same as the child's stdout

# How a child was started (the spawn result's method).
VIA_POSIX_SPAWN = 1
VIA_VFORK = 2            # (pure backend: vfork-capable fork_exec)
VIA_FORK = 3             # a real fork()

# Which step failed in the child (the spawn result's err_step).
STEP_OK = 0
STEP_EXEC = 1            # execve() of the path
STEP_CHDIR = 2           # chdir(cwd)
STEP_OTHER = 3
STEP_PREEXEC = 4         # preexec_fn raised: Python's fork path only

# Request flags.
CLOSE_FDS = 0x01         # close every fd >= 3 but pass_fds
SETSID = 0x02
RESTORE_SIGNALS = 0x04   # SIGPIPE, SIGXFSZ (, SIGXFZ) -> SIG_DFL
WANT_PIDFD = 0x08        # return a pidfd for the child (Linux)
FORCE_VFORK = 0x10       # testing: skip the posix_spawn path
PREFER_POSIX_SPAWN = 0x20  # posix_spawn wherever it fits

# FEATURES bits beside (1 << VIA_*): what this build and platform can do.
FEAT_ADDCHDIR = 0x100
FEAT_ADDCLOSEFROM = 0x200
FEAT_PIDFD = 0x400
FEAT_CLOSE_RANGE = 0x800
FEAT_CLONE_WAIT = 0x1000

# RunLoop.run() events.
LOOP_EXITED = 1          # event_slot's child exited, pipes done
LOOP_EXPIRED = 2         # event_slot's deadline passed (once)
LOOP_WAKE = 4            # the wake-up time passed
LOOP_IDLE = 5            # no busy slot
LOOP_NOTIFY = 7          # notify_fd is readable (not read)
