# Declarations of csrc/fs_loop.h (one .pxd per C header).
from posix.types cimport pid_t

cdef extern from "fs_loop.h" nogil:
    int FS_LOOP_EXITED, FS_LOOP_EXPIRED, FS_LOOP_GROW, FS_LOOP_WAKE
    int FS_LOOP_IDLE, FS_LOOP_EINTR, FS_LOOP_NOTIFY, FS_LOOP_ERROR
    int FS_SLOT_FREE, FS_SLOT_BUSY, FS_SLOT_DONE

    ctypedef struct fs_slot:
        int state
        pid_t pid
        int pidfd
        int exited
        int fd[2]
        char *out[2]
        size_t cap[2]
        size_t len[2]
        double deadline

    ctypedef struct fs_loop:
        fs_slot *slots
        size_t n
        int notify_fd
        size_t event_slot
        int event_stream

    int fs_loop_init(fs_loop *l, size_t n)
    void fs_loop_destroy(fs_loop *l)
    void fs_loop_add(fs_loop *l, size_t i, pid_t pid, int pidfd, int out_fd,
                     int err_fd, double deadline)
    void fs_loop_drop(fs_loop *l, size_t i)
    int fs_loop_run(fs_loop *l, double wake)
