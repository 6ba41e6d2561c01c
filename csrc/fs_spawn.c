/*
 * fs_spawn.c -- posix_spawn / vfork spawn primitive (see fs_spawn.h).
 *
 * Layout follows CPython's Modules/_posixsubprocess.c: everything that can
 * allocate or fail is prepared in the parent; the child only runs
 * async-signal-safe system calls and reports failures without malloc.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include "fs_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __GLIBC__
#  include <gnu/libc-version.h>
#endif
#ifdef __linux__
#  include <linux/futex.h>
#  include <pthread.h>
#  include <sched.h>
#  include <sys/mman.h>
#  include <sys/syscall.h>
#endif

extern char **environ;

/* ---- what this libc / kernel offers ------------------------------------ */

#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#  if __GLIBC_PREREQ(2, 29)
#    define FS_HAVE_ADDCHDIR 1        /* posix_spawn_file_actions_addchdir_np */
#  endif
#  if __GLIBC_PREREQ(2, 34)
#    define FS_HAVE_ADDCLOSEFROM 1    /* posix_spawn_file_actions_addclosefrom_np */
#  endif
#  if __GLIBC_PREREQ(2, 26)
#    define FS_HAVE_SPAWN_SETSID 1
#  endif
#elif defined(__APPLE__)
#  define FS_HAVE_ADDCHDIR 1
#  define FS_HAVE_SPAWN_SETSID 1
#  define FS_HAVE_CLOEXEC_DEFAULT 1   /* POSIX_SPAWN_CLOEXEC_DEFAULT */
#endif

#if defined(FS_HAVE_SPAWN_SETSID) && !defined(POSIX_SPAWN_SETSID)
#  undef FS_HAVE_SPAWN_SETSID
#endif

#if defined(__linux__) && defined(SYS_pidfd_open)
#  define FS_HAVE_PIDFD 1
#endif
#if defined(__linux__) && defined(SYS_close_range)
#  define FS_HAVE_CLOSE_RANGE 1
#endif
#if defined(__linux__)
#  define FS_HAVE_VFORK 1
#endif
/* The child's system calls are raw (no libc, no errno) on x86-64 Linux.
 * The AArch64 variant is built only with -DFS_AARCH64_RAW: its calls pass
 * tests/c/child_calls.c under qemu-aarch64 (tests/test_c_core.py), but the
 * clone child it enables has never run on AArch64 hardware. */
#if defined(__linux__) && !defined(FS_NO_RAW_SYSCALLS) \
        && (defined(__x86_64__) \
            || (defined(__aarch64__) && defined(FS_AARCH64_RAW)))
#  define FS_RAW_SYSCALLS 1
#endif
/* The waiting spawn's concurrent child (spawn_clone_wait below): Linux,
 * where the child's calls are raw (it shares the calling thread's errno),
 * and CLONE_CHILD_CLEARTID reports exec as well as exit (mm_release()). */
#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define FS_ASAN 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#  define FS_ASAN 1
#endif
/* Not under ASan: its runtime shares the shadow memory with a CLONE_VM
 * child and reports the child's unknown stack as a stack underflow
 * (__asan_handle_no_return); vfork children it knows how to handle. */
#if defined(FS_RAW_SYSCALLS) && defined(CLONE_VM) \
        && defined(CLONE_CHILD_CLEARTID) && defined(SYS_futex) \
        && !defined(FS_ASAN)
#  define FS_HAVE_CLONE_WAIT 1
#endif

/* Above this many fds to close between pass_fds, posix_spawn's per-fd close
 * actions stop being cheaper than the vfork child's close_range(). */
#define FS_MAX_GAP_CLOSES 32

#ifdef FS_HAVE_CLONE_WAIT
static int clone_wait_usable(void);
#endif

/* ---- small helpers (parent side) --------------------------------------- */

static void
close_quietly(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        (void)close(*fd);
        errno = saved;
        *fd = -1;
    }
}

static int
make_pipe(int fds[2])
{
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    return pipe2(fds, O_CLOEXEC);
#else
    /* macOS has no pipe2(); no fork can happen between the two calls in
     * *our* code, and children we start get the flag before exec. */
    if (pipe(fds) == -1)
        return -1;
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) == -1
            || fcntl(fds[1], F_SETFD, FD_CLOEXEC) == -1) {
        close_quietly(&fds[0]);
        close_quietly(&fds[1]);
        return -1;
    }
    return 0;
#endif
}

/* Everything decided in the parent before the child exists. */
typedef struct {
    int src[3];          /* fd to dup2 into 0/1/2, or FS_STDIO_* */
    int owned[6];        /* fds the parent must close after spawning */
    int n_owned;
    sigset_t old_mask;   /* the calling thread's mask, restored in child */
} fs_plan;

/* The vfork child reports through memory it shares with the parent. The
 * fork fallback (no vfork) also writes it to a CLOEXEC pipe. */
typedef struct {
    volatile int step;
    volatile int err;
} fs_report;

static int
fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

#ifdef FS_HAVE_ADDCLOSEFROM
/* Only posix_spawn's per-fd close actions need the count. */
static size_t
gap_closes(const fs_request *req)
{
    size_t i, n = 0;
    int prev = 2;
    for (i = 0; i < req->n_pass_fds; i++) {
        if (req->pass_fds[i] > prev + 1)
            n += (size_t)(req->pass_fds[i] - prev - 1);
        prev = req->pass_fds[i];
    }
    return n;
}
#endif

