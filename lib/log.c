#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static LogLevel g_level = LOG_INFO;
static int g_progress_line_open; /* a \r progress line is on screen */

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_get_level(void) { return g_level; }

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void clear_progress_line(void)
{
    if (g_progress_line_open) {
        fputs("\r\033[K", stderr);
        g_progress_line_open = 0;
    }
}

void log_msg(LogLevel level, const char *fmt, ...)
{
    if (level > g_level)
        return;
    static const char *names[] = {"error", "warning", "info", "debug"};
    clear_progress_line();
    fprintf(stderr, "fvlm: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void progress_start(Progress *p, const char *label, int64_t total, const char *unit)
{
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "items");
    p->done = 0;
    p->total = total;
    p->t_start = now_seconds();
    p->t_last = 0;
    p->tty = isatty(STDERR_FILENO);
    p->active = g_level >= LOG_INFO;
}

static void format_eta(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "--");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

static void progress_draw(Progress *p, int final)
{
    double t = now_seconds();
    double el = t - p->t_start;
    double rate = el > 0 ? p->done / el : 0;
    char eta[32] = "";
    if (p->total > 0 && rate > 0 && !final)
        format_eta(eta, sizeof eta, (p->total - p->done) / rate);
    char line[200];
    if (p->total > 0)
        snprintf(line, sizeof line, "%s: %lld/%lld %s  %.1f/s  %s%s", p->label,
                 (long long)p->done, (long long)p->total, p->unit, rate,
                 final ? "" : "ETA ", final ? "" : eta);
    else
        snprintf(line, sizeof line, "%s: %lld %s  %.1f/s", p->label, (long long)p->done,
                 p->unit, rate);
    if (final) {
        char took[32];
        format_eta(took, sizeof took, el);
        if (p->tty)
            fputs("\r\033[K", stderr);
        fprintf(stderr, "fvlm: %s  (%s)\n", line, took);
        g_progress_line_open = 0;
    } else if (p->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        g_progress_line_open = 1;
    } else {
        fprintf(stderr, "fvlm: %s\n", line);
    }
    fflush(stderr);
    p->t_last = t;
}

void progress_set(Progress *p, int64_t done)
{
    p->done = done;
    if (!p->active)
        return;
    double t = now_seconds();
    double every = p->tty ? 0.1 : 5.0;
    if (t - p->t_last >= every && (p->tty || t - p->t_start >= every))
        progress_draw(p, 0);
}

void progress_tick(Progress *p, int64_t n) { progress_set(p, p->done + n); }

void progress_end(Progress *p)
{
    if (p->active)
        progress_draw(p, 1);
}
