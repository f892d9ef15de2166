/* JSON logs: one object per line on stderr, with ts, level, event and any
 * string or number fields the caller adds. Thread-safe (one write per line). */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Fields are given as (key, value) string pairs ending with NULL; a key
 * starting with '#' marks the value as a raw number/JSON literal. */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));
void log_set_level(enum log_level min);

#endif