int
fs_spawn_method(const fs_request *req)
{
    int posix_ok;
#ifdef FS_HAVE_VFORK
    /* Measured on Linux (benchmarks/, python -m fastspawn bench): glibc's
     * posix_spawn maps and unmaps a stack for its child on every call, and
     * the munmap of pages the child touched on another CPU costs a TLB
     * shootdown; vfork runs the child on our stack. The parent pays ~25%
     * less CPU per spawn through vfork, so it is the default here. */
    if (!(req->flags & FS_PREFER_POSIX_SPAWN))
        return FS_VIA_VFORK;
#endif
    posix_ok = !(req->flags & FS_FORCE_VFORK)
        && req->umask < 0 && req->uid < 0 && req->gid < 0
        && req->n_groups < 0
        && req->pgroup <= 0    /* joining another group: vfork reports EPERM
                                  precisely, posix_spawn cannot say which
                                  step failed */
        && !((req->flags & FS_SETSID) && req->pgroup >= 0);
                               /* setpgid() after setsid() always fails
                                  (EPERM: a session leader): the same */
#ifndef FS_HAVE_ADDCHDIR
    if (req->cwd != NULL)
        posix_ok = 0;
#endif
#ifndef FS_HAVE_SPAWN_SETSID
    if (req->flags & FS_SETSID)
        posix_ok = 0;
#endif
    if (req->flags & FS_CLOSE_FDS) {
#if defined(FS_HAVE_ADDCLOSEFROM)
        if (gap_closes(req) > FS_MAX_GAP_CLOSES)
            posix_ok = 0;
#elif defined(FS_HAVE_CLOEXEC_DEFAULT)
        /* macOS: CLOEXEC_DEFAULT closes all but what the actions name. */
#else
        posix_ok = 0;
#endif
    }
#ifdef FS_HAVE_VFORK
    return posix_ok ? FS_VIA_POSIX_SPAWN : FS_VIA_VFORK;
#else
    return posix_ok ? FS_VIA_POSIX_SPAWN : FS_VIA_FORK;
#endif
}

int
fs_features(void)
{
    int f = (1 << FS_VIA_POSIX_SPAWN);
#ifdef FS_HAVE_VFORK
    f |= (1 << FS_VIA_VFORK);
#else
    f |= (1 << FS_VIA_FORK);
#endif
#ifdef FS_HAVE_ADDCHDIR
    f |= FS_FEAT_ADDCHDIR;
#endif
#ifdef FS_HAVE_ADDCLOSEFROM
    f |= FS_FEAT_ADDCLOSEFROM;
#endif
#ifdef FS_HAVE_PIDFD
    f |= FS_FEAT_PIDFD;
#endif
#ifdef FS_HAVE_CLOSE_RANGE
    f |= FS_FEAT_CLOSE_RANGE;
#endif
#ifdef FS_HAVE_CLONE_WAIT
    if (clone_wait_usable())
        f |= FS_FEAT_CLONE_WAIT;
#endif
    return f;
}

/* Create pipes, validate given fds and move any source fd that sits on
 * another slot's number (0..2) out of the way. On failure closes what it
 * opened and returns -1 (errno set), or returns 1 for a bad fd that the
 * child would have hit in dup2 (reported as a child step, like CPython). */
static int
plan_stdio(const fs_request *req, fs_plan *plan, fs_result *res)
{
    int i;
    plan->n_owned = 0;
    for (i = 0; i < 3; i++) {
        int kind = req->stdio[i];
        plan->src[i] = kind;
        if (kind == FS_STDIO_PIPE) {
            int p[2];
            if (make_pipe(p) == -1)
                return -1;
            /* stdin: child reads p[0]; stdout/stderr: child writes p[1]. */
            res->pipes[i] = (i == 0) ? p[1] : p[0];
            plan->src[i] = (i == 0) ? p[0] : p[1];
            plan->owned[plan->n_owned++] = plan->src[i];
        }
        else if (kind >= 0 && !fd_is_open(kind)) {
            res->err_step = FS_STEP_OTHER;
            res->err_errno = EBADF;
            return 1;
        }
    }
    for (i = 0; i < 3; i++) {
        int s = plan->src[i];
        if (s >= 0 && s < 3 && s != i) {
            int moved = fcntl(s, F_DUPFD_CLOEXEC, 3);
            if (moved == -1)
                return -1;
            plan->owned[plan->n_owned++] = moved;
            plan->src[i] = moved;
        }
    }
    return 0;
}

static void
unplan(fs_plan *plan)
{
    int i;
    for (i = 0; i < plan->n_owned; i++)
        close_quietly(&plan->owned[i]);
    plan->n_owned = 0;
}

/* No child after all: close what the plan made, parent ends included, and
 * forget the pid (errno kept). */
static void
discard(fs_plan *plan, fs_result *res)
{
    int i;
    unplan(plan);
    for (i = 0; i < 3; i++)
        close_quietly(&res->pipes[i]);
    res->pid = -1;
}

/* Reap a child that failed before or at exec (it exits with 127 at once). */
static void
reap_failed(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
        ;
}

/* ---- the posix_spawn path ----------------------------------------------- */

/* posix_spawn reports one errno for chdir and exec alike. Find out which:
 * if cwd cannot be entered, that is the failure, as with chdir(2). */
static int
diagnose_cwd(const char *cwd)
{
    struct stat st;
    if (stat(cwd, &st) == -1)
        return errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    if (faccessat(AT_FDCWD, cwd, X_OK, AT_EACCESS) == -1)
        return errno;
    return 0;
}

#ifdef __GLIBC__
static void
glibc_internal_signals_default(sigset_t *set)
{
    /* Signals 32 and 33 (SIGRTMIN - 2 and - 1 as glibc reserves them). */
    unsigned long *words = (unsigned long *)(void *)set;
    const int bits = (int)(8 * sizeof(unsigned long));
    int sig;
    for (sig = 32; sig <= 33; sig++)
        words[(sig - 1) / bits] |= 1UL << ((sig - 1) % bits);
}
#endif

