/*
 * fs_loop.h -- one poll loop over many running children (run_many()).
 *
 * The caller starts children and puts each in a slot: its pid, its pidfd
 * and the parent ends of its stdout/stderr pipes (any may be absent).
 * fs_loop_run() then poll()s every busy slot's pidfd and pipes at once,
 * reading the pipes into per-slot buffers, with no Python involved (the
 * caller releases the GIL around it). Like fs_communicate() it never
 * allocates: it returns to the caller when a buffer must grow, when a
 * child is finished (exited and both pipes at EOF), when a slot's deadline
 * passes, when the caller's wake-up time passes, when no slot is busy, or
 * when a signal interrupted the poll.
 *
 * Without a pidfd (old kernels, macOS) a child's exit is found with
 * waitid(WNOWAIT) checks between polls that time out after a few ms.
 *
 * With a notify_fd (fs_loop.notify_fd, -1: none) the loop also returns
 * FS_LOOP_NOTIFY when that fd is readable -- even with no busy slot --
 * so threads that start children can wake it; the caller drains the fd.
 *
 * A slot's pipe fds belong to the loop while the slot is busy: it closes
 * each at EOF, in fs_loop_drop() and in fs_loop_destroy(). The pidfd stays
 * the caller's. Nothing here reaps a child: the caller waitpid()s it.
 */
#ifndef FASTSPAWN_FS_LOOP_H
#define FASTSPAWN_FS_LOOP_H

#include <stddef.h>
#include <sys/types.h>

/* fs_loop_run() results. */
#define FS_LOOP_EXITED   1   /* event_slot's child exited, pipes done */
#define FS_LOOP_EXPIRED  2   /* event_slot's deadline passed (once) */
#define FS_LOOP_GROW     3   /* event_slot's out[event_stream] is full */
#define FS_LOOP_WAKE     4   /* the wake-up time passed */
#define FS_LOOP_IDLE     5   /* no busy slot */
#define FS_LOOP_EINTR    6   /* a signal arrived: run handlers, resume */
#define FS_LOOP_NOTIFY   7   /* notify_fd is readable (not read) */
#define FS_LOOP_ERROR  (-1)  /* errno set */

/* fs_slot.state */
#define FS_SLOT_FREE 0
#define FS_SLOT_BUSY 1
#define FS_SLOT_DONE 2       /* reported EXITED; the caller frees it */

typedef struct {
    int state;
    pid_t pid;
    int pidfd;               /* -1: watch the pid with waitid(WNOWAIT) */
    int exited;              /* the child has exited (not reaped) */
    int fd[2];               /* stdout, stderr readers; -1: none/finished */
    char *out[2];            /* caller-owned buffers */
    size_t cap[2];
    size_t len[2];
    double deadline;         /* CLOCK_MONOTONIC seconds; < 0: none */
} fs_slot;

typedef struct {
    fs_slot *slots;
    size_t n;
    void *scratch;           /* poll() arrays for 3 * n fds */
    size_t next;             /* where the next scan for events starts */
    int notify_fd;           /* -1, or an fd whose readability is an event
                                (other threads hand over new children) */
    int nopidfd_ms;          /* current waitid() check interval */
    size_t event_slot;       /* which slot the last event is about */
    int event_stream;        /* GROW: 0 stdout, 1 stderr */
} fs_loop;

/* Allocate n free slots (scratch for 3 * n + 1 fds). Returns 0, or -1
 * with errno (ENOMEM). notify_fd starts at -1. */
int fs_loop_init(fs_loop *l, size_t n);

/* Close every pipe fd the loop still owns and free its memory (not the
 * caller's buffers). Safe on a zeroed or destroyed loop. */
void fs_loop_destroy(fs_loop *l);

/* Make slot i (which must be FREE) busy with this child. Buffers start
 * empty (cap 0): the first data to read asks for a GROW. */
void fs_loop_add(fs_loop *l, size_t i, pid_t pid, int pidfd, int out_fd,
                 int err_fd, double deadline);

/* Close slot i's pipes now (what was read stays in its buffers). */
void fs_loop_drop(fs_loop *l, size_t i);

/* Run until an event. wake: CLOCK_MONOTONIC seconds, < 0 for none. */
int fs_loop_run(fs_loop *l, double wake);

#endif /* FASTSPAWN_FS_LOOP_H */
