/*
 * rd_status_proc.c - the status module's process_* metrics.
 */
#include "config.h"

#include <dirent.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_buf.h"
#include "rd_stats.h"
#include "rd_status_int.h"

/* --- process_* ------------------------------------------------------------
 *
 * The metrics of Prometheus's process collector (client libraries export
 * them for their own process) for each redoubt process, read from /proc
 * by the status process at each scrape, with labels role ("master",
 * "worker", "status") and pid: the master is the status process's parent,
 * the workers are the pids in the counter slots that are still the
 * master's children (a retiring worker too), the status process is this
 * one. A file the status process may not read leaves out that one
 * series: /proc/PID/fd of a process of another user (the master, when
 * workers switch to "user"; /proc/PID/stat and limits are readable by
 * all).
 */

#define RD_STATUS_PROCS (RD_STATS_SLOTS + 2)

typedef struct {
    pid_t        pid;
    const char  *role;
    double       cpu_seconds;
    double       start_time;        /* -1: unknown */
    uint64_t     rss_bytes;
    uint64_t     vsize_bytes;
    int64_t      open_fds;          /* -1: not readable */
    int64_t      max_fds;           /* -1: unlimited or not readable */
} rd_status_proc_t;

static int
rd_status_read_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t k = read(fd, buf, n - 1);
    close(fd);
    if (k <= 0) {
        return -1;
    }
    buf[k] = '\0';
    return 0;
}

/* The system's boot time (Unix time), for the processes' start times.
 * The "btime" line comes after "intr", which can be tens of kilobytes. */
static long long
rd_status_btime(void)
{
    static long long btime;
    if (btime != 0) {
        return btime;
    }
    FILE *f = fopen("/proc/stat", "re");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = atoll(line + 6);
            break;
        }
    }
    free(line);
    if (f) {
        fclose(f);
    }
    return btime;
}

/* Read /proc/PID/{stat,limits,fd}; 0, or -1 when the process is gone or
 * is not want_ppid's child (want_ppid 0: any). */
static int
rd_status_proc_read(pid_t pid, pid_t want_ppid, rd_status_proc_t *pr)
{
    char path[64], buf[4096];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (rd_status_read_file(path, buf, sizeof(buf)) != 0) {
        return -1;
    }
    /* The name, in parentheses, may hold anything: fields follow the
     * last ')'. Fields 3 on: state ppid ... utime(14) stime(15) ...
     * starttime(22) vsize(23) rss(24). */
    const char *p = strrchr(buf, ')');
    char state;
    int ppid;
    unsigned long utime, stime, vsize;
    unsigned long long starttime;
    long rss;
    if (p == NULL
        || sscanf(p + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
                  "%*d %*d %*d %*d %*d %*d %llu %lu %ld", &state, &ppid,
                  &utime, &stime, &starttime, &vsize, &rss) != 7
        || state == 'Z' || (want_ppid && ppid != want_ppid))
    {
        return -1;
    }
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (tck <= 0) {
        tck = 100;
    }
    pr->pid = pid;
    pr->cpu_seconds = (double)(utime + stime) / (double)tck;
    /* No /proc/stat (systemd's ProcSubset=pid): no start time. */
    long long btime = rd_status_btime();
    pr->start_time = btime > 0 ? (double)btime
                                 + (double)starttime / (double)tck : -1;
    pr->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    pr->vsize_bytes = vsize;

    pr->max_fds = -1;
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    if (rd_status_read_file(path, buf, sizeof(buf)) == 0) {
        const char *l = strstr(buf, "Max open files");
        char soft[32];
        if (l && sscanf(l + strlen("Max open files"), "%31s", soft) == 1
            && strcmp(soft, "unlimited") != 0)
        {
            pr->max_fds = atoll(soft);
        }
    }

    pr->open_fds = -1;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        pr->open_fds = 0;
        while ((e = readdir(d)) != NULL) {
            pr->open_fds += e->d_name[0] != '.';
        }
        closedir(d);
        if (pid == getpid()) {
            pr->open_fds--;         /* the one opendir() used */
        }
    }
    return 0;
}

