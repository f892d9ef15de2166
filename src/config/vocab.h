/* The names that configuration files, API keys and the protocol share:
 * publish classes and API key scopes. Each is listed once, as an X-macro
 * table, so the config loader, the key store and the wire encoder cannot
 * disagree on a spelling. Numeric values are stored on disk: never renumber. */
#ifndef PL_VOCAB_H
#define PL_VOCAB_H

#include <stddef.h>

/* X(constant, value, name). Values are dense from 0 (vocab_class_name
 * relies on it) and are the `cls` column of the store. */
#define VOCAB_PUB_CLASSES(X)                                                                       \
    X(PUB_EPHEMERAL, 0, "ephemeral")                                                               \
    X(PUB_STANDARD, 1, "standard")                                                                 \
    X(PUB_GUARANTEED, 2, "guaranteed")

typedef enum pub_class {
#define VOCAB_CLASS_ENUM(id, value, name) id = (value),
    VOCAB_PUB_CLASSES(VOCAB_CLASS_ENUM)
#undef VOCAB_CLASS_ENUM
} pub_class;

/* X(suffix, bit, name): the scope APIKEY_SCOPE_<suffix> is 1u << bit. Key
 * files store the bits, so a scope keeps its bit for good. "*" grants every
 * tenant method. */
#define VOCAB_API_SCOPES(X)                                                                        \
    X(PUBLISH, 0, "publish")                                                                       \
    X(BROADCAST, 1, "broadcast")                                                                   \
    X(HISTORY, 2, "history")                                                                       \
    X(PRESENCE, 3, "presence")                                                                     \
    X(CHANNELS, 4, "channels")                                                                     \
    X(SUBSCRIBE, 5, "subscribe")                                                                   \
    X(DISCONNECT, 6, "disconnect")                                                                 \
    X(INFO, 7, "info")                                                                             \
    X(TRACE, 8, "trace")                                                                           \
    X(WEBHOOKS, 9, "webhooks")                                                                     \
    X(DLQ, 10, "dlq")                                                                              \
    X(ROUTES, 11, "routes")                                                                        \
    X(ALL, 31, "*")

/* The name of a class ("standard"), or NULL for a value outside the table.
 * Static string. */
const char *vocab_class_name(pub_class cls);
/* The class named by the n bytes at s (no NUL needed): 0 with *out set, or
 * -1 when no class has that name. */
int vocab_class_parse(const char *s, size_t n, pub_class *out);
/* 1 if name (NUL-terminated) is an API key scope name, else 0. */
int vocab_scope_known(const char *name);

#endif
