/* Lookups over the shared vocabulary tables of vocab.h. Linear scans: the
 * tables have a handful of rows and are read when parsing configuration,
 * API keys or a publish's optional class. */
#include "config/vocab.h"

#include <string.h>

static const char *const class_names[] = {
#define CLASS_NAME(id, value, name) [(value)] = (name),
    VOCAB_PUB_CLASSES(CLASS_NAME)
#undef CLASS_NAME
};

#define N_CLASSES (sizeof(class_names) / sizeof(class_names[0]))

static const char *const scope_names[] = {
#define SCOPE_NAME(id, bit, name) name,
    VOCAB_API_SCOPES(SCOPE_NAME)
#undef SCOPE_NAME
};

const char *vocab_class_name(pub_class cls)
{
    return (size_t)cls < N_CLASSES ? class_names[cls] : NULL;
}

int vocab_class_parse(const char *s, size_t n, pub_class *out)
{
    for (size_t i = 0; s && i < N_CLASSES; i++) {
        if (strlen(class_names[i]) == n && !memcmp(class_names[i], s, n)) {
            *out = (pub_class)i;
            return 0;
        }
    }
    return -1;
}

int vocab_scope_known(const char *name)
{
    for (size_t i = 0; name && i < sizeof(scope_names) / sizeof(scope_names[0]); i++)
        if (!strcmp(scope_names[i], name)) return 1;
    return 0;
}
