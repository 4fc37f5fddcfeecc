/* tracer: race every new process of this pid namespace, as a hostile container would.
 *
 * usage: tracer [SECONDS]   (default: run until killed)
 * Scans /proc without pause. Every pid other than its own is probed on each of its first
 * PROBES sightings (the window in which a helper that joins the container may still be a
 * host process): PTRACE_SEIZE (on success: interrupt, wait for the stop, fstat
 * /proc/N/exe and read cmdline while it cannot exec, then detach), /proc/N/environ,
 * readlink of every /proc/N/fd entry, open + fstat of /proc/N/exe, /proc/N/cmdline.
 * One record a line, tab-separated, byte values outside printable ASCII as \xHH
 * (NUL, the separator of environ and cmdline, is \x00); a record is printed only when
 * its content changed for that pid:
 *   READY   <self pid>  <dev:ino of /proc/self/exe>  <dev:ino of /bin/busybox>
 *   NEW     <pid>
 *   SEIZE   <pid>  ok  <exe dev:ino or -errno>  <cmdline>   (held stopped while read)
 *   SEIZE   <pid>  ok-gone  <exe dev:ino or -errno>  <cmdline>   (it ended meanwhile)
 *   SEIZE   <pid>  fail  <errno>
 *   ENV     <pid>  <environ>
 *   CMD     <pid>  <cmdline>
 *   FD      <pid>  <fd>  <link target>
 *   EXE     <pid>  <dev:ino>  <readlink of /proc/N/exe>
 *   STAT    <scans>  <new pids>  <seize attempts>  <seize ok>
 * STAT comes every 200 ms, so a reader knows the probe is alive and racing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXPID 65536
#define PROBES 40
#define FDHASHES 32

struct seen {
    unsigned char known;
    unsigned short probes;
    uint64_t env, cmd, exe, seize;
    uint64_t fds[FDHASHES];
    int nfds;
};

static struct seen *table;
static long scans, news, seize_tries, seize_ok;
static pid_t self;

static uint64_t hash(const char *s, size_t n, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ? h : 1;
}

static void put_escaped(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
}

static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}

static void exe_id(pid_t pid, char *out, size_t size) {
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(out, size, "-%d", errno);
        return;
    }
    if (fstat(fd, &st) == 0)
        snprintf(out, size, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
    else
        snprintf(out, size, "-%d", errno);
    close(fd);
}

static char buf[1 << 20];

static void try_seize(pid_t pid, struct seen *s) {
    seize_tries++;
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
        int e = errno;
        uint64_t h = hash("fail", 4, (uint64_t)e);
        if (s->seize != h) {
            s->seize = h;
            printf("SEIZE\t%d\tfail\t%d\n", pid, e);
        }
        return;
    }
    seize_ok++;
    /* Stopped, it cannot exec: what it is now is what we got hold of. */
    int status = 0, stopped = 0;
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0) {
        /* At most 100 ms: a vfork parent stops only once its child has exec'd. */
        for (int i = 0; i < 100; i++) {
            pid_t got = waitpid(pid, &status, __WALL | WNOHANG);
            if (got == pid) {
                stopped = WIFSTOPPED(status);
                break;
            }
            if (got < 0) break;
            usleep(1000);
        }
    }
    char id[64], path[64];
    exe_id(pid, id, sizeof id);
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    ssize_t n = slurp(path, buf, 4096);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    /* ok-gone: it exited (or never stopped) while we held it. */
    printf("SEIZE\t%d\t%s\t%s\t", pid, stopped ? "ok" : "ok-gone", id);
    if (n > 0) put_escaped(stdout, buf, (size_t)n);
    printf("\n");
}

static void probe(pid_t pid) {
    struct seen *s = &table[pid];
    char path[64], link[4096];
    ssize_t n;
    if (!s->known) {
        memset(s, 0, sizeof *s);
        s->known = 1;
        news++;
        printf("NEW\t%d\n", pid);
    }
    if (s->probes >= PROBES) return;
    s->probes++;

    try_seize(pid, s);

    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    n = slurp(path, buf, sizeof buf);
    if (n > 0) {
        uint64_t h = hash(buf, (size_t)n, 0);
        if (h != s->env) {
            s->env = h;
            printf("ENV\t%d\t", pid);
            put_escaped(stdout, buf, (size_t)n);
            printf("\n");
        }
    }

    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char fdpath[300];
            snprintf(fdpath, sizeof fdpath, "/proc/%d/fd/%s", pid, e->d_name);
            n = readlink(fdpath, link, sizeof link - 1);
            if (n <= 0) continue;
            uint64_t h = hash(link, (size_t)n, (uint64_t)atoi(e->d_name) + 7);
            int dup = 0;
            for (int i = 0; i < s->nfds; i++) dup |= s->fds[i] == h;
            if (dup) continue;
            if (s->nfds < FDHASHES) s->fds[s->nfds++] = h;
            printf("FD\t%d\t%s\t", pid, e->d_name);
            put_escaped(stdout, link, (size_t)n);
            printf("\n");
        }
        closedir(d);
    }

    char id[64];
    exe_id(pid, id, sizeof id);
    if (id[0] != '-') {
        snprintf(path, sizeof path, "/proc/%d/exe", pid);
        n = readlink(path, link, sizeof link - 1);
        if (n < 0) n = 0;
        uint64_t h = hash(id, strlen(id), 0) ^ hash(link, (size_t)n, 1);
        if (h != s->exe) {
            s->exe = h;
            printf("EXE\t%d\t%s\t", pid, id);
            put_escaped(stdout, link, (size_t)n);
            printf("\n");
        }
    }

    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    n = slurp(path, buf, sizeof buf);
    if (n > 0) {
        uint64_t h = hash(buf, (size_t)n, 0);
        if (h != s->cmd) {
            s->cmd = h;
            printf("CMD\t%d\t", pid);
            put_escaped(stdout, buf, (size_t)n);
            printf("\n");
        }
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stat_line(void) {
    printf("STAT\t%ld\t%ld\t%ld\t%ld\n", scans, news, seize_tries, seize_ok);
    fflush(stdout);
}

static void on_term(int sig) {
    (void)sig;
    stat_line();
    _exit(0);
}

int main(int argc, char **argv) {
    double limit = argc > 1 ? atof(argv[1]) : 0;
    table = calloc(MAXPID, sizeof *table);
    if (!table) return 1;
    self = getpid();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    char me[64], bb[64];
    exe_id(self, me, sizeof me);
    struct stat st;
    if (stat("/bin/busybox", &st) == 0)
        snprintf(bb, sizeof bb, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
    else
        snprintf(bb, sizeof bb, "-%d", errno);
    printf("READY\t%d\t%s\t%s\n", self, me, bb);
    stat_line();
    double start = now(), last = start;
    for (;;) {
        DIR *d = opendir("/proc");
        if (!d) return 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 0 || pid >= MAXPID || pid == self) continue;
            probe((pid_t)pid);
        }
        closedir(d);
        scans++;
        double t = now();
        if (t - last >= 0.2) {
            last = t;
            stat_line();
        }
        if (limit > 0 && t - start >= limit) break;
    }
    stat_line();
    return 0;
}
