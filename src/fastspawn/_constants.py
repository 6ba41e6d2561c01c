"""Constants shared by both backends (mirrors csrc/fs_spawn.h; the C module
checks at import that the header agrees)."""

__all__ = [
    "STDIO_INHERIT", "STDIO_PIPE", "STDIO_DEVNULL", "STDIO_STDOUT",
    "VIA_POSIX_SPAWN", "VIA_VFORK", "VIA_FORK",
    "STEP_OK", "STEP_EXEC", "STEP_CHDIR", "STEP_OTHER", "STEP_PREEXEC",
    "CLOSE_FDS", "SETSID", "RESTORE_SIGNALS", "WANT_PIDFD", "FORCE_VFORK",
    "PREFER_POSIX_SPAWN", "BUSY_MESSAGE",
]

# What the child gets as fd 0/1/2; a value >= 0 is a parent fd to dup2.
STDIO_INHERIT = -1
STDIO_PIPE = -2
STDIO_DEVNULL = -3
STDIO_STDOUT = -4      # stderr only

# How a child was started.
VIA_POSIX_SPAWN = 1
VIA_VFORK = 2          # vfork (C) / the interpreter's vfork-capable fork_exec (pure)
VIA_FORK = 3           # a real fork(): only for preexec_fn

# Which step failed in the child.
STEP_OK = 0
STEP_EXEC = 1
STEP_CHDIR = 2
STEP_OTHER = 3         # dup2, open, setsid, setpgid, setgroups, setgid, setuid...
STEP_PREEXEC = 4       # preexec_fn raised (fork path only)

# Request flags.
CLOSE_FDS = 0x01
SETSID = 0x02
RESTORE_SIGNALS = 0x04
WANT_PIDFD = 0x08
FORCE_VFORK = 0x10     # tests: skip posix_spawn even when it would fit
PREFER_POSIX_SPAWN = 0x20  # posix_spawn wherever it fits (Linux default: vfork)

# Communicator.run()'s RuntimeError while another thread runs it.
BUSY_MESSAGE = "communicate() is already running in another thread"
