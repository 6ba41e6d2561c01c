/*
 * fs_loop.c -- one poll loop over many children (see fs_loop.h).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include "fs_loop.h"
#include "fs_io.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What one pollfd entry watches: slot * 3 + kind, or NOTIFY. */
#define KIND_PIDFD  0
#define KIND_OUT    1    /* stdout; KIND_OUT + 1 is stderr */
#define NOTIFY      ((size_t)-1)

/* waitid() check interval without a pidfd: it starts short (most
 * commands run_many starts are short) and backs off to this. */
#define NOPIDFD_MIN_MS 1
#define NOPIDFD_MAX_MS 50

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        (void)close(*fd);
        errno = saved;
        *fd = -1;
    }
}

int
fs_loop_init(fs_loop *l, size_t n)
{
    size_t i;
    memset(l, 0, sizeof *l);
    if (n == 0)
        n = 1;
    l->slots = calloc(n, sizeof(fs_slot));
    l->scratch = calloc(3 * n + 1, sizeof(struct pollfd) + sizeof(size_t));
    if (l->slots == NULL || l->scratch == NULL) {
        free(l->slots);
        free(l->scratch);
        l->slots = NULL;
        l->scratch = NULL;
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < n; i++) {
        l->slots[i].state = FS_SLOT_FREE;
        l->slots[i].pidfd = -1;
        l->slots[i].fd[0] = l->slots[i].fd[1] = -1;
        l->slots[i].deadline = -1.0;
    }
    l->n = n;
    l->notify_fd = -1;
    l->nopidfd_ms = NOPIDFD_MIN_MS;
    return 0;
}

void
fs_loop_destroy(fs_loop *l)
{
    size_t i;
    if (l->slots != NULL) {
        for (i = 0; i < l->n; i++)
            if (l->slots[i].state != FS_SLOT_FREE)
                fs_loop_drop(l, i);
    }
    free(l->slots);
    free(l->scratch);
    l->slots = NULL;
    l->scratch = NULL;
    l->n = 0;
}

void
fs_loop_add(fs_loop *l, size_t i, pid_t pid, int pidfd, int out_fd,
            int err_fd, double deadline)
{
    fs_slot *s = &l->slots[i];
    memset(s, 0, sizeof *s);
    s->state = FS_SLOT_BUSY;
    s->pid = pid;
    s->pidfd = pidfd;
    s->exited = 0;
    s->fd[0] = out_fd;
    s->fd[1] = err_fd;
    s->deadline = deadline;
    if (pidfd < 0)
        l->nopidfd_ms = NOPIDFD_MIN_MS;
}

void
fs_loop_drop(fs_loop *l, size_t i)
{
    close_fd(&l->slots[i].fd[0]);
    close_fd(&l->slots[i].fd[1]);
}

/* Whether the child of a slot without a pidfd has exited (not reaping). */
static int
exited_nopidfd(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1)
        return errno != EINTR;      /* ECHILD: gone (reaped elsewhere) */
    return si.si_pid == pid;
}

/* The next event that needs no poll(), scanning round-robin from l->next
 * so that no slot starves the others; 0 if none. */
static int
pending_event(fs_loop *l)
{
    double now = -1.0;
    size_t k;
    for (k = 0; k < l->n; k++) {
        size_t i = (l->next + k) % l->n;
        fs_slot *s = &l->slots[i];
        if (s->state != FS_SLOT_BUSY)
            continue;
        if (s->exited && s->fd[0] < 0 && s->fd[1] < 0) {
            s->state = FS_SLOT_DONE;
            l->event_slot = i;
            l->next = (i + 1) % l->n;
            return FS_LOOP_EXITED;
        }
        if (s->deadline >= 0) {
            if (now < 0)
                now = fs_monotonic();
            if (now >= s->deadline) {
                s->deadline = -1.0;
                l->event_slot = i;
                l->next = (i + 1) % l->n;
                return FS_LOOP_EXPIRED;
            }
        }
    }
    return 0;
}

/* poll() timeout in ms until the earliest of wake and the deadlines (and
 * the next waitid() check when a child has no pidfd); -1: none. */
