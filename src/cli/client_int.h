/* Internals shared by the files of the client commands: the options they
 * have in common, parsed once (client.c), and the HTTP API call. */
#ifndef PL_CLIENT_INT_H
#define PL_CLIENT_INT_H

#include <stdbool.h>

#include <jansson.h>

#define CLIENT_DEFAULT_URL "http://127.0.0.1:8080"

/* Every option of every client command; a command names the ones it takes
 * (client_parse's allowed). Strings point into argv or the environment. */
typedef struct client_args {
    const char *cmd;               /* argv[0] */
    const char *url;               /* --url, PARLEY_URL, or CLIENT_DEFAULT_URL */
    const char *key;               /* --key or PARLEY_API_KEY; NULL: see client_key */
    const char *data;              /* --data, default "./data" */
    const char *cls, *idem, *type; /* publish: --class --idempotency-key --type */
    const char *since;             /* history, subscribe: --since */
    const char *channel;           /* dlq: --channel */
    const char *token, *user;      /* subscribe, tail: --token, --user */
    const char *id;                /* dlq: --id */
    long limit;                    /* --limit, 0 when not given */
    bool json, reverse, all;       /* --json --reverse --all */
    int npos;                      /* positional arguments */
    char **pos;
} client_args;

/* Parses argv (argv[0] the command) accepting the short option letters in
 * allowed (see the table in client.c). Returns 0, or 2 after printing the
 * usage error. */
int client_parse(int argc, char **argv, const char *allowed, client_args *a);
/* The API key: --key, PARLEY_API_KEY, else the development secret of
 * a->data (single-tenant development mode). Returns a pl_malloc'd copy, or
 * NULL after printing that none was found. */
char *client_key(const client_args *a);
/* POSTs params (compact JSON) to URL/api/v1/METHOD. Returns the `result`
 * (a new reference), or NULL after printing the failure: the server's
 * `parley: CODE MESSAGE`, or that URL could not be reached. */
json_t *client_api(const client_args *a, const char *key, const char *method, json_t *params);
/* Prints a usage error as `parley: MSG` plus a pointer to the help; 2. */
int client_usage(const client_args *a, const char *msg);
/* Prints v compact on one line. */
void client_print_json(const json_t *v);
/* Prints a pub readably: CHANNEL OFFSET@EPOCH ID DATA. */
void client_print_pub(const json_t *pub);
/* A json_t for the publish DATA text: JSON, or a bare word that is not
 * JSON as a string. NULL when text starts like JSON ({, [ or ") but does
 * not parse; err then says why. */
json_t *client_parse_data(const char *text, char *err, size_t errlen);

#endif
