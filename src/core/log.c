/* log.c - leveled logging to stderr. One write(2) per line so lines from
 * different threads never interleave. Logging is off the request path except
 * for errors worth an operator's attention. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringway/log.h"

int rw_log_threshold = RW_LOG_INFO;
static __thread int log_thread_id = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int rw_log_parse_level(const char *s, int *level)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *level = RW_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

void rw_log_set_thread(int worker_id)
{
    log_thread_id = worker_id;
}

void rw_log(int level, const char *fmt, ...)
{
    if (level > rw_log_threshold)
        return;
    int saved = errno;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    char tag[16];
    if (log_thread_id >= 0)
        snprintf(tag, sizeof(tag), "w%d", log_thread_id);
    else
        snprintf(tag, sizeof(tag), "main");
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s [%s] ", ts.tv_nsec / 1000000,
                  level_names[level < 0   ? 0
                              : level > 3 ? 3
                                          : level],
                  tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved;
}
