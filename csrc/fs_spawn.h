/*
 * fs_spawn.h -- the one low-level spawn primitive of fastspawn.
 *
 * Every higher layer (the spawn* family, Popen, pipelines) calls fs_spawn().
 * It chooses the cheapest mechanism that can express the request:
 *
 *   FS_VIA_VFORK        vfork(2) + an async-signal-safe child (Linux): the
 *                       cheapest for the parent, so the default there, and
 *                       the only way for what posix_spawn cannot say
 *                       (umask, uid/gid, pass_fds with close-the-rest,
 *                       chdir on old libcs, a PATH search by execvp's rule);
 *   FS_VIA_POSIX_SPAWN  posix_spawn(3) with file actions and attributes:
 *                       the default where there is no vfork path (macOS),
 *                       and on Linux with FS_PREFER_POSIX_SPAWN;
 *   FS_VIA_FORK         fork(2) with the vfork child's code, where neither
 *                       applies.
 *
 * Running Python code in the child (preexec_fn) is not this file's job: the
 * Python layer hands such requests to the interpreter's own fork machinery.
 *
 * Which candidates a PATH search tries is decided once, in
 * fastspawn/_execpath.py; this tries them in order (in the child with
 * vfork, so the parent pays nothing for the misses).
 */
#ifndef FASTSPAWN_FS_SPAWN_H
#define FASTSPAWN_FS_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* What to give the child as fd 0, 1 or 2 (fs_stdio.kind). A value >= 0 is
 * an fd of the parent to dup2() into place. */
#define FS_STDIO_INHERIT  (-1)
#define FS_STDIO_PIPE     (-2)   /* new pipe; the parent end is returned */
#define FS_STDIO_DEVNULL  (-3)   /* /dev/null, O_RDWR */
#define FS_STDIO_STDOUT   (-4)   /* stderr only: same as the child's stdout */

/* How the child was started (fs_result.method). */
#define FS_VIA_POSIX_SPAWN 1
#define FS_VIA_VFORK       2   /* (pure backend: vfork-capable fork_exec) */
#define FS_VIA_FORK        3   /* a real fork() */

/* Which step failed in the child (fs_result.err_step). */
#define FS_STEP_OK     0
#define FS_STEP_EXEC   1   /* execve() of the path */
#define FS_STEP_CHDIR  2   /* chdir(cwd) */
#define FS_STEP_OTHER  3   /* anything else before exec: dup2, open, setsid,
                              setpgid, setgroups, setgid, setuid, ... */
#define FS_STEP_PREEXEC 4  /* preexec_fn raised: Python's fork path only */

/* Flags (fs_request.flags). */
#define FS_CLOSE_FDS        0x01  /* close every fd >= 3 but pass_fds */
#define FS_SETSID           0x02
#define FS_RESTORE_SIGNALS  0x04  /* SIGPIPE, SIGXFSZ (, SIGXFZ) -> SIG_DFL */
#define FS_WANT_PIDFD       0x08  /* return a pidfd for the child (Linux) */
#define FS_FORCE_VFORK      0x10  /* testing: skip the posix_spawn path */
/* Use posix_spawn wherever it can express the request, even where the
 * vfork path is cheaper (see fs_spawn_method()). */
#define FS_PREFER_POSIX_SPAWN 0x20 /* posix_spawn wherever it fits */

typedef struct {
    char *const *paths;         /* files to try to exec, in order; more
                                   than one: a PATH search, reported with
                                   os.execvp's rule (the first error other
                                   than ENOENT/ENOTDIR, else the last) */
    size_t n_paths;             /* >= 1 */
    char *const *argv;          /* NULL terminated */
    char *const *envp;          /* NULL terminated, or NULL: inherit environ */
    int stdio[3];               /* FS_STDIO_* or an fd */
    const int *pass_fds;        /* sorted ascending, all >= 3 */
    size_t n_pass_fds;
    const char *cwd;            /* NULL: inherit */
    int flags;                  /* FS_* flags */
    pid_t pgroup;               /* -1: none; 0: own group; >0: join */
    int umask;                  /* -1: inherit */
    long long uid;              /* -1: inherit; else 0 .. 2**32-1 (uid_t:
                                   (uid_t)-1 means "no change") */
    long long gid;              /* -1: inherit; likewise */
    const gid_t *groups;        /* supplementary groups, if n_groups >= 0 */
    long n_groups;              /* -1: inherit */
} fs_request;

