/* log.h - leveled logging to stderr, tagged with the calling worker's id. */
#ifndef RINGWAY_LOG_H
#define RINGWAY_LOG_H

enum rw_log_level { RW_LOG_ERROR = 0, RW_LOG_WARN, RW_LOG_INFO, RW_LOG_DEBUG };

/* The process-wide threshold; messages above it are dropped. */
extern int rw_log_threshold;

/* Parses "error|warn|info|debug" into *level; returns 0 or -EINVAL. */
int rw_log_parse_level(const char *s, int *level);

/* Sets the calling thread's tag (worker id, or -1 for the main/control thread). */
void rw_log_set_thread(int worker_id);

/* Writes one formatted line to stderr with a timestamp, level and thread tag. */
void rw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rw_log_error(...) rw_log(RW_LOG_ERROR, __VA_ARGS__)
#define rw_log_warn(...)                                                                                     \
    do {                                                                                                     \
        if (rw_log_threshold >= RW_LOG_WARN)                                                                 \
            rw_log(RW_LOG_WARN, __VA_ARGS__);                                                                \
    } while (0)
#define rw_log_info(...)                                                                                     \
    do {                                                                                                     \
        if (rw_log_threshold >= RW_LOG_INFO)                                                                 \
            rw_log(RW_LOG_INFO, __VA_ARGS__);                                                                \
    } while (0)
#define rw_log_debug(...)                                                                                    \
    do {                                                                                                     \
        if (rw_log_threshold >= RW_LOG_DEBUG)                                                                \
            rw_log(RW_LOG_DEBUG, __VA_ARGS__);                                                               \
    } while (0)

#endif