static int
timeout_ms(const fs_loop *l, double wake, int nopidfd)
{
    double first = wake, left;
    size_t i;
    int ms;
    for (i = 0; i < l->n; i++) {
        const fs_slot *s = &l->slots[i];
        if (s->state == FS_SLOT_BUSY && s->deadline >= 0
                && (first < 0 || s->deadline < first))
            first = s->deadline;
    }
    if (first < 0) {
        ms = -1;
    }
    else {
        left = first - fs_monotonic();
        if (left <= 0)
            ms = 0;
        else if (left > 86400.0)
            ms = 86400 * 1000;
        else
            ms = (int)ceil(left * 1000.0);   /* never wake just before */
    }
    if (nopidfd && (ms < 0 || ms > l->nopidfd_ms))
        ms = l->nopidfd_ms;
    return ms;
}

int
fs_loop_run(fs_loop *l, double wake)
{
    struct pollfd *pfd = (struct pollfd *)l->scratch;
    size_t *what = (size_t *)(void *)(pfd + 3 * l->n + 1);

    for (;;) {
        size_t i, n = 0;
        int r, busy = 0, nopidfd = 0, notified = 0, ev;

        ev = pending_event(l);
        if (ev != 0)
            return ev;
        if (wake >= 0 && fs_monotonic() >= wake)
            return FS_LOOP_WAKE;

        for (i = 0; i < l->n; i++) {
            fs_slot *s = &l->slots[i];
            int k;
            if (s->state != FS_SLOT_BUSY)
                continue;
            busy = 1;
            if (!s->exited) {
                if (s->pidfd >= 0) {
                    pfd[n].fd = s->pidfd;
                    pfd[n].events = POLLIN;
                    pfd[n].revents = 0;
                    what[n++] = i * 3 + KIND_PIDFD;
                }
                else {
                    nopidfd = 1;
                }
            }
            for (k = 0; k < 2; k++) {
                if (s->fd[k] < 0)
                    continue;
                pfd[n].fd = s->fd[k];
                pfd[n].events = POLLIN;
                pfd[n].revents = 0;
                what[n++] = i * 3 + KIND_OUT + (size_t)k;
            }
        }
        if (!busy && l->notify_fd < 0)
            return FS_LOOP_IDLE;
        if (l->notify_fd >= 0) {
            pfd[n].fd = l->notify_fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            what[n++] = NOTIFY;
        }

        r = poll(pfd, (nfds_t)n, timeout_ms(l, wake, nopidfd));
        if (r == -1) {
            if (errno == EINTR)
                return FS_LOOP_EINTR;
            return FS_LOOP_ERROR;
        }

        for (i = 0; r > 0 && i < n; i++) {
            size_t si;
            int kind;
            fs_slot *s;
            if (pfd[i].revents == 0)
                continue;
            if (what[i] == NOTIFY) {
                notified = 1;
                continue;
            }
            si = what[i] / 3;
            kind = (int)(what[i] % 3);
            s = &l->slots[si];
            if (kind == KIND_PIDFD) {
                s->exited = 1;
            }
            else {
                int k = kind - KIND_OUT;
                ssize_t got;
                if (s->fd[k] < 0)
                    continue;
                if (s->len[k] == s->cap[k]) {
                    /* Data waits and the buffer is full: the caller grows
                     * it; poll() reports the fd again afterwards. */
                    l->event_slot = si;
                    l->event_stream = k;
                    return FS_LOOP_GROW;
                }
                got = read(s->fd[k], s->out[k] + s->len[k],
                           s->cap[k] - s->len[k]);
                if (got > 0)
                    s->len[k] += (size_t)got;
                else if (got == 0)
                    close_fd(&s->fd[k]);
                else if (errno != EINTR && errno != EAGAIN)
                    return FS_LOOP_ERROR;
            }
        }

        if (nopidfd) {
            int found = 0;
            for (i = 0; i < l->n; i++) {
                fs_slot *s = &l->slots[i];
                if (s->state == FS_SLOT_BUSY && !s->exited && s->pidfd < 0
                        && exited_nopidfd(s->pid)) {
                    s->exited = 1;
                    found = 1;
                }
            }
            if (found)
                l->nopidfd_ms = NOPIDFD_MIN_MS;
            else if (l->nopidfd_ms < NOPIDFD_MAX_MS)
                l->nopidfd_ms *= 2;
        }
        if (notified)
            return FS_LOOP_NOTIFY;
    }
}
