/* What the client commands share: option parsing, the API key, and one
 * blocking HTTP API call through libcurl (a command-line tool waits for its
 * answer; no event loop is needed for request/reply). */
#include "cli/client_int.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/server.h"
#include "util/mem.h"
#include "util/sbuf.h"

/* One table for every client option; a command accepts a subset, so the
 * same option means the same thing everywhere. */
static const struct option client_opts[] = {
    {"url", required_argument, 0, 'u'},     {"key", required_argument, 0, 'k'},
    {"data", required_argument, 0, 'd'},    {"json", no_argument, 0, 'j'},
    {"class", required_argument, 0, 'c'},   {"idempotency-key", required_argument, 0, 'i'},
    {"type", required_argument, 0, 'T'},    {"limit", required_argument, 0, 'n'},
    {"reverse", no_argument, 0, 'r'},       {"since", required_argument, 0, 's'},
    {"channel", required_argument, 0, 'C'}, {"id", required_argument, 0, 'I'},
    {"all", no_argument, 0, 'a'},           {"token", required_argument, 0, 't'},
    {"user", required_argument, 0, 'U'},    {0, 0, 0, 0}};

int client_usage(const client_args *a, const char *msg)
{
    fprintf(stderr, "parley: %s (see parley help %s)\n", msg, a->cmd);
    return 2;
}

static const char *long_name(int o)
{
    for (const struct option *p = client_opts; p->name; p++)
        if (p->val == o) return p->name;
    return "?";
}

static int set_option(client_args *a, int o, const char *arg)
{
    char *end;
    switch (o) {
    case 'u':
        a->url = arg;
        break;
    case 'k':
        a->key = arg;
        break;
    case 'd':
        a->data = arg;
        break;
    case 'j':
        a->json = true;
        break;
    case 'c':
        a->cls = arg;
        break;
    case 'i':
        a->idem = arg;
        break;
    case 'T':
        a->type = arg;
        break;
    case 'r':
        a->reverse = true;
        break;
    case 's':
        a->since = arg;
        break;
    case 'C':
        a->channel = arg;
        break;
    case 'I':
        a->id = arg;
        break;
    case 'a':
        a->all = true;
        break;
    case 't':
        a->token = arg;
        break;
    case 'U':
        a->user = arg;
        break;
    case 'n':
        a->limit = strtol(arg, &end, 10);
        if (*end || a->limit <= 0) return client_usage(a, "--limit wants a positive number");
        break;
    default:
        return 2;
    }
    return 0;
}

int client_parse(int argc, char **argv, const char *allowed, client_args *a)
{
    memset(a, 0, sizeof(*a));
    a->cmd = argv[0];
    a->url = getenv("PARLEY_URL");
    if (!a->url || !*a->url) a->url = CLIENT_DEFAULT_URL;
    a->key = getenv("PARLEY_API_KEY");
    if (a->key && !*a->key) a->key = NULL;
    a->data = "./data";
    opterr = 0;
    for (int o; (o = getopt_long(argc, argv, ":ukdjciTnrsCIatU", client_opts, NULL)) != -1;) {
        char msg[128];
        if (o == '?' || o == ':' || !strchr(allowed, o)) {
            const char *bad = argv[optind - 1];
            snprintf(msg, sizeof(msg), "%s %s", o == ':' ? "missing value for" : "unknown option",
                     bad);
            if (o != '?' && o != ':')
                snprintf(msg, sizeof(msg), "%s takes no --%s", a->cmd, long_name(o));
            return client_usage(a, msg);
        }
        if (set_option(a, o, optarg)) return 2;
    }
    a->npos = argc - optind;
    a->pos = argv + optind;
    return 0;
}

char *client_key(const client_args *a)
{
    if (a->key) return pl_strdup(a->key);
    char *secret = server_dev_secret_read(a->data);
    if (!secret)
        fprintf(stderr,
                "parley: no API key: give --key KEY or set PARLEY_API_KEY (in single-tenant "
                "development mode the secret in %s/dev_secret is used; --data DIR to point at "
                "the server's data dir)\n",
                a->data);
    return secret;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, p, size * n);
    return size * n;
}

/* POSTs body to URL/api/v1/METHOD; the reply text (pl_malloc'd), or NULL
 * after saying the server could not be reached. */
static char *http_post(const char *url, const char *key, const char *method, const char *body,
                       long *status)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    size_t ulen = strlen(url); /* without trailing slashes: no "//api/v1" */
    while (ulen && url[ulen - 1] == '/')
        ulen--;
    char full[1024], auth[1024];
    snprintf(full, sizeof(full), "%.*s/api/v1/%s", (int)ulen, url, method);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    sbuf out;
    sbuf_init(&out);
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    char *text = rc == CURLE_OK && !out.oom ? pl_strndup(out.data ? out.data : "", out.len) : NULL;
    if (rc != CURLE_OK)
        fprintf(stderr, "parley: cannot reach the server at %.*s: %s\n", (int)ulen, url,
                curl_easy_strerror(rc));
    sbuf_release(&out);
    return text;
}

json_t *client_api(const client_args *a, const char *key, const char *method, json_t *params)
{
    char *body = json_dumps(params, JSON_COMPACT);
    if (!body) return NULL;
    long status = 0;
    char *text = http_post(a->url, key, method, body, &status);
    free(body);
    if (!text) return NULL;
    json_t *root = json_loads(text, 0, NULL);
    json_t *res = json_object_get(root, "result");
    json_t *err = json_object_get(root, "error");
    if (res) {
        json_incref(res);
    } else if (json_is_object(err)) {
        fprintf(stderr, "parley: %lld %s (HTTP %ld)\n",
                (long long)json_integer_value(json_object_get(err, "code")),
                json_string_value(json_object_get(err, "message")), status);
    } else {
        fprintf(stderr, "parley: HTTP %ld from %s: %s\n", status, a->url, text);
    }
    json_decref(root);
    pl_free(text);
    return res;
}

void client_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) printf("%s\n", s);
    free(s);
}

void client_print_pub(const json_t *pub)
{
    const char *ch = json_string_value(json_object_get(pub, "channel"));
    const char *ep = json_string_value(json_object_get(pub, "epoch"));
    const char *id = json_string_value(json_object_get(pub, "id"));
    char *data = json_dumps(json_object_get(pub, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s %lld@%s %s %s\n", ch ? ch : "",
           (long long)json_integer_value(json_object_get(pub, "offset")), ep ? ep : "",
           id ? id : "", data ? data : "null");
    free(data);
}

json_t *client_parse_data(const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (v) return v;
    const char *p = text + strspn(text, " \t");
    if (*p == '{' || *p == '[' || *p == '"') {
        snprintf(err, errlen, "not valid JSON: %s (at byte %d)", je.text, je.position);
        return NULL;
    }
    v = json_string(text);
    if (!v) snprintf(err, errlen, "not valid UTF-8");
    return v;
}
