/* API key persistence; see apikey_file.h. jansson: a small admin-path file,
 * not the hot path. */
#include "auth/apikey_file.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct key_walk {
    size_t skip;
    json_t *arr;
} key_walk;

static int save_key(const apikey_entry *e, void *ud)
{
    key_walk *kw = ud;
    if (kw->skip) {
        kw->skip--;
        return 0;
    }
    char hex[65];
    apikey_hash_hex(e->hash, hex);
    json_array_append_new(kw->arr, json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "id", e->id, "hash", hex,
                                             "tenant", e->tenant, "scopes", (json_int_t)e->scopes,
                                             "created_at", (json_int_t)e->created_at, "revoked",
                                             atomic_load(&e->revoked)));
    return 0;
}

int apikey_file_save(apikey_store *s, size_t skip, const char *path)
{
    key_walk kw = {.skip = skip, .arr = json_array()};
    if (!kw.arr) return -1;
    apikey_foreach(s, NULL, save_key, &kw);
    char tmp[4210];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = -1;
    FILE *f = fopen(tmp, "w");
    if (f && json_dumpf(kw.arr, f, JSON_COMPACT) == 0 && fflush(f) == 0 && fsync(fileno(f)) == 0)
        rc = 0;
    if (f) fclose(f);
    if (rc == 0) rc = rename(tmp, path);
    json_decref(kw.arr);
    return rc;
}

/* One entry of the file into e (strings borrowed from o). 0 or -1. */
static int read_key(json_t *o, apikey_entry *e)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *hex = json_string_value(json_object_get(o, "hash"));
    const char *tenant = json_string_value(json_object_get(o, "tenant"));
    if (!id || !hex || !tenant || strlen(hex) != 64 || strlen(id) > APIKEY_ID_LEN) return -1;
    for (int k = 0; k < 32; k++) {
        unsigned v;
        if (sscanf(hex + 2 * k, "%2x", &v) != 1) return -1;
        e->hash[k] = (uint8_t)v;
    }
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->tenant = (char *)tenant;
    e->scopes = (uint32_t)json_integer_value(json_object_get(o, "scopes"));
    e->created_at = json_integer_value(json_object_get(o, "created_at"));
    atomic_init(&e->revoked, json_is_true(json_object_get(o, "revoked")));
    return 0;
}

int apikey_file_load(apikey_store *s, const char *path, char *err, size_t errlen)
{
    if (access(path, F_OK)) return 0;
    json_error_t je;
    json_t *arr = json_load_file(path, 0, &je);
    int rc = json_is_array(arr) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        apikey_entry e = {0};
        rc = read_key(json_array_get(arr, i), &e);
        if (rc == 0) rc = apikey_store_load(s, &e) ? -1 : 0;
    }
    if (rc) snprintf(err, errlen, "%s: invalid API key file", path);
    json_decref(arr);
    return rc;
}