static int
spawn_posix(const fs_request *req, const fs_plan *plan, fs_result *res)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    short flags = 0;
    int r, i;
    pid_t pid;

    if ((r = posix_spawn_file_actions_init(&fa)) != 0) {
        errno = r;
        return -1;
    }
    if ((r = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        errno = r;
        return -1;
    }

#define FA(call) do { if ((r = (call)) != 0) goto done; } while (0)
    for (i = 0; i < 3; i++) {
        int s = plan->src[i];
        if (s == FS_STDIO_DEVNULL)
            FA(posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_RDWR, 0));
        else if (s == FS_STDIO_STDOUT)
            FA(posix_spawn_file_actions_adddup2(&fa, 1, 2));
        else if (s >= 0)
            /* dup2(fd, fd) clears FD_CLOEXEC (glibc >= 2.29, macOS). */
            FA(posix_spawn_file_actions_adddup2(&fa, s, i));
    }
    for (i = 0; i < (int)req->n_pass_fds; i++) {
#ifdef FS_HAVE_CLOEXEC_DEFAULT
        FA(posix_spawn_file_actions_addinherit_np(&fa, req->pass_fds[i]));
#else
        FA(posix_spawn_file_actions_adddup2(&fa, req->pass_fds[i],
                                            req->pass_fds[i]));
#endif
    }
#ifdef FS_HAVE_CLOEXEC_DEFAULT
    if (req->flags & FS_CLOSE_FDS) {
        /* Keep the three standard fds: everything else is closed. */
        for (i = 0; i < 3; i++)
            if (plan->src[i] == FS_STDIO_INHERIT)
                FA(posix_spawn_file_actions_addinherit_np(&fa, i));
        flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
    }
#elif defined(FS_HAVE_ADDCLOSEFROM)
    if (req->flags & FS_CLOSE_FDS) {
        int prev = 2, fd;
        for (i = 0; i < (int)req->n_pass_fds; i++) {
            for (fd = prev + 1; fd < req->pass_fds[i]; fd++)
                FA(posix_spawn_file_actions_addclose(&fa, fd));
            prev = req->pass_fds[i];
        }
        FA(posix_spawn_file_actions_addclosefrom_np(&fa, prev + 1));
    }
#endif
#ifdef FS_HAVE_ADDCHDIR
    if (req->cwd != NULL)
        FA(posix_spawn_file_actions_addchdir_np(&fa, req->cwd));
#endif

    {
        sigset_t dfl;
        int use_dfl = 0;
        sigemptyset(&dfl);
        if (req->flags & FS_RESTORE_SIGNALS) {
            sigaddset(&dfl, SIGPIPE);
#ifdef SIGXFZ
            sigaddset(&dfl, SIGXFZ);
#endif
#ifdef SIGXFSZ
            sigaddset(&dfl, SIGXFSZ);
#endif
            use_dfl = 1;
        }
#ifdef __GLIBC__
        /* glibc's __spawni_child sets its internal signals (SIGCANCEL=32,
         * SIGSETXID=33) to SIG_IGN, and exec keeps SIG_IGN: every child
         * would start with them ignored (seen with glibc 2.36; a fork+exec
         * child, as from os.spawnv or subprocess's vfork path, does not).
         * Only the SETSIGDEF set is consulted before that, so name them
         * there; sigaddset() refuses them, hence the raw bits. */
        glibc_internal_signals_default(&dfl);
        use_dfl = 1;
#endif
        if (use_dfl) {
            FA(posix_spawnattr_setsigdefault(&attr, &dfl));
            flags |= POSIX_SPAWN_SETSIGDEF;
        }
    }
#ifdef FS_HAVE_SPAWN_SETSID
    if (req->flags & FS_SETSID)
        flags |= POSIX_SPAWN_SETSID;
#endif
    if (req->pgroup >= 0) {
        FA(posix_spawnattr_setpgroup(&attr, req->pgroup));
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    FA(posix_spawnattr_setflags(&attr, flags));
#undef FA

    res->method = FS_VIA_POSIX_SPAWN;
    {
        /* A PATH search tries each candidate with its own posix_spawn;
         * absolute ones that do not exist are skipped after a stat(), as
         * exec would fail them with the same ENOENT/ENOTDIR. */
        int first = 0, last = ENOENT, spawned = 0;
        size_t k;
        for (k = 0; k < req->n_paths; k++) {
            const char *path = req->paths[k];
            struct stat st;
            if (req->n_paths > 1 && path[0] == '/' && stat(path, &st) == -1
                    && (errno == ENOENT || errno == ENOTDIR)) {
                last = errno;
                continue;
            }
            spawned = 1;
            r = posix_spawn(&pid, path, &fa, &attr, req->argv,
                            req->envp ? req->envp : environ);
            if (r == 0) {
                res->pid = pid;
                goto done;
            }
            if (r == EAGAIN) {
                /* clone() itself failed (RLIMIT_NPROC, pid_max, pids
                 * cgroup): the parent's failure, to be raised like fork()'s
                 * EAGAIN in subprocess -- no filename, no next candidate.
                 * posix_spawn returns it like an exec error, but execve()
                 * fails with EAGAIN only after a set*id() call, which this
                 * path never makes. */
                goto done;
            }
            if (req->cwd != NULL) {
                int cwd_err = diagnose_cwd(req->cwd);
                if (cwd_err) {
                    res->err_step = FS_STEP_CHDIR;
                    res->err_errno = cwd_err;
                    r = 0;
                    goto done;
                }
            }
            last = r;
            if (!first && r != ENOENT && r != ENOTDIR)
                first = r;
        }
        if (!spawned && req->cwd != NULL) {
            /* chdir() comes before exec in a child: a bad cwd wins. */
            int cwd_err = diagnose_cwd(req->cwd);
            if (cwd_err) {
                res->err_step = FS_STEP_CHDIR;
                res->err_errno = cwd_err;
                r = 0;
                goto done;
            }
        }
        res->err_step = FS_STEP_EXEC;
        res->err_errno = first ? first : last;
        r = 0;
    }

done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        errno = r;
        return -1;
    }
    return 0;
}

/* ---- the child's system calls ------------------------------------------ *
 *
 * Every call the child makes goes through these: each returns the result,
 * or -errno, and none of them touches errno. On x86-64 Linux they are
 * raw system calls (FS_RAW_SYSCALLS):
 * errno lives in the calling thread's TLS, which a CLONE_VM child shares
 * with a parent thread that runs on beside it (spawn_clone_wait: its
 * wait4, futex and signal handlers write errno), so that child must
 * neither write nor read it. Elsewhere (vfork/fork only) they wrap libc.
 */