static size_t
rd_status_procs(rd_status_proc_t *procs)
{
    rd_stats_region_t *rg = rd_stats_region();
    pid_t master = getppid();
    size_t n = 0;

    if (master > 1 && rd_status_proc_read(master, 0, &procs[n]) == 0) {
        procs[n++].role = "master";
    }
    for (size_t i = 0; rg && master > 1 && i < RD_STATS_SLOTS; i++) {
        pid_t pid = (pid_t)atomic_load_explicit(&rg->slots[i].pid,
                                                memory_order_relaxed);
        size_t k;
        for (k = 0; k < n && procs[k].pid != pid; k++) {
        }
        if (pid <= 0 || k < n) {
            continue;               /* none, or seen in another slot */
        }
        if (rd_status_proc_read(pid, master, &procs[n]) == 0) {
            procs[n++].role = "worker";
        }
    }
    if (rd_status_proc_read(getpid(), 0, &procs[n]) == 0) {
        procs[n++].role = "status";
    }
    return n;
}

void
rd_status_process_metrics(rd_buf_t *b)
{
    rd_status_proc_t *procs = rd_calloc(RD_STATUS_PROCS, sizeof(*procs));
    size_t n = rd_status_procs(procs);

#define RD_PROC_LABELS(pr) (pr)->role, (int)(pr)->pid
    rd_status_family(b, "process_cpu_seconds_total", "counter",
                     "User and system CPU time spent, in seconds, by "
                     "redoubt process (role and pid).");
    for (size_t i = 0; i < n; i++) {
        rd_buf_appendf(b, "process_cpu_seconds_total{role=\"%s\",pid=\"%d\"}"
                       " %.2f\n", RD_PROC_LABELS(&procs[i]),
                       procs[i].cpu_seconds);
    }
    rd_status_family(b, "process_resident_memory_bytes", "gauge",
                     "Resident memory size in bytes, by redoubt process.");
    for (size_t i = 0; i < n; i++) {
        rd_buf_appendf(b, "process_resident_memory_bytes{role=\"%s\","
                       "pid=\"%d\"} %llu\n", RD_PROC_LABELS(&procs[i]),
                       (unsigned long long)procs[i].rss_bytes);
    }
    rd_status_family(b, "process_virtual_memory_bytes", "gauge",
                     "Virtual memory size in bytes, by redoubt process.");
    for (size_t i = 0; i < n; i++) {
        rd_buf_appendf(b, "process_virtual_memory_bytes{role=\"%s\","
                       "pid=\"%d\"} %llu\n", RD_PROC_LABELS(&procs[i]),
                       (unsigned long long)procs[i].vsize_bytes);
    }
    rd_status_family(b, "process_open_fds", "gauge",
                     "Open file descriptors, by redoubt process (those the "
                     "status process may read).");
    for (size_t i = 0; i < n; i++) {
        if (procs[i].open_fds >= 0) {
            rd_buf_appendf(b, "process_open_fds{role=\"%s\",pid=\"%d\"} "
                           "%lld\n", RD_PROC_LABELS(&procs[i]),
                           (long long)procs[i].open_fds);
        }
    }
    rd_status_family(b, "process_max_fds", "gauge",
                     "The open files limit (RLIMIT_NOFILE), by redoubt "
                     "process.");
    for (size_t i = 0; i < n; i++) {
        if (procs[i].max_fds >= 0) {
            rd_buf_appendf(b, "process_max_fds{role=\"%s\",pid=\"%d\"} "
                           "%lld\n", RD_PROC_LABELS(&procs[i]),
                           (long long)procs[i].max_fds);
        }
    }
    rd_status_family(b, "process_start_time_seconds", "gauge",
                     "Start time of the process since the Unix epoch, in "
                     "seconds, by redoubt process.");
    for (size_t i = 0; i < n; i++) {
        if (procs[i].start_time >= 0) {
            rd_buf_appendf(b, "process_start_time_seconds{role=\"%s\","
                           "pid=\"%d\"} %.2f\n", RD_PROC_LABELS(&procs[i]),
                           procs[i].start_time);
        }
    }
#undef RD_PROC_LABELS
    free(procs);
}
