/* log: leveled messages and progress on stderr.
 *
 * Levels: error < warn < info < debug. The default shows info and above;
 * --quiet shows errors only; --verbose adds debug. Progress lines are drawn in
 * place when stderr is a terminal, printed as plain periodic lines otherwise
 * (so CI logs and `2>file` stay readable), and not at all when quiet. */
#ifndef FVLM_LOG_H
#define FVLM_LOG_H

#include <stdint.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Progress of one stage: `label  done/total  rate/s  ETA`. total may be 0
 * when unknown. Updates are rate-limited (10/s on a terminal, every 5 s
 * otherwise), so calling progress_tick per item is cheap. */
typedef struct Progress {
    char label[48];
    char unit[16];
    int64_t done, total;
    double t_start, t_last;  /* seconds, monotonic */
    int tty, active;
} Progress;

void progress_start(Progress *p, const char *label, int64_t total, const char *unit);
void progress_tick(Progress *p, int64_t n);
/* Sets the absolute count (for stages that know it). */
void progress_set(Progress *p, int64_t done);
/* Prints the final line. */
void progress_end(Progress *p);

/* Monotonic clock in seconds. */
double now_seconds(void);

#endif
