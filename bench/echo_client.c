/* The echo benchmark's load generator (bench/echo.py builds and runs it).
 *
 *     echo_client PORT CONNS SECONDS WARMUP_SECONDS [SERVER_PID]
 *
 * Opens CONNS TCP connections to 127.0.0.1:PORT and keeps exactly one 64-byte message in
 * flight on each: a connection sends its next message only when the previous one has come back
 * whole and unchanged.  After WARMUP_SECONDS it measures for SECONDS: round trips completed and
 * the latency of each (send to last byte back).  With SERVER_PID it also reads that process's
 * utime + stime from /proc/SERVER_PID/stat at both ends of the measured window, so the server's
 * CPU time covers exactly the round trips counted.
 *
 * Prints one JSON line: round_trips, seconds, rps, p50_ns, p99_ns, max_ns, server_cpu_s.
 * Exit status 0, or 1 with a message on stderr (connection refused, short echo, corrupt echo).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

typedef struct {
    int fd;
    int got;                 /* bytes of the current echo received so far */
    uint64_t sent_at;        /* ns */
    uint32_t seq;
    unsigned char out[MSG];
    unsigned char in[MSG];
} conn_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "echo_client: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

/* utime + stime of a process, in seconds; -1 if it cannot be read. */
static double proc_cpu(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* comm may contain spaces */
    if (!p)
        return -1;
    unsigned long utime = 0, stime = 0;
    /* after ')': state(3) ppid pgrp sid tty_nr tpgid flags minflt cminflt majflt cmajflt
       utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void send_next(conn_t *c)
{
    c->seq++;
    memcpy(c->out, &c->seq, sizeof c->seq);
    c->got = 0;
    c->sent_at = now_ns();
    ssize_t n = send(c->fd, c->out, MSG, 0);
    if (n != MSG)      /* one message in flight: the send buffer is empty, so it never splits */
        die("send");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: echo_client PORT CONNS SECONDS WARMUP_SECONDS [SERVER_PID]\n");
        return 2;
    }
    int port = atoi(argv[1]), nconn = atoi(argv[2]);
    double seconds = atof(argv[3]), warmup = atof(argv[4]);
    long pid = argc > 5 ? atol(argv[5]) : 0;
    if (nconn < 1 || seconds <= 0 || warmup < 0) {
        fprintf(stderr, "echo_client: bad arguments\n");
        return 2;
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns)
        die("calloc");
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect");
        for (int k = 0; k < MSG; k++)
            c->out[k] = (unsigned char)(i * 7 + k);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }

    size_t cap = 1 << 16, nlat = 0;
    uint64_t *lat = malloc(cap * sizeof *lat);
    if (!lat)
        die("malloc");
    uint64_t start = now_ns();
    uint64_t t_measure = start + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(seconds * 1e9);
    int measuring = warmup <= 0;
    double cpu0 = measuring && pid ? proc_cpu(pid) : 0;
    uint64_t t0 = start;

    for (int i = 0; i < nconn; i++)
        send_next(&conns[i]);

    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= t_measure) {
            measuring = 1;
            t0 = t;
            cpu0 = pid ? proc_cpu(pid) : 0;
        }
        if (t >= t_end)
            break;
        uint64_t until = measuring ? t_end : t_measure;
        int ms = (int)((until - t) / 1000000u) + 1;
        int n = epoll_wait(ep, evs, 256, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            ssize_t r = recv(c->fd, c->in + c->got, (size_t)(MSG - c->got), 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                errno = r < 0 ? errno : 0;
                die(r < 0 ? "recv" : "server closed a connection");
            }
            c->got += (int)r;
            if (c->got < MSG)
                continue;
            uint64_t back = now_ns();
            if (memcmp(c->in, c->out, MSG)) {
                errno = 0;
                die("echo differs from the message sent");
            }
            if (measuring && back <= t_end) {
                if (nlat == cap) {
                    cap *= 2;
                    lat = realloc(lat, cap * sizeof *lat);
                    if (!lat)
                        die("realloc");
                }
                lat[nlat++] = back - c->sent_at;
            }
            send_next(c);
        }
    }
    uint64_t t1 = now_ns();
    double cpu1 = pid ? proc_cpu(pid) : 0;
    for (int i = 0; i < nconn; i++)
        close(conns[i].fd);

    double dt = (double)(t1 - t0) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    uint64_t p50 = nlat ? lat[nlat / 2] : 0;
    uint64_t p99 = nlat ? lat[(size_t)((double)(nlat - 1) * 0.99)] : 0;
    uint64_t mx = nlat ? lat[nlat - 1] : 0;
    printf("{\"round_trips\": %zu, \"seconds\": %.6f, \"rps\": %.1f, \"p50_ns\": %llu, "
           "\"p99_ns\": %llu, \"max_ns\": %llu, \"server_cpu_s\": %.4f}\n",
           nlat, dt, (double)nlat / dt, (unsigned long long)p50, (unsigned long long)p99,
           (unsigned long long)mx, pid && cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1.0);
    free(lat);
    free(conns);
    return nlat ? 0 : 1;
}