#ifdef FS_RAW_SYSCALLS
static inline long
raw6(long n, long a, long b, long c, long d, long e, long f)
{
#  if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile ("syscall"
                      : "=a"(ret)
                      : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
                        "r"(r9)
                      : "rcx", "r11", "memory");
    return ret;
#  else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile ("svc 0"
                      : "+r"(x0)
                      : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                      : "memory", "cc");
    return x0;
#  endif
}
#  define RAW(n, a, b, c, d) raw6((n), (long)(a), (long)(b), (long)(c), \
                                  (long)(d), 0, 0)
/* The kernel's struct sigaction on both (SA_RESTORER layout). */
struct fs_ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};
#else
/* libc, with the result folded into -errno. */
#  define LIBC(call) ((call) == -1 ? -(long)errno : 0L)
#endif

static long
c_dup2(int from, int to)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_dup3, from, to, 0, 0);   /* from != to here */
#else
    int fd = dup2(from, to);
    return fd == -1 ? -(long)errno : fd;
#endif
}

static long
c_open_devnull(void)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR, 0);
#else
    int fd = open("/dev/null", O_RDWR);
    return fd == -1 ? -(long)errno : fd;
#endif
}

static void
c_close(int fd)
{
#ifdef FS_RAW_SYSCALLS
    (void)RAW(SYS_close, fd, 0, 0, 0);
#else
    (void)close(fd);
#endif
}

static long
c_getfd(int fd)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_fcntl, fd, F_GETFD, 0, 0);
#else
    int fl = fcntl(fd, F_GETFD);
    return fl == -1 ? -(long)errno : fl;
#endif
}

static long
c_setfd(int fd, int fl)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_fcntl, fd, F_SETFD, fl, 0);
#else
    return LIBC(fcntl(fd, F_SETFD, fl));
#endif
}

static long
c_chdir(const char *path)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_chdir, path, 0, 0, 0);
#else
    return LIBC(chdir(path));
#endif
}

static void
c_umask(int mask)
{
#ifdef FS_RAW_SYSCALLS
    (void)RAW(SYS_umask, mask, 0, 0, 0);
#else
    (void)umask((mode_t)mask);
#endif
}

static long
c_setsid(void)
{
#ifdef FS_RAW_SYSCALLS
    long r = RAW(SYS_setsid, 0, 0, 0, 0);
    return r < 0 ? r : 0;
#else
    return LIBC(setsid());
#endif
}

static long
c_setpgid(pid_t pgroup)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_setpgid, 0, pgroup, 0, 0);
#else
    return LIBC(setpgid(0, pgroup));
#endif
}

/* Credentials in the child. glibc's setuid()/setgid()/setgroups() apply
 * the change to every thread of the process (nptl "setxid": SIGSETXID to
 * each thread on its list). After vfork that list is the *parent's* --
 * which is why CPython refuses vfork for user/group (bpo-35823). The raw
 * system calls change only the calling task, which is all the child is. */
static long
c_setgroups(size_t n, const gid_t *groups)
{
#if defined(FS_RAW_SYSCALLS)
    return RAW(SYS_setgroups, n, groups, 0, 0);
#elif defined(__linux__) && defined(SYS_setgroups32)
    return LIBC((int)syscall(SYS_setgroups32, n, groups));
#elif defined(__linux__)
    return LIBC((int)syscall(SYS_setgroups, n, groups));
#else
    return LIBC(setgroups((int)n, groups));
#endif
}

static long
c_setregid(gid_t gid)
{
#if defined(FS_RAW_SYSCALLS)
    return RAW(SYS_setregid, gid, gid, 0, 0);
#elif defined(__linux__) && defined(SYS_setregid32)
    return LIBC((int)syscall(SYS_setregid32, gid, gid));
#elif defined(__linux__)
    return LIBC((int)syscall(SYS_setregid, gid, gid));
#else
    return LIBC(setregid(gid, gid));
#endif
}

static long
c_setreuid(uid_t uid)
{
#if defined(FS_RAW_SYSCALLS)
    return RAW(SYS_setreuid, uid, uid, 0, 0);
#elif defined(__linux__) && defined(SYS_setreuid32)
    return LIBC((int)syscall(SYS_setreuid32, uid, uid));
#elif defined(__linux__)
    return LIBC((int)syscall(SYS_setreuid, uid, uid));
#else
    return LIBC(setreuid(uid, uid));
#endif
}

#ifdef FS_HAVE_CLOSE_RANGE
static long
c_close_range(int lo, int hi)
{
#  ifdef FS_RAW_SYSCALLS
    return RAW(SYS_close_range, lo, hi < 0 ? ~0U : (unsigned int)hi, 0, 0);
#  else
    return LIBC((int)syscall(SYS_close_range, (unsigned int)lo,
                             hi < 0 ? ~0U : (unsigned int)hi, 0));
#  endif
}
#endif

/* How far a one-by-one close goes: the fd limit, at most 65536. */
static int
c_fd_limit(void)
{
    struct rlimit rl;
    int max;
#ifdef FS_RAW_SYSCALLS
    max = 65536;
    if (RAW(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0
            && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
        max = (int)rl.rlim_cur;
#else
    max = (int)sysconf(_SC_OPEN_MAX);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
            && (long)rl.rlim_cur > max)
        max = (int)rl.rlim_cur;
    if (max < 0 || max > 65536)
        max = 65536;
#endif
    return max;
}

/* sig's disposition (SIG_DFL, SIG_IGN or a handler) into *handler: 0, or
 * -errno (libcs refuse the signals they use internally). */
static long
c_handler(int sig, void **handler)
{
#ifdef FS_RAW_SYSCALLS
    struct fs_ksigaction sa;
    long r = RAW(SYS_rt_sigaction, sig, NULL, &sa, 8);
    if (r == 0)
        *handler = sa.handler;
    return r;
#else
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) == -1)
        return -(long)errno;
    /* sa_handler and sa_sigaction share storage; SIG_DFL and SIG_IGN read
     * the same through either. */
    *handler = (void *)sa.sa_handler;
    return 0;
