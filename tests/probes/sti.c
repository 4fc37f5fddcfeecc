/* sti: try to type a command into the caller's terminal with ioctl(TIOCSTI).
 *
 * usage: sti COMMAND [REPORT]
 * Opens /dev/tty and also tries fds 0, 1 and 2; for each, pushes every character of
 * "COMMAND\n" with TIOCSTI. Prints one line per target and a summary:
 *   STI-START
 *   STI target=/dev/tty open-errno=6 (No such device or address)
 *   STI target=fd0 ok=0 fail=23 errno=25 (Inappropriate ioctl for device)
 *   STI-RESULT injected=0
 * A hardened runtime leaves injected=0. Exit status 0 once it ran. With REPORT, the
 * same lines also go to that file (for a build step, whose output a build may not show).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static long total_ok;
static FILE *report;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (report) {
        va_start(ap, fmt);
        vfprintf(report, fmt, ap);
        va_end(ap);
        fflush(report);
    }
}

static void push(const char *name, int fd, const char *text) {
    long ok = 0, fail = 0;
    int first_errno = 0;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (ioctl(fd, TIOCSTI, &c) == 0) {
            ok++;
        } else {
            if (!fail) first_errno = errno;
            fail++;
        }
    }
    total_ok += ok;
    say("STI target=%s ok=%ld fail=%ld errno=%d (%s)\n", name, ok, fail, first_errno,
           first_errno ? strerror(first_errno) : "none");
}

int main(int argc, char **argv) {
    char text[4096];
    if (argc < 2 || argc > 3 || strlen(argv[1]) + 2 > sizeof text) {
        fprintf(stderr, "usage: sti COMMAND [REPORT]\n");
        return 2;
    }
    snprintf(text, sizeof text, "%s\n", argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !(report = fopen(argv[2], "w"))) {
        perror(argv[2]);
        return 2;
    }
    say("STI-START\n");
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0) {
        int e = errno;
        say("STI target=/dev/tty open-errno=%d (%s)\n", e, strerror(e));
    } else {
        push("/dev/tty", tty, text);
        close(tty);
    }
    for (int fd = 0; fd <= 2; fd++) {
        char name[8];
        snprintf(name, sizeof name, "fd%d", fd);
        push(name, fd, text);
    }
    say("STI-RESULT injected=%ld\n", total_ok);
    return 0;
}
