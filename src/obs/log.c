/* JSON line logger; see log.h. The minimum level is the one process-wide
 * setting besides the allocation test hook: it is written once at start. */
#include "obs/log.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/sbuf.h"

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_event(enum log_level level, const char *event, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < min_level) return;
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"ts\":");
    sbuf_i64(&b, clock_wall_ms());
    sbuf_puts(&b, ",\"level\":\"");
    sbuf_puts(&b, names[level]);
    sbuf_puts(&b, "\",\"event\":");
    sbuf_json_str(&b, event, strlen(event));
    va_list ap;
    va_start(ap, event);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        int raw = k[0] == '#';
        if (raw) k++;
        sbuf_putc(&b, ',');
        sbuf_json_str(&b, k, strlen(k));
        sbuf_putc(&b, ':');
        if (!v)
            sbuf_puts(&b, "null");
        else if (raw)
            sbuf_puts(&b, v);
        else
            sbuf_json_str(&b, v, strlen(v));
    }
    va_end(ap);
    sbuf_puts(&b, "}\n");
    if (!b.oom) {
        ssize_t r = write(2, b.data, b.len);
        (void)r;
    }
    sbuf_release(&b);
}
