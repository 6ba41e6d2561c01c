/*
 * fs_io.c -- communicate() and pidfd waits (see fs_io.h).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include "fs_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

/* One write() of at most this much: large enough that big inputs cost few
 * system calls, small enough to keep reading the child's output in between
 * (a child that writes before it reads everything must not stall). */
#define FS_WRITE_CHUNK (1 << 20)

/* Linux's default pipe capacity: a read that returns this much found the
 * pipe full, the sign of a stream worth a bigger pipe. */
#define FS_DEFAULT_PIPE 65536

double
fs_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Milliseconds to poll() for until deadline, rounded up so that we never
 * wake just before it and spin; -1 for no deadline. */
static int
poll_timeout_ms(double deadline)
{
    double left;
    if (deadline < 0)
        return -1;
    left = deadline - fs_monotonic();
    if (left <= 0)
        return 0;
    if (left > 86400.0)
        return 86400 * 1000;
    return (int)ceil(left * 1000.0);
}

int
fs_comm_start(fs_comm *c)
{
    if (c->fd[0] >= 0) {
        int fl = fcntl(c->fd[0], F_GETFL);
        if (fl == -1 || fcntl(c->fd[0], F_SETFL, fl | O_NONBLOCK) == -1)
            return -1;
    }
    return 0;
}

/* finish() when the loop closes the fd itself: keep going. */
#define FS_COMM_GO_ON 100

static int
finish(fs_comm *c, int stream)
{
    int fd = c->fd[stream];
    c->fd[stream] = -1;
    c->event_stream = stream;
    if (c->close_fds) {
        /* Never retried: on Linux the fd is gone even on EINTR. */
        (void)close(fd);
        c->closed |= 1 << stream;
        return FS_COMM_GO_ON;
    }
    return FS_COMM_CLOSED;     /* the caller owns and closes the fd */
}

int
fs_communicate(fs_comm *c, double deadline)
{
    /* A read found nothing (EAGAIN: a caller's non-blocking fd): wait in
     * poll() from then on instead of reading again at once. */
    int must_poll = 0;

    for (;;) {
        struct pollfd pfd[3];
        int map[3], n = 0, i, r;

        if (c->fd[0] >= 0 && c->in_off >= c->in_len) {
            r = finish(c, 0);              /* all input written: EOF it */
            if (r != FS_COMM_GO_ON)
                return r;
        }
        for (i = 1; i < 3; i++) {
            if (c->spill_len[i - 1] > 0 && c->cap[i - 1] > 0) {
                /* A GROW the caller did not complete (it failed, or the
                 * caller came back without growing): report it again. */
                c->event_stream = i;
                return FS_COMM_GROW;
            }
        }
        for (i = 0; i < 3; i++) {
            if (c->fd[i] < 0)
                continue;
            pfd[n].fd = c->fd[i];
            pfd[n].events = i == 0 ? POLLOUT : POLLIN;
            pfd[n].revents = 0;
            map[n++] = i;
        }
        if (n == 0)
            return FS_COMM_DONE;
        /* Once the deadline has passed, stop even if data is ready (as
         * subprocess does before each select): a child that writes or
         * reads faster than we keep up cannot hold us past the deadline,
         * and an expired timeout (0, negative) never reads anything. */
        if (deadline >= 0 && fs_monotonic() > deadline)
            return FS_COMM_TIMEOUT;

        if (n == 1 && map[0] != 0 && deadline < 0 && !must_poll) {
            /* One reader left and no deadline: a blocking read() waits as
             * well as poll() would, at half the system calls. (The fd is
             * blocking; only stdin's writer is made non-blocking.) A
             * signal still interrupts it: Python's handlers are installed
             * without SA_RESTART, so read() fails with EINTR. */
            pfd[0].revents = POLLIN;
            r = 1;
        }
        else {
            r = poll(pfd, (nfds_t)n, poll_timeout_ms(deadline));
        }
        if (r == -1) {
            if (errno == EINTR)
                return FS_COMM_EINTR;
            c->event_stream = -1;
            return FS_COMM_ERROR;
        }
        if (r == 0)
            return FS_COMM_TIMEOUT;

        for (i = 0; i < n; i++) {
            int s = map[i];
            if (pfd[i].revents == 0)
                continue;
            if (s == 0) {
                size_t want = c->in_len - c->in_off;
                ssize_t w;
                if (want > FS_WRITE_CHUNK)
                    want = FS_WRITE_CHUNK;
                w = write(c->fd[0], c->in_buf + c->in_off, want);
                if (w >= 0) {
                    c->in_off += (size_t)w;
                }
                else if (errno == EPIPE) {
                    /* The child closed its stdin early: not an error,
                     * exactly as subprocess ignores BrokenPipeError. */
                    r = finish(c, 0);
                    if (r != FS_COMM_GO_ON)
                        return r;
                    continue;
                }
                else if (errno != EAGAIN && errno != EINTR) {
                    c->event_stream = 0;
                    return FS_COMM_ERROR;
                }
                if (pfd[i].revents & (POLLERR | POLLHUP)
                        && c->in_off < c->in_len && w < 0) {
                    r = finish(c, 0);
                    if (r != FS_COMM_GO_ON)
                        return r;
                }
            }
            else {
                int k = s - 1;
                int full = c->len[k] == c->cap[k];
                ssize_t got;
                if (c->cap[k] == 0) {
                    /* No buffer yet: small outputs live in the spill and
                     * never need one (nor a trip back to make it). */
                    if (c->spill_len[k] == FS_SPILL) {
                        c->event_stream = s;
                        return FS_COMM_GROW;
                    }
                    got = read(c->fd[s], c->spill[k] + c->spill_len[k],
                               FS_SPILL - c->spill_len[k]);
                    if (got > 0) {
                        c->spill_len[k] += (size_t)got;
                        continue;
                    }
                }
                else if (full)
                    got = read(c->fd[s], c->spill[k], FS_SPILL);
                else
                    got = read(c->fd[s], c->out[k] + c->len[k],
                               c->cap[k] - c->len[k]);
#ifdef F_SETPIPE_SZ
                if (got >= FS_DEFAULT_PIPE && c->enlarge_pipes
                        && !(c->enlarged & (1 << s))) {
                    /* Failure (EPERM past the per-user pipe quota, EBUSY)
                     * only loses the speed-up. */
                    (void)fcntl(c->fd[s], F_SETPIPE_SZ, FS_BIG_PIPE);
                    c->enlarged |= 1 << s;
                }
#endif
                if (got > 0 && full) {
                    c->spill_len[k] = (size_t)got;
                    c->event_stream = s;
                    return FS_COMM_GROW;
                }
                if (got < 0 && errno == EINTR)
                    return FS_COMM_EINTR;
                else if (got > 0) {
                    c->len[k] += (size_t)got;
                }
                else if (got == 0) {
                    r = finish(c, s);
                    if (r != FS_COMM_GO_ON)
                        return r;
                }
                else if (errno == EAGAIN) {
                    must_poll = 1;
                }
                else if (errno != EINTR) {
                    c->event_stream = s;
                    return FS_COMM_ERROR;
                }
            }
        }
    }
}

int
fs_pidfd_wait(int pidfd, double deadline)
{
    struct pollfd pfd;
    int r;
    pfd.fd = pidfd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    r = poll(&pfd, 1, poll_timeout_ms(deadline));
    if (r == -1)
        return -1;
    return r > 0;
}
