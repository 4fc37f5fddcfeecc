/* flood HOST PORT COUNT: open COUNT TCP connections to HOST:PORT one after another and
 * keep them all open. Each is tried with one byte that an echo server sends back: a
 * connection that echoes counts as relayed, one reset or closed as refused. Prints
 * "FLOOD relayed=N refused=M", then holds every connection until stdin closes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: flood HOST PORT COUNT\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
    int count = atoi(argv[3]), relayed = 0, refused = 0, failed = 0;
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    struct timeval wait = {.tv_sec = 5};
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            failed++;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        char c = 'x';
        if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0 && write(fd, &c, 1) == 1 &&
            read(fd, &c, 1) == 1) {
            relayed++; /* kept open */
        } else {
            refused++;
            close(fd);
        }
    }
    printf("FLOOD relayed=%d refused=%d failed=%d\n", relayed, refused, failed);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