#endif
}

static void
c_default(int sig)
{
#ifdef FS_RAW_SYSCALLS
    /* SIG_DFL, no flags, empty mask. (An initializer, not memset(): at -O0
     * that is a PLT call, and lazy binding would run the dynamic linker in
     * the child.) */
    struct fs_ksigaction dfl = {0, 0, 0, 0};
    (void)RAW(SYS_rt_sigaction, sig, &dfl, NULL, 8);
#else
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, NULL);
#endif
}

static void
c_setmask(const sigset_t *mask)
{
#ifdef FS_RAW_SYSCALLS
    (void)RAW(SYS_rt_sigprocmask, SIG_SETMASK, mask, NULL, 8);
#else
    (void)sigprocmask(SIG_SETMASK, mask, NULL);
#endif
}

static long
c_execve(const char *path, char *const *argv, char *const *envp)
{
#ifdef FS_RAW_SYSCALLS
    return RAW(SYS_execve, path, argv, envp, 0);
#else
    execve(path, argv, envp);
    return -(long)errno;
#endif
}

__attribute__((noreturn)) static void
c_exit(int status)
{
#ifdef FS_RAW_SYSCALLS
    for (;;)
        (void)RAW(SYS_exit_group, status, 0, 0, 0);
#else
    _exit(status);
#endif
}

/* ---- the vfork / fork / clone child ------------------------------------- */

static void
child_report(fs_report *rep, int errpipe, int step, int err)
{
    rep->step = step;
    rep->err = err;
    if (errpipe >= 0) {
        int msg[2];
        msg[0] = step;
        msg[1] = err;
        /* Best effort: the parent treats a short read as an exec error.
         * (Only the fork fallback has a pipe: libc's write and errno.) */
        while (write(errpipe, msg, sizeof msg) == -1 && errno == EINTR)
            ;
    }
}

static long
child_clear_cloexec(int fd)
{
    long fl = c_getfd(fd);
    if (fl < 0)
        return fl;
    if (fl & FD_CLOEXEC)
        return c_setfd(fd, (int)(fl & ~FD_CLOEXEC));
    return 0;
}

/* Close [lo, hi] (hi < 0: to the end) in the child. */
static void
child_close_range(int lo, int hi, int keep)
{
    int fd, max;
#ifdef FS_HAVE_CLOSE_RANGE
    if ((keep < lo || (hi >= 0 && keep > hi)) && c_close_range(lo, hi) == 0)
        return;
#endif
    /* No close_range (or the error pipe sits inside): close one by one. */
    max = c_fd_limit();
    if (hi < 0 || hi >= max)
        hi = max - 1;
    for (fd = lo; fd <= hi; fd++)
        if (fd != keep)
            c_close(fd);
}

static void
child_reset_signals(int restore)
{
    int sig;
    for (sig = 1; sig < NSIG; sig++) {
        void *handler = NULL;   /* set by c_handler() when it returns 0 */
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (c_handler(sig, &handler) != 0)
            continue;
        if (handler == (void *)SIG_DFL)
            continue;
        if (handler == (void *)SIG_IGN) {
            int reset = 0;
            if (restore) {
                reset = sig == SIGPIPE;
#ifdef SIGXFSZ
                reset = reset || sig == SIGXFSZ;
#endif
#ifdef SIGXFZ
                reset = reset || sig == SIGXFZ;
#endif
            }
            if (!reset)
                continue;
        }
        /* A handler of the parent must never run in the child, which
         * shares the parent's memory: default it before unblocking. */
        c_default(sig);
    }
}

/* CHILD_CALL(): run a c_*() call; on -errno, keep it and jump to the
 * child's single exit. */
#define CHILD_CALL(call) \
    do { if ((err = (call)) < 0) goto error; } while (0)

/*
 * The child after vfork(), clone() (fs_spawn_wait) or fork() (where there
 * is no vfork).
 *
 * CONTRACT -- this runs in the parent's address space, with the parent
 * suspended (vfork) or, for the clone child, beside the calling thread,
 * which blocks in wait4()/futex or runs fs_communicate() until the child
 * has exec'd or exited (see spawn_clone_wait). It must:
 *   - make only the c_*() calls above (async-signal-safe system calls): no
 *     malloc/free, no stdio, no locks, no Python API, and no errno (raw
 *     system calls where the clone child exists);
 *   - not return: it ends in execve() or exit_group(127);
 *   - write nothing in parent memory except *rep (the failure report).
 * All signals are blocked on entry; handlers are reset to SIG_DFL before
 * the caller's mask is restored just before exec.
 */
