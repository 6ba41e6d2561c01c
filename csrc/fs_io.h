/*
 * fs_io.h -- talking to a running child: communicate() and timed waits.
 *
 * fs_communicate() runs the poll loop that writes a child's stdin and reads
 * its stdout and stderr, with no Python involved, so the caller releases
 * the GIL around it. It never allocates: it reads into buffers the caller
 * owns and returns to the caller whenever one must grow, a stream is
 * finished (so the caller can close its file object), a signal interrupted
 * the poll (so the caller can run handlers), or the deadline passed.
 */
#ifndef FASTSPAWN_FS_IO_H
#define FASTSPAWN_FS_IO_H

#include <stddef.h>
#include <sys/types.h>

#define FS_COMM_DONE     0   /* every stream finished */
#define FS_COMM_TIMEOUT  1   /* deadline passed; call again to resume */
#define FS_COMM_GROW     2   /* out[c->event_stream - 1] is full and more
                                came: grow it, then move the spill in */
#define FS_COMM_CLOSED   3   /* stream c->event_stream (0,1,2) finished */
#define FS_COMM_EINTR    4   /* a signal arrived: run handlers, resume */
#define FS_COMM_ERROR   (-1) /* errno set; c->event_stream says where */

/* A stream's first FS_SPILL bytes, and later what was read while its
 * buffer was full: a stream that only ever gives EOF or a few bytes (the
 * usual stderr, a short answer) needs no buffer at all, and one is made
 * only once more than that has come. */
#define FS_SPILL 256

/* What an output pipe that carries a lot is enlarged to: Linux's default
 * /proc/sys/fs/pipe-max-size, so unprivileged callers get it too. A 16x
 * bigger pipe means 16x fewer reads, polls and child wake-ups. */
#define FS_BIG_PIPE (1 << 20)

typedef struct {
    int fd[3];            /* stdin writer, stdout reader, stderr reader;
                             -1: none or finished */
    int close_fds;        /* 1: close each finished stream's fd here and
                             record it in `closed` instead of returning
                             FS_COMM_CLOSED (one trip back fewer each) */
    int closed;           /* bit i: stream i closed here (the caller clears
                             the bits once its bookkeeping knows) */
    int enlarge_pipes;    /* 1: a pipe that delivers a full default pipe's
                             worth in one read is enlarged (F_SETPIPE_SZ,
                             FS_BIG_PIPE) -- only for pipes the caller made
                             and nobody asked a size for */
    int enlarged;         /* bit i: stream i's pipe was enlarged (tried) */
    const char *in_buf;   /* input for stdin */
    size_t in_len;
    size_t in_off;        /* how much of it was written */
    char *out[2];         /* stdout, stderr buffers (caller-owned) */
    size_t cap[2];
    size_t len[2];
    int event_stream;     /* which stream the last event is about */
    char spill[2][FS_SPILL];
    size_t spill_len[2];  /* bytes in spill[k]: the whole output while
                             cap[k] == 0, else to be appended to out[k]
                             after the FS_COMM_GROW that reported them */
} fs_comm;

/* Prepare c->fd[0] (non-blocking writes, so a full pipe never blocks the
 * loop). Returns 0 or -1 with errno. */
int fs_comm_start(fs_comm *c);

/* Run until an event. deadline: CLOCK_MONOTONIC seconds, < 0 for none
 * (so a deadline in the past must be passed as 0, not as a negative
 * number). Returns FS_COMM_TIMEOUT, without reading or writing, whenever
 * the deadline has already passed on entry or between two polls. */
int fs_communicate(fs_comm *c, double deadline);

/* Wait until the child behind pidfd exits or the deadline passes
 * (CLOCK_MONOTONIC seconds, < 0 for none: see fs_communicate).
 * Returns 1 when it exited, 0 on timeout, -1 with errno (EINTR included). */
int fs_pidfd_wait(int pidfd, double deadline);

/* CLOCK_MONOTONIC now, in seconds (same clock as time.monotonic()). */
double fs_monotonic(void);

#endif /* FASTSPAWN_FS_IO_H */
