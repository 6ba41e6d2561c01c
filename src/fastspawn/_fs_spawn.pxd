# Declarations of csrc/fs_spawn.h (one .pxd per C header).
from posix.resource cimport rusage
from posix.types cimport pid_t, gid_t

cdef extern from "fs_spawn.h" nogil:
    int FS_STDIO_INHERIT, FS_STDIO_PIPE, FS_STDIO_DEVNULL, FS_STDIO_STDOUT
    int FS_VIA_POSIX_SPAWN, FS_VIA_VFORK, FS_VIA_FORK
    int FS_STEP_OK, FS_STEP_EXEC, FS_STEP_CHDIR, FS_STEP_OTHER, FS_STEP_PREEXEC
    int FS_CLOSE_FDS, FS_SETSID, FS_RESTORE_SIGNALS, FS_WANT_PIDFD, FS_FORCE_VFORK
    int FS_PREFER_POSIX_SPAWN

    ctypedef struct fs_request:
        char *const *paths
        size_t n_paths
        char *const *argv
        char *const *envp
        int stdio[3]
        const int *pass_fds
        size_t n_pass_fds
        const char *cwd
        int flags
        pid_t pgroup
        int umask
        long long uid
        long long gid
        const gid_t *groups
        long n_groups

    ctypedef struct fs_result:
        pid_t pid
        int pidfd
        int pipes[3]
        int method
        int err_step
        int err_errno

    int fs_spawn(const fs_request *req, fs_result *res)
    int fs_spawn_wait(const fs_request *req, fs_result *res, int *status,
                      rusage *ru, int *waited)
    int fs_reap(pid_t pid, int *status, rusage *ru)
    int FS_CLONE_UNAVAILABLE
    ctypedef struct fs_clone:
        pass
    int fs_spawn_clone(const fs_request *req, fs_result *res, fs_clone **out)
    void fs_clone_wait(fs_clone *cl)
    void fs_clone_reaped(fs_clone *cl)
    int fs_clone_left(fs_clone *cl, int *err)
    int fs_spawn_method(const fs_request *req)
    int fs_features()
    int FS_FEAT_ADDCHDIR, FS_FEAT_ADDCLOSEFROM, FS_FEAT_PIDFD
    int FS_FEAT_CLOSE_RANGE, FS_FEAT_CLONE_WAIT