__attribute__((noinline, noreturn)) static void
child_exec(const fs_request *req, const fs_plan *plan, fs_report *rep,
           int errpipe)
{
    int i, step = FS_STEP_OTHER;
    long err = 0;

    child_reset_signals(req->flags & FS_RESTORE_SIGNALS);

    for (i = 0; i < 3; i++) {
        int s = plan->src[i];
        if (s == FS_STDIO_INHERIT)
            continue;
        if (s == FS_STDIO_DEVNULL) {
            long fd;
            CHILD_CALL(fd = c_open_devnull());
            if (fd != i) {
                CHILD_CALL(c_dup2((int)fd, i));
                c_close((int)fd);
            }
        }
        else if (s == FS_STDIO_STDOUT) {
            CHILD_CALL(c_dup2(1, 2));
        }
        else if (s == i) {
            CHILD_CALL(child_clear_cloexec(i));
        }
        else {
            CHILD_CALL(c_dup2(s, i));   /* the copy never has FD_CLOEXEC */
        }
    }
    for (i = 0; i < (int)req->n_pass_fds; i++)
        CHILD_CALL(child_clear_cloexec(req->pass_fds[i]));
    if (req->flags & FS_CLOSE_FDS) {
        int prev = 2;
        for (i = 0; i < (int)req->n_pass_fds; i++) {
            if (req->pass_fds[i] > prev + 1)
                child_close_range(prev + 1, req->pass_fds[i] - 1, errpipe);
            prev = req->pass_fds[i];
        }
        child_close_range(prev + 1, -1, errpipe);
    }
    if (req->cwd != NULL) {
        step = FS_STEP_CHDIR;
        CHILD_CALL(c_chdir(req->cwd));
        step = FS_STEP_OTHER;
    }
    if (req->umask >= 0)
        c_umask(req->umask);
    if (req->flags & FS_SETSID)
        CHILD_CALL(c_setsid());
    if (req->pgroup >= 0)
        CHILD_CALL(c_setpgid(req->pgroup));
    if (req->n_groups >= 0)
        CHILD_CALL(c_setgroups((size_t)req->n_groups, req->groups));
    if (req->gid >= 0)
        CHILD_CALL(c_setregid((gid_t)req->gid));
    if (req->uid >= 0)
        CHILD_CALL(c_setreuid((uid_t)req->uid));

    c_setmask(&plan->old_mask);
    step = FS_STEP_EXEC;
    {
        /* os.execvp's rule: try every candidate; report the first error
         * other than ENOENT/ENOTDIR, else the last one. */
        char *const *envp = req->envp ? req->envp : environ;
        long first = 0;
        size_t k;
        for (k = 0; k < req->n_paths; k++) {
            err = c_execve(req->paths[k], req->argv, envp);
            if (!first && err != -ENOENT && err != -ENOTDIR)
                first = err;
        }
        if (first)
            err = first;
    }

error:
    child_report(rep, errpipe, step, (int)-err);
    c_exit(127);
}

static int
spawn_vfork(const fs_request *req, fs_plan *plan, fs_result *res)
{
    sigset_t all;
    fs_report rep;
    pid_t pid;
    int saved_errno = 0;
    int errpipe[2] = {-1, -1};

    rep.step = FS_STEP_OK;
    rep.err = 0;
#ifndef FS_HAVE_VFORK
    if (make_pipe(errpipe) == -1)
        return -1;
#endif
    sigfillset(&all);
    /* Block everything: no handler may run in the child, which shares our
     * memory; the child resets handlers before restoring this mask. */
    if ((saved_errno = pthread_sigmask(SIG_BLOCK, &all, &plan->old_mask))) {
        close_quietly(&errpipe[0]);
        close_quietly(&errpipe[1]);
        errno = saved_errno;
        return -1;
    }
#ifdef FS_HAVE_VFORK
    pid = vfork();
#else
    pid = fork();
#endif
    if (pid == 0)
        child_exec(req, plan, &rep, errpipe[1]);
    saved_errno = errno;
    (void)pthread_sigmask(SIG_SETMASK, &plan->old_mask, NULL);
#ifdef FS_HAVE_VFORK
    res->method = FS_VIA_VFORK;
#else
    res->method = FS_VIA_FORK;
#endif
    if (pid == -1) {
        close_quietly(&errpipe[0]);
        close_quietly(&errpipe[1]);
        errno = saved_errno;
        return -1;
    }
#ifndef FS_HAVE_VFORK
    close_quietly(&errpipe[1]);
    {
        int msg[2];
        ssize_t n;
        do {
            n = read(errpipe[0], msg, sizeof msg);
        } while (n == -1 && errno == EINTR);
        if (n == (ssize_t)sizeof msg) {
            rep.step = msg[0];
            rep.err = msg[1];
        }
        else if (n > 0) {
            rep.step = FS_STEP_EXEC;
            rep.err = EIO;
        }
    }
    close_quietly(&errpipe[0]);
#endif
    if (rep.step != FS_STEP_OK) {
        reap_failed(pid);
        res->err_step = rep.step;
        res->err_errno = rep.err;
        return 0;
    }
    res->pid = pid;
    return 0;
}

/* ---- the entry point ------------------------------------------------------ */

/* What every mechanism needs first: res reset, the stdio plan, pass_fds
 * checked. 0: go on; 1: a failure reported as a child step (nothing
 * open); -1: errno set (nothing open). */
static int
prepare(const fs_request *req, fs_plan *plan, fs_result *res)
{
    int i, rc;

    res->pid = -1;
    res->pidfd = -1;
    res->pipes[0] = res->pipes[1] = res->pipes[2] = -1;
    res->method = 0;
    res->err_step = FS_STEP_OK;
    res->err_errno = 0;

    rc = plan_stdio(req, plan, res);
    if (rc == 0) {
        /* An invalid pass_fds entry fails in the child's fcntl in CPython;
         * say so without starting one. */
        for (i = 0; i < (int)req->n_pass_fds; i++) {
            if (!fd_is_open(req->pass_fds[i])) {
                res->err_step = FS_STEP_OTHER;
                res->err_errno = EBADF;
                rc = 1;
                break;
            }
        }
    }
    if (rc != 0)
        discard(plan, res);
    return rc;
}

int
fs_spawn(const fs_request *req, fs_result *res)
{
    fs_plan plan;
    int rc;

    rc = prepare(req, &plan, res);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (fs_spawn_method(req) == FS_VIA_POSIX_SPAWN)
        rc = spawn_posix(req, &plan, res);
    else
        rc = spawn_vfork(req, &plan, res);
    if (rc != 0 || res->err_step != FS_STEP_OK) {
        discard(&plan, res);
        return rc < 0 ? -1 : 0;
    }
    unplan(&plan);
#ifdef FS_HAVE_PIDFD
    if (req->flags & FS_WANT_PIDFD) {
        /* Race-free: the child is ours and not reaped yet. Failure (old
         * kernel, EMFILE) only loses the optimisation. */
        long fd = syscall(SYS_pidfd_open, res->pid, 0);
        res->pidfd = fd >= 0 ? (int)fd : -1;
    }
#endif
    return 0;
}