typedef struct {
    pid_t pid;                  /* child pid, or -1 when err_step != OK */
    int pidfd;                  /* -1 unless FS_WANT_PIDFD and supported */
    int pipes[3];               /* parent ends: stdin writer, stdout reader,
                                   stderr reader; -1 where no pipe */
    int method;                 /* FS_VIA_* used */
    int err_step;               /* FS_STEP_*: a failure in the child */
    int err_errno;              /* errno of that failure */
} fs_result;

/*
 * Spawn one child. Returns 0 when the request was carried out: either the
 * child runs (res->err_step == FS_STEP_OK) or it failed before or at exec
 * (res->err_step and res->err_errno say where and why; the failed child is
 * already reaped and no pipe is left open). Returns -1 with errno set when
 * the parent itself could not proceed (pipe2, vfork, posix_spawn setup...);
 * nothing is left open then either.
 *
 * Thread-safe and does not touch Python: call it with the GIL released.
 */
int fs_spawn(const fs_request *req, fs_result *res);

/*
 * fs_spawn() for a request without pipes, then one wait4() for the child,
 * in the same call (what run() without capture needs: one trip out of
 * Python instead of two). Returns as fs_spawn(). When the child started,
 * *waited says what became of it:
 *    1  reaped: *status and *ru are filled in, res->pid is no longer ours;
 *    0  wait4() was interrupted by a signal (EINTR): the child still runs,
 *       the caller runs its signal handlers and reaps res->pid itself;
 *   -1  ECHILD: SIGCHLD is ignored, the kernel reaped it and the status is
 *       lost (as for waitpid() in subprocess, bpo-15756).
 * A request with an FS_STDIO_PIPE, or FS_WANT_PIDFD, fails with EINVAL:
 * nobody could read those pipes or use that pidfd before the child exits.
 * Where FS_FEAT_CLONE_WAIT is set, the child is a clone(CLONE_VM) running
 * beside the waiting thread, not a vfork child (one sleep per spawn
 * instead of two; see fs_spawn.c); FS_FORCE_VFORK / FS_PREFER_POSIX_SPAWN
 * pick fs_spawn()'s mechanisms instead.
 */
struct rusage;
int fs_spawn_wait(const fs_request *req, fs_result *res, int *status,
                  struct rusage *ru, int *waited);

/*
 * The clone child on its own (Linux x86-64; see fs_spawn.c): fs_spawn()
 * for a caller that waits for the child anyway. Returns as fs_spawn(), or
 * FS_CLONE_UNAVAILABLE when this request or process cannot have one (then
 * use fs_spawn()). When *out is set, the child runs beside the caller, in
 * its memory, until it execs or exits: the caller keeps the request alive,
 * calls fs_clone_wait(*out) before it runs code that could change what the
 * child reads (Python code: signal handlers, os.environ) and ends with
 * fs_clone_left(*out, &err), which waits likewise, frees *out and returns
 * the FS_STEP_* the child failed at (FS_STEP_OK: it exec'd; else it exits
 * with 127, and err is its errno). Once the caller has reaped the child it
 * says so with fs_clone_reaped(*out) (the waits then end at once: the pid
 * may be reused). A failure known before any child (a bad fd) comes back
 * as from fs_spawn(), with *out NULL.
 */
#define FS_CLONE_UNAVAILABLE (-2)
typedef struct fs_clone fs_clone;
int fs_spawn_clone(const fs_request *req, fs_result *res, fs_clone **out);
void fs_clone_wait(fs_clone *cl);
void fs_clone_reaped(fs_clone *cl);
int fs_clone_left(fs_clone *cl, int *err);

/* One wait4(pid, status, 0, ru), with the outcomes of *waited above:
 * 1 reaped, 0 interrupted (EINTR), -1 ECHILD (status lost). */
int fs_reap(pid_t pid, int *status, struct rusage *ru);

/* Which mechanism fs_spawn() would pick for this request (FS_VIA_*). */
int fs_spawn_method(const fs_request *req);

/* Mechanisms this build supports, as a bit set of (1 << FS_VIA_*), and
 * whether posix_spawn can chdir / closefrom (for tests and docs). */
int fs_features(void);
#define FS_FEAT_ADDCHDIR     0x100
#define FS_FEAT_ADDCLOSEFROM 0x200
#define FS_FEAT_PIDFD        0x400
#define FS_FEAT_CLOSE_RANGE  0x800
#define FS_FEAT_CLONE_WAIT   0x1000  /* the clone child of fs_spawn_wait()
                                        and fs_spawn_clone(): x86-64 Linux,
                                        glibc >= 2.25 or another libc, not
                                        in ASan builds nor under Valgrind */

#endif /* FASTSPAWN_FS_SPAWN_H */
