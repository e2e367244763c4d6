/*
 * The timer of scripts/bench-startup: runs each command ROUNDS times, interleaved, and
 * per command prints two times from fork: until the first byte on its stdout (the
 * guest's line, written just before it exits through debug-exit: start-up plus guest)
 * and until the process has exited (everything, the kernel's VM teardown included).
 * Each as median and mean, with the ratio of both to the command named as baseline.
 *
 * Why both: on this host the kernel's teardown of a VM with an irqchip takes either
 * ~1.5 ms or ~14 ms (the PIT's and IOAPIC's synchronize_srcu calls run expedited only when
 * the SRCU looks idle, which depends on microseconds between calls), a coin flip that
 * dwarfs user space and moves medians between runs; the first-output time has none of it.
 *
 * Usage: startup_timer ROUNDS BASELINE_INDEX 'name|argv...' ...   (argv split on spaces;
 * every command must exit with status 1, the guest's debug-exit 0, or the run fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_COMMANDS 16
#define MAX_ARGS 64
#define MAX_ROUNDS 1000

struct command {
    char *name;
    char *argv[MAX_ARGS + 1];
    double first[MAX_ROUNDS], exit[MAX_ROUNDS];
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), compare);
    return s[n / 2];
}

static double mean(const double *v, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    return sum / n;
}

/* One run: fork to first stdout byte, fork to exit. Returns the exit status. */
static int run_once(struct command *c, double *first, double *done)
{
    int out[2];
    if (pipe(out) != 0) {
        perror("pipe");
        exit(2);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    double start = now_ms();
    pid_t pid;
    int rc = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        fprintf(stderr, "startup_timer: cannot run %s: %s\n", c->argv[0], strerror(rc));
        exit(2);
    }
    *first = -1;
    char buf[4096];
    for (;;) {
        ssize_t n = read(out[0], buf, sizeof buf);
        if (n > 0 && *first < 0)
            *first = now_ms() - start;
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    close(out[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            exit(2);
        }
    }
    *done = now_ms() - start;
    if (*first < 0)
        *first = *done;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    int rounds = argc > 3 ? atoi(argv[1]) : 0, base = argc > 3 ? atoi(argv[2]) : -1, count = argc - 3;
    if (rounds < 1 || rounds > MAX_ROUNDS || count < 1 || count > MAX_COMMANDS || base < 0 || base >= count) {
        fprintf(stderr, "usage: startup_timer ROUNDS(1-%d) BASELINE_INDEX 'name|argv...' ... (1-%d commands)\n",
                MAX_ROUNDS, MAX_COMMANDS);
        return 2;
    }
    static struct command commands[MAX_COMMANDS];
    for (int i = 0; i < count; i++) {
        struct command *c = &commands[i];
        char *bar = strchr(argv[i + 3], '|');
        if (!bar) {
            fprintf(stderr, "startup_timer: '%s' is not 'name|argv...'\n", argv[i + 3]);
            return 2;
        }
        *bar = 0;
        c->name = argv[i + 3];
        int n = 0;
        for (char *word = strtok(bar + 1, " "); word; word = strtok(NULL, " ")) {
            if (n == MAX_ARGS) {
                fprintf(stderr, "startup_timer: '%s' has more than %d arguments\n", c->name, MAX_ARGS);
                return 2;
            }
            c->argv[n++] = word;
        }
        if (n == 0) {
            fprintf(stderr, "startup_timer: '%s' has no command\n", c->name);
            return 2;
        }
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < count; i++) {
            int status = run_once(&commands[i], &commands[i].first[r], &commands[i].exit[r]);
            if (status != 1) {
                fprintf(stderr, "startup_timer: '%s' exited %d (expected 1, the guest's debug-exit 0)\n",
                        commands[i].name, status);
                return 1;
            }
        }
    }
    struct command *b = &commands[base];
    double bf = median(b->first, rounds), bfa = mean(b->first, rounds);
    double be = median(b->exit, rounds), bea = mean(b->exit, rounds);
    printf("%d interleaved rounds, ms from fork; ratios to '%s'\n", rounds, b->name);
    printf("  %-38s %-29s %-29s\n", "", "to the guest's output", "to the process's exit");
    printf("  %-38s %7s %7s %6s %6s %7s %7s %6s %6s\n", "", "median", "mean", "ratio", "(mean)", "median", "mean",
           "ratio", "(mean)");
    for (int i = 0; i < count; i++) {
        struct command *c = &commands[i];
        double f = median(c->first, rounds), fa = mean(c->first, rounds);
        double e = median(c->exit, rounds), ea = mean(c->exit, rounds);
        printf("  %-38s %7.2f %7.2f %5.2fx %5.2fx %7.2f %7.2f %5.2fx %5.2fx\n", c->name, f, fa, f / bf, fa / bfa, e, ea,
               e / be, ea / bea);
    }
    return 0;
}
