/* Persistence of API-created keys: DATA/apikeys.json holds their hashes
 * (never a key), tenant, scopes, creation time and revocation, written
 * whole to a temporary file, fsynced and renamed over the old one. */
#ifndef PL_APIKEY_FILE_H
#define PL_APIKEY_FILE_H

#include <stddef.h>

#include "auth/apikey.h"

/* Loads the keys in path into s (a missing file is no keys). 0, or -1 with
 * err set when the file is unreadable or malformed. */
int apikey_file_load(apikey_store *s, const char *path, char *err, size_t errlen);
/* Writes every key of s except the first skip (the configured ones, which
 * the configuration file holds) to path. 0 or -1; the old file stays on
 * failure. Callers serialize concurrent saves. */
int apikey_file_save(apikey_store *s, size_t skip, const char *path);

#endif
