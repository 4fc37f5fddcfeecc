/* attack: escape attempts a container's root must not get through.
 *
 * usage: attack [NAME...]   (default: every attempt, in the order below)
 * Each attempt prints one line:
 *   ATTEMPT <name> blocked <errno> (<strerror>)
 *   ATTEMPT <name> SUCCEEDED <what happened>
 * and the probe ends with "ATTACK-DONE <attempts>". Writes put back the value they
 * read (a write that gets through changes nothing on the host).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static int attempts;

static void blocked(const char *name, int e) {
    printf("ATTEMPT\t%s\tblocked\t%d\t(%s)\n", name, e, strerror(e));
}

static void succeeded(const char *name, const char *what) {
    printf("ATTEMPT\t%s\tSUCCEEDED\t%s\n", name, what);
}

/* 0 (and blocked reported) unless the call returned r >= 0. */
static int check(const char *name, long r) {
    attempts++;
    if (r < 0) {
        blocked(name, errno);
        return 0;
    }
    return 1;
}

static void rewrite(const char *name, const char *path) {
    char value[4096];
    ssize_t n = 0;
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        n = read(fd, value, sizeof value);
        close(fd);
    }
    if (n <= 0) {
        value[0] = '\n';
        n = 1;
    }
    fd = open(path, O_WRONLY);
    if (!check(name, fd)) return;
    ssize_t w = write(fd, value, (size_t)n);
    int e = errno;
    close(fd);
    if (w < 0) {
        blocked(name, e);
        return;
    }
    char what[128];
    snprintf(what, sizeof what, "wrote %zd bytes to %s", w, path);
    succeeded(name, what);
}

static void do_mount(void) {
    mkdir("/mnt", 0755);
    if (!check("mount-tmpfs", mount("x", "/mnt", "tmpfs", 0, NULL))) return;
    umount2("/mnt", MNT_DETACH);
    succeeded("mount-tmpfs", "mounted a tmpfs on /mnt");
}

static void do_umount_proc(void) {
    if (!check("umount-proc", umount2("/proc", MNT_DETACH))) return;
    succeeded("umount-proc", "detached /proc");
}

static void do_keyctl(void) {
    /* KEYCTL_JOIN_SESSION_KEYRING = 1 */
    long r = syscall(SYS_keyctl, 1L, "envkit-probe");
    if (check("keyctl", r)) succeeded("keyctl", "joined a new session keyring");
    r = syscall(SYS_add_key, "user", "envkit-probe", "x", 1L, -2L /* process keyring */);
    if (check("add_key", r)) succeeded("add_key", "added a user key");
}

static void do_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (!check("bpf", fd)) return;
    close((int)fd);
    succeeded("bpf", "created a BPF map");
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) {
        }
        close(fd);
    }
}

static void do_unshare(void) {
    /* In a child: a new user namespace would give back every capability, and a
     * mount namespace owned by it would let it mount. */
    int pipefd[2];
    if (pipe(pipefd) != 0) return;
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        char msg[256];
        if (unshare(CLONE_NEWUSER) != 0) {
            snprintf(msg, sizeof msg, "E%d", errno);
        } else {
            char map[64];
            write_file("/proc/self/setgroups", "deny");
            snprintf(map, sizeof map, "0 %u 1", uid);
            write_file("/proc/self/uid_map", map);
            snprintf(map, sizeof map, "0 %u 1", gid);
            write_file("/proc/self/gid_map", map);
            int r = unshare(CLONE_NEWNS);
            if (r == 0) r = mount("x", "/tmp", "tmpfs", 0, NULL);
            snprintf(msg, sizeof msg, "unshare(CLONE_NEWUSER) worked; then mount: %s",
                     r == 0 ? "mounted a tmpfs on /tmp" : strerror(errno));
        }
        if (write(pipefd[1], msg, strlen(msg)) < 0) _exit(1);
        _exit(0);
    }
    close(pipefd[1]);
    char msg[256] = {0};
    if (read(pipefd[0], msg, sizeof msg - 1) < 0) msg[0] = 0;
    close(pipefd[0]);
    waitpid(pid, NULL, 0);
    attempts++;
    if (msg[0] == 'E')
        blocked("unshare-user", atoi(msg + 1));
    else
        succeeded("unshare-user", msg[0] ? msg : "child said nothing");
}

