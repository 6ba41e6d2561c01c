/*
 * child_calls.c -- C-level tests of csrc/fs_spawn.c, below Python: the
 * child's system-call layer (raw and errno-free on x86-64 Linux, libc when
 * built with -DFS_NO_RAW_SYSCALLS or elsewhere) and fs_spawn_wait() through
 * each mechanism. Built and run by tests/test_c_core.py:
 *
 *     cc -I csrc -o child_calls tests/c/child_calls.c -lpthread
 *     ./child_calls SCRATCH_DIR [--no-failure-reports]
 *
 * (--no-failure-reports: under an emulator that runs vfork as fork, such as
 * qemu-user, a child's failure report through shared memory is lost.)
 * The file includes fs_spawn.c itself to reach its static functions.
 */
#include "../../csrc/fs_spawn.c"

#include <stdio.h>

static int fails;

#define CHECK(c) do { \
        if (!(c)) { \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); \
            fails++; \
        } \
    } while (0)

static char scratch[512];

static char *
path_in(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", scratch, name);
    return buf[k];
}

static void
test_calls(void)
{
    char *argv[] = {"x", NULL};
    long fd;
    char cwd[600];

    CHECK(c_chdir("/nonexistent-fastspawn-dir") == -ENOENT);
    CHECK(c_execve("/nonexistent/fastspawn", argv, environ) == -ENOENT);
    CHECK(c_execve(path_in("plain"), argv, environ) == -EACCES);
    CHECK(c_setpgid(999999) == -EPERM || c_setpgid(999999) == -ESRCH);
    fd = c_open_devnull();
    CHECK(fd >= 3);
    CHECK(c_getfd((int)fd) == 0);
    CHECK(c_setfd((int)fd, FD_CLOEXEC) == 0 && c_getfd((int)fd) == FD_CLOEXEC);
    CHECK(child_clear_cloexec((int)fd) == 0 && c_getfd((int)fd) == 0);
    CHECK(c_dup2((int)fd, 40) == 40 && c_getfd(40) == 0);
    c_close(40);
    CHECK(c_getfd(40) == -EBADF);
    CHECK(c_dup2(77, 41) == -EBADF);
    c_close((int)fd);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(c_chdir(scratch) == 0);
    CHECK(c_chdir(cwd) == 0);
    c_umask(027);
    CHECK(umask(022) == 027);
    CHECK(c_setreuid(getuid()) == 0 && c_setregid(getgid()) == 0);
    errno = 0;
    CHECK(c_chdir("/nonexistent-fastspawn-dir") < 0);
#ifdef FS_RAW_SYSCALLS
    CHECK(errno == 0);       /* the point of the raw layer */
#endif

    /* Handlers reset, ignored signals kept but for the restored ones. */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    child_reset_signals(1);
    {
        struct sigaction s;
        sigaction(SIGUSR1, NULL, &s);
        CHECK(s.sa_handler == SIG_IGN);
        sigaction(SIGPIPE, NULL, &s);
        CHECK(s.sa_handler == SIG_DFL);
    }
    signal(SIGUSR2, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    {
        sigset_t m, o;
        sigemptyset(&m);
        sigaddset(&m, SIGUSR2);
        c_setmask(&m);
        sigprocmask(SIG_SETMASK, NULL, &o);
        CHECK(sigismember(&o, SIGUSR2));
        sigemptyset(&m);
        c_setmask(&m);
    }

    /* close_range, and the one-by-one loop when the kept fd is inside. */
    dup2(0, 60);
    dup2(0, 61);
    child_close_range(60, 60, -1);
    CHECK(c_getfd(60) == -EBADF && c_getfd(61) == 0);
    child_close_range(61, -1, 61);
    CHECK(c_getfd(61) == 0);
    child_close_range(61, 70, -1);
    CHECK(c_getfd(61) == -EBADF);
}

static void
init(fs_request *r, char *const *paths, size_t n, char *const *argv, int flags)
{
    memset(r, 0, sizeof *r);
    r->paths = paths;
    r->n_paths = n;
    r->argv = argv;
    r->stdio[0] = r->stdio[1] = r->stdio[2] = FS_STDIO_INHERIT;
    r->pgroup = -1;
    r->umask = -1;
    r->uid = -1;
    r->gid = -1;
    r->n_groups = -1;
    r->flags = flags;
}

/* fs_spawn_wait() to the end: 0 and *status, or the child step failed. */
static int
wait_run(fs_request *r, fs_result *res, int *status)
{
    struct rusage ru;
    int waited = 0;
    if (fs_spawn_wait(r, res, status, &ru, &waited) != 0)
        return -1;
    if (res->err_step == FS_STEP_OK && waited != 1)
        while (waitpid(res->pid, status, 0) == -1 && errno == EINTR)
            ;
    return 0;
}

static void
test_spawn_wait(int flags, int failure_reports)
{
    fs_request r;
    fs_result res;
    int st = 0, fd;
    char *sh[] = {"/bin/sh", NULL};
    char *exit7[] = {"sh", "-c", "exit 7", NULL};
    char *ax[] = {"x", NULL};
    char buf[256] = {0};

    init(&r, sh, 1, exit7, flags | FS_CLOSE_FDS | FS_RESTORE_SIGNALS);
    CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OK
          && WIFEXITED(st) && WEXITSTATUS(st) == 7);

    if (failure_reports) {
        char *missing[] = {"/nonexistent/a", "/nonexistent/b"};
        char *noexec[] = {"/nonexistent/a", path_in("plain"), "/nonexistent/b"};
        init(&r, missing, 2, ax, flags);
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_EXEC
              && res.err_errno == ENOENT && res.pid == -1);
        init(&r, noexec, 3, ax, flags);
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_EXEC
              && res.err_errno == EACCES);
        init(&r, sh, 1, exit7, flags);
        r.cwd = "/nonexistent-fastspawn-dir";
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_CHDIR
              && res.err_errno == ENOENT);
        init(&r, sh, 1, exit7, flags);
        r.pgroup = 999999;
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OTHER
              && (res.err_errno == EPERM || res.err_errno == ESRCH));
    }
    /* Found before any child: a bad stdio fd. */
    init(&r, sh, 1, exit7, flags);
    r.stdio[1] = 999;
    CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OTHER
          && res.err_errno == EBADF);

    /* stdio from a file, /dev/null and STDOUT; cwd; umask. */
    {
        char *script[] = {"sh", "-c", "pwd; echo err >&2; cat; umask", NULL};
        fd = open(path_in("out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0644);
        CHECK(fd >= 0);
        init(&r, sh, 1, script, flags | FS_CLOSE_FDS);
        r.stdio[0] = FS_STDIO_DEVNULL;
        r.stdio[1] = fd;
        r.stdio[2] = FS_STDIO_STDOUT;
        r.cwd = "/";
        r.umask = 077;
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OK
              && st == 0);
        close(fd);
        fd = open(path_in("out"), O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && read(fd, buf, sizeof buf - 1) > 0);
        close(fd);
        CHECK(strcmp(buf, "/\nerr\n0077\n") == 0);
    }
    /* close_fds closes an inheritable fd 50; pass_fds keeps 51. */
    {
        char *script[] = {"sh", "-c",
                          "test -e /proc/self/fd/50 && exit 3;"
                          "test -e /proc/self/fd/51 || exit 4; exit 0", NULL};
        int keep[] = {51};
        dup2(0, 50);
        dup2(0, 51);
        init(&r, sh, 1, script, flags | FS_CLOSE_FDS);
        r.pass_fds = keep;
        r.n_pass_fds = 1;
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OK
              && st == 0);
        close(50);
        close(51);
    }
    /* Ignored SIGPIPE is restored for the child (signals the caller
     * ignored itself -- SIGHUP under nohup -- stay ignored); setsid works. */
    {
        char *script[] = {"sh", "-c",
                          "ign=$(awk '/^SigIgn/{print $2}' /proc/self/status);"
                          "[ $(( 0x$ign & 0x1000 )) -eq 0 ] || exit 5", NULL};
        signal(SIGPIPE, SIG_IGN);
        init(&r, sh, 1, script, flags | FS_RESTORE_SIGNALS | FS_SETSID);
        CHECK(wait_run(&r, &res, &st) == 0 && res.err_step == FS_STEP_OK
              && st == 0);
        signal(SIGPIPE, SIG_DFL);
    }
}

int
main(int argc, char **argv)
{
    int failure_reports = !(argc > 2
                            && strcmp(argv[2], "--no-failure-reports") == 0);
    int fd;
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR [--no-failure-reports]\n",
                argv[0]);
        return 2;
    }
    snprintf(scratch, sizeof scratch, "%s", argv[1]);
    fd = open(path_in("plain"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
              0644);
    if (fd < 0 || close(fd) != 0)
        return 2;
#ifdef FS_RAW_SYSCALLS
    printf("raw system calls: yes\n");
#else
    printf("raw system calls: no\n");
#endif
    printf("clone child: %s\n",
           fs_features() & FS_FEAT_CLONE_WAIT ? "yes" : "no");
    test_calls();
    test_spawn_wait(0, failure_reports);
    test_spawn_wait(FS_FORCE_VFORK, failure_reports);
    test_spawn_wait(FS_PREFER_POSIX_SPAWN, failure_reports);
    printf(fails ? "FAILURES: %d\n" : "ALL OK\n", fails);
    return fails != 0;
}