/* ---- the waiting spawn's concurrent child (Linux) ------------------------ *
 *
 * fs_spawn_wait() and spawn_capture() (_spawn_c.pyx) do not return before
 * the child is gone, so they need no vfork suspension: fs_spawn_clone()
 * clone()s with CLONE_VM but without CLONE_VFORK, and the caller goes
 * straight to wait4() or to the communicate loop. The calling thread then
 * sleeps once per spawn instead of twice (once until the child execs, once
 * until it exits), and one scheduler round trip is a fifth of the parent's
 * CPU per spawn here (benchmarks/: spawn_cpu_vs_subprocess; a C loop of
 * clone(CLONE_VM) + wait4 costs ~20 us of parent CPU where vfork + wait4
 * costs ~26 us).
 *
 * What makes it safe, given that the child now runs beside the calling
 * thread in the same memory:
 *  - the child runs child_exec() exactly as after vfork (its contract
 *    holds), on a stack of its own (one per thread, kept for reuse), and
 *    reads only the request and plan, which live until fs_clone_left();
 *  - it writes only *rep, and never errno: its calls are raw system calls
 *    (FS_RAW_SYSCALLS), since it shares the calling thread's TLS, whose
 *    errno the parent's wait4, futex and signal handlers write meanwhile;
 *  - the calling thread runs no Python code (signal handlers, finalizers:
 *    they could change os.environ, which the child may be reading, or
 *    spawn again) until the child is known to be gone from this memory --
 *    reaped, or the futex word that CLONE_CHILD_CLEARTID zeroes (the
 *    kernel's mm_release(), at exec and at exit) reads 0: fs_clone_wait().
 * Signals are blocked around clone() as around vfork(), and the child
 * resets handlers before unblocking (it has its own copy: no CLONE_SIGHAND).
 */
#ifdef FS_HAVE_CLONE_WAIT

#define FS_CLONE_STACK (64 * 1024)

struct fs_clone {
    const fs_request *req;
    fs_plan plan;
    fs_report rep;
    volatile pid_t word;    /* CLONE_CHILD_CLEARTID: 0 once it left */
    pid_t pid;
    int reaped;             /* fs_clone_reaped(): its pid is no longer ours */
    int *stack_busy;        /* the thread's stack header (below) */
};

/* At the low end of each thread's child stack, above the guard page (the
 * child's stack grows down from the top and never gets there): whether a
 * child runs on it now. A second spawn on the same thread meanwhile (which
 * nothing should allow: the caller runs no Python code until the child
 * has left) would take vfork rather than share the stack. */
typedef struct {
    int busy;
} fs_stack_head;

static pthread_key_t stack_key;
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;
static int clone_usable;

static size_t
guard_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

/* The mapping is [guard page][fs_stack_head ... FS_CLONE_STACK]; `stack`
 * is the mapping's start. */
static void
free_stack(void *stack)
{
    (void)munmap(stack, guard_size() + FS_CLONE_STACK);
}

static void
clone_init(void)
{
    /* Valgrind implements clone() only as fork or as a thread: any other
     * flags abort it ("Unsupported clone() flags"), so under Valgrind
     * (which preloads its vgpreload_*.so) the waiting spawn uses vfork,
     * which it runs as a fork. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "vgpreload") != NULL)
        return;
#ifdef __GLIBC__
    {
        /* glibc before 2.25 (BZ #19957) has clone() write -1 into the
         * calling thread's cached pid/tid when given CLONE_VM -- in the
         * TLS our child shares with the waiting thread. */
        int major = 0, minor = 0;
        const char *v = gnu_get_libc_version();
        while (*v >= '0' && *v <= '9')
            major = major * 10 + (*v++ - '0');
        if (*v == '.')
            v++;
        while (*v >= '0' && *v <= '9')
            minor = minor * 10 + (*v++ - '0');
        if (major < 2 || (major == 2 && minor < 25))
            return;
    }
#endif
    clone_usable = pthread_key_create(&stack_key, free_stack) == 0;
}

static int
clone_wait_usable(void)
{
    (void)pthread_once(&stack_once, clone_init);
    return __atomic_load_n(&clone_usable, __ATOMIC_RELAXED);
}

/* This thread's child stack (mapped on first use, unmapped at thread exit
 * by the key's destructor), or NULL: then the caller uses vfork. */
