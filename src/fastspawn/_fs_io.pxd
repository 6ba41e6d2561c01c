# Declarations of csrc/fs_io.h (one .pxd per C header).
cdef extern from "fs_io.h" nogil:
    int FS_COMM_DONE, FS_COMM_TIMEOUT, FS_COMM_GROW, FS_COMM_CLOSED
    int FS_COMM_EINTR, FS_COMM_ERROR

    enum: FS_SPILL
    ctypedef struct fs_comm:
        int fd[3]
        int close_fds
        int closed
        int enlarge_pipes
        int enlarged
        const char *in_buf
        size_t in_len
        size_t in_off
        char *out[2]
        size_t cap[2]
        size_t len[2]
        int event_stream
        char spill[2][FS_SPILL]
        size_t spill_len[2]

    int fs_comm_start(fs_comm *c)
    int fs_communicate(fs_comm *c, double deadline)
    int fs_pidfd_wait(int pidfd, double deadline)
    double fs_monotonic()