static void do_mknod(void) {
    const char *path = "/tmp/envkit-probe-null";
    if (!check("mknod", mknod(path, S_IFCHR | 0666, makedev(1, 3)))) return;
    int fd = open(path, O_WRONLY);
    char what[128];
    snprintf(what, sizeof what, "made char device 1:3; open for write: %s",
             fd >= 0 ? "ok" : strerror(errno));
    if (fd >= 0) close(fd);
    unlink(path);
    succeeded("mknod", what);
}

static void do_open_write(const char *name, const char *path) {
    int fd = open(path, O_WRONLY);
    if (!check(name, fd)) return;
    close(fd);
    char what[128];
    snprintf(what, sizeof what, "opened %s for writing", path);
    succeeded(name, what);
}

static void do_vsock(void) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (!check("vsock", fd)) return;
    close(fd);
    succeeded("vsock", "socket(AF_VSOCK, SOCK_STREAM, 0) returned a socket");
}

static void do_open_by_handle(void) {
    struct {
        struct file_handle h;
        unsigned char bytes[128];
    } fh;
    int mount_id;
    fh.h.handle_bytes = sizeof fh.bytes;
    if (name_to_handle_at(AT_FDCWD, "/", &fh.h, &mount_id, 0) != 0) {
        attempts++;
        blocked("open_by_handle_at", errno);
        return;
    }
    int fd = open_by_handle_at(AT_FDCWD, &fh.h, O_RDONLY);
    if (!check("open_by_handle_at", fd)) return;
    close(fd);
    succeeded("open_by_handle_at", "opened a file by handle");
}

static int wanted(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ATTACK-START uid=%u\n", getuid());
    if (wanted(argc, argv, "mount-tmpfs")) do_mount();
    if (wanted(argc, argv, "proc-sys-core_pattern"))
        rewrite("proc-sys-core_pattern", "/proc/sys/kernel/core_pattern");
    if (wanted(argc, argv, "proc-sys-modprobe"))
        rewrite("proc-sys-modprobe", "/proc/sys/kernel/modprobe");
    if (wanted(argc, argv, "proc-sys-sysrq"))
        rewrite("proc-sys-sysrq", "/proc/sys/kernel/sysrq");
    if (wanted(argc, argv, "sys-uevent_helper"))
        rewrite("sys-uevent_helper", "/sys/kernel/uevent_helper");
    if (wanted(argc, argv, "sys-profiling"))
        rewrite("sys-profiling", "/sys/kernel/profiling");
    if (wanted(argc, argv, "sysrq-trigger")) {
        int fd = open("/proc/sysrq-trigger", O_WRONLY);
        if (check("sysrq-trigger", fd)) {
            ssize_t w = write(fd, "h", 1); /* h: print help to the kernel log */
            int e = errno;
            close(fd);
            if (w < 0)
                blocked("sysrq-trigger", e);
            else
                succeeded("sysrq-trigger", "wrote 'h' to /proc/sysrq-trigger");
        }
    }
    if (wanted(argc, argv, "keyctl")) do_keyctl();
    if (wanted(argc, argv, "bpf")) do_bpf();
    if (wanted(argc, argv, "unshare-user")) do_unshare();
    if (wanted(argc, argv, "mknod")) do_mknod();
    if (wanted(argc, argv, "write-proc-self-exe"))
        do_open_write("write-proc-self-exe", "/proc/self/exe");
    if (wanted(argc, argv, "write-proc-1-exe")) do_open_write("write-proc-1-exe", "/proc/1/exe");
    if (wanted(argc, argv, "open_by_handle_at")) do_open_by_handle();
    if (wanted(argc, argv, "vsock")) do_vsock();
    if (wanted(argc, argv, "umount-proc")) do_umount_proc();
    printf("ATTACK-DONE %d\n", attempts);
    return 0;
}