static char *
thread_child_stack(void)
{
    char *stack;
    if (!clone_wait_usable())
        return NULL;
    stack = pthread_getspecific(stack_key);
    if (stack != NULL)
        return stack;
    stack = mmap(NULL, guard_size() + FS_CLONE_STACK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return NULL;
    /* A guard page at the low end (one page, whatever its size: 64 KiB on
     * some ppc64/AArch64 kernels): an overflow faults instead of writing
     * into whatever is mapped below. */
    (void)mprotect(stack, guard_size(), PROT_NONE);
    if (pthread_setspecific(stack_key, stack) != 0) {
        free_stack(stack);
        return NULL;
    }
    return stack;
}

static fs_stack_head *
stack_head(char *stack)
{
    return (fs_stack_head *)(void *)(stack + guard_size());
}

static int
clone_child(void *arg)
{
    struct fs_clone *cl = arg;
    child_exec(cl->req, &cl->plan, &cl->rep, -1);
}

void
fs_clone_reaped(fs_clone *cl)
{
    cl->reaped = 1;
}

void
fs_clone_wait(fs_clone *cl)
{
    pid_t v;
    long wait_ns = 1000000;
    /* Reaped: it is gone (and the pid may be somebody else's by now). */
    if (cl->reaped)
        return;
    while ((v = __atomic_load_n(&cl->word, __ATOMIC_ACQUIRE)) != 0) {
        struct timespec ts = {0, 0};
        siginfo_t si;
        /* Kernels before 4.8 leave the word alone when the child is killed
         * by a signal (and up to 5.16 when it dumps core): a child that is
         * a zombie, or already gone, has left too. WNOWAIT: still ours to
         * reap. */
        si.si_pid = 0;
        if (waitid(P_PID, (id_t)cl->pid, &si, WEXITED | WNOHANG | WNOWAIT)
                == -1 ? errno == ECHILD : si.si_pid == cl->pid)
            break;
        /* Not FUTEX_PRIVATE: mm_release() wakes with a shared-futex key. A
         * timeout (1 ms, growing to 64 ms for a child that stays, e.g. one
         * stopped before exec), so that no missed wake-up can hang it. */
        ts.tv_nsec = wait_ns;
        (void)syscall(SYS_futex, &cl->word, FUTEX_WAIT, v, &ts, NULL, 0);
        if (wait_ns < 64000000)
            wait_ns *= 2;
    }
}

int
fs_spawn_clone(const fs_request *req, fs_result *res, fs_clone **out)
{
    struct fs_clone *cl;
    sigset_t all;
    char *stack;
    pid_t pid;
    int rc, err;

    *out = NULL;
    if (req->flags & (FS_FORCE_VFORK | FS_PREFER_POSIX_SPAWN
                      | FS_WANT_PIDFD))
        return FS_CLONE_UNAVAILABLE;
    stack = thread_child_stack();
    if (stack == NULL || stack_head(stack)->busy)
        return FS_CLONE_UNAVAILABLE;
    cl = malloc(sizeof *cl);
    if (cl == NULL)
        return FS_CLONE_UNAVAILABLE;
    rc = prepare(req, &cl->plan, res);
    if (rc != 0) {
        free(cl);
        return rc < 0 ? -1 : 0;
    }
    cl->req = req;
    cl->rep.step = FS_STEP_OK;
    cl->rep.err = 0;
    cl->word = 1;
    cl->reaped = 0;
    cl->stack_busy = &stack_head(stack)->busy;
    sigfillset(&all);
    if ((err = pthread_sigmask(SIG_BLOCK, &all, &cl->plan.old_mask)) != 0) {
        pid = -1;
        goto fail;
    }
    pid = clone(clone_child, stack + guard_size() + FS_CLONE_STACK,
                CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, cl,
                NULL, NULL, (pid_t *)&cl->word);
    err = errno;      /* only meaningful when there is no child */
    (void)pthread_sigmask(SIG_SETMASK, &cl->plan.old_mask, NULL);
    if (pid == -1)
        goto fail;
    /* The child has its own fd table (no CLONE_FILES): our copies of its
     * ends can go now. The plan's memory stays until fs_clone_left(). */
    unplan(&cl->plan);
    *cl->stack_busy = 1;
    cl->pid = pid;
    res->pid = pid;
    res->method = FS_VIA_VFORK;
    *out = cl;
    return 0;

fail:
    discard(&cl->plan, res);
    free(cl);
    /* Refused by a sandbox (seccomp) or an emulator: vfork from now on. */
    if (err == EINVAL || err == ENOSYS || err == EPERM) {
        __atomic_store_n(&clone_usable, 0, __ATOMIC_RELAXED);
        return FS_CLONE_UNAVAILABLE;
    }
    errno = err;
    return -1;
}

int
fs_clone_left(fs_clone *cl, int *err)
{
    int step;
    fs_clone_wait(cl);
    step = cl->rep.step;
    *err = cl->rep.err;
    *cl->stack_busy = 0;
    free(cl);
    return step;
}

#else  /* !FS_HAVE_CLONE_WAIT */

int
fs_spawn_clone(const fs_request *req, fs_result *res, fs_clone **out)
{
    (void)req;
    (void)res;
    *out = NULL;
    return FS_CLONE_UNAVAILABLE;
}

void
fs_clone_reaped(fs_clone *cl)
{
    (void)cl;
}

void
fs_clone_wait(fs_clone *cl)
{
    (void)cl;
}

int
fs_clone_left(fs_clone *cl, int *err)
{
    (void)cl;
    *err = 0;
    return FS_STEP_OK;
}

#endif /* FS_HAVE_CLONE_WAIT */

/* fs_spawn_wait() through the clone child: FS_CLONE_UNAVAILABLE when there
 * is none for this request. */
static int
spawn_clone_wait(const fs_request *req, fs_result *res, int *status,
                 struct rusage *ru, int *waited)
{
    fs_clone *cl;
    pid_t pid, r;
    int rc, step, err;

    rc = fs_spawn_clone(req, res, &cl);
    if (cl == NULL)
        return rc;
    pid = res->pid;
    r = wait4(pid, status, 0, ru);
    if (r == pid)
        fs_clone_reaped(cl);
    else {
        /* Interrupted (signal handlers are to run, and they may do
         * anything), or SIGCHLD ignored: first let the child leave. */
        int e = errno;
        fs_clone_wait(cl);
        r = e == ECHILD ? -1 : 0;
    }
    step = fs_clone_left(cl, &err);
    if (step != FS_STEP_OK) {
        /* It failed before or at exec and is exiting with 127. */
        if (r == 0)
            reap_failed(pid);
        res->pid = -1;
        res->err_step = step;
        res->err_errno = err;
        return 0;
    }
    *waited = r == pid ? 1 : (r == 0 ? 0 : -1);
    return 0;
}

int
fs_spawn_wait(const fs_request *req, fs_result *res, int *status,
              struct rusage *ru, int *waited)
{
    int i;

    *waited = 0;
    for (i = 0; i < 3; i++) {
        if (req->stdio[i] == FS_STDIO_PIPE) {
            errno = EINVAL;
            return -1;
        }
    }
    if (req->flags & FS_WANT_PIDFD) {
        errno = EINVAL;
        return -1;
    }
    {
        int rc = spawn_clone_wait(req, res, status, ru, waited);
        if (rc != FS_CLONE_UNAVAILABLE)
            return rc;
    }
    if (fs_spawn(req, res) != 0)
        return -1;
    if (res->err_step != FS_STEP_OK)
        return 0;
    /* One try: on EINTR the caller's signal handlers must run (they may
     * raise KeyboardInterrupt, and then the caller decides the child's
     * fate), so the retry belongs to the caller. */
    *waited = fs_reap(res->pid, status, ru);
    return 0;
}


int
fs_reap(pid_t pid, int *status, struct rusage *ru)
{
    if (wait4(pid, status, 0, ru) == pid)
        return 1;
    return errno == ECHILD ? -1 : 0;
}
