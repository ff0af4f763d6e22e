/* SPDX-License-Identifier: MIT */
/*
 * wl_measure RESULT_FILE PROGRAM ARGS...: runs PROGRAM (stdin, stdout and
 * stderr inherited) and writes "exit wall_s cpu_s maxrss_kib" to RESULT_FILE.
 * The runner uses this small process to start workloads because a child
 * forked from the Python runner would count the runner's own resident pages
 * in its peak RSS (ru_maxrss keeps the pre-exec high-water mark).
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: wl_measure RESULT_FILE PROGRAM ARGS...\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execv(argv[2], argv + 2);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    fprintf(f, "%d %.6f %.6f %ld\n", code, wall, cpu, ru.ru_maxrss);
    fclose(f);
    return 0;
}
