/* Status codes, the per-thread error message, the always-on assert and the log callback. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/core.h"

static _Thread_local char tls_msg[1024];

const char *fg_status_name(fg_status s) {
    static const char *names[FG_STATUS_COUNT] = {"ok",        "invalid argument", "shape mismatch",
                                                 "out of memory", "i/o error",  "bad format",
                                                 "unsupported",   "backend error"};
    return (s >= 0 && s < FG_STATUS_COUNT) ? names[s] : "unknown status";
}

fg_status fg_fail(fg_status s, const char *fmt, ...) {
    /* formatted aside first: callers prefix the last error with fg_fail("...: %s", fg_last_error()) */
    char buf[sizeof tls_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(tls_msg, buf, sizeof buf);
    return s;
}

const char *fg_last_error(void) { return tls_msg; }
void fg_clear_error(void) { tls_msg[0] = 0; }

void fg_assert_fail(const char *expr, const char *file, int line, const char *msg) {
    fprintf(stderr, "frugal: assertion failed at %s:%d: %s%s%s\n", file, line, expr, msg ? ": " : "",
            msg ? msg : "");
    fflush(stderr);
    abort();
}

/* The log sink is process configuration set once by the host program before work starts,
 * not mutable state the library changes; reads race-free after start-up. */
static fg_log_fn log_fn;
static void *log_user;

void fg_log_set_callback(fg_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

void fg_log(fg_log_level level, const char *fmt, ...) {
    if (!log_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}
