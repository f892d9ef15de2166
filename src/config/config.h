/* Server configuration: the YAML file of docs/configuration.md loaded into
 * plain structs, with defaults for everything. Loading is pure (bytes in,
 * struct or a line-numbered error out). All strings are owned by the config
 * and freed by config_release. */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vocab.h"

typedef struct cfg_api_key {
    char *key;
    char **scopes; /* "publish", "history", ..., "*" */
    size_t n_scopes;
} cfg_api_key;

typedef struct cfg_tenant {
    char *id;
    char **jwt_secrets; /* HS256 secrets; several active while rotating */
    size_t n_jwt_secrets;
    char **jwt_public_keys; /* PEM (RS256/ES256) */
    size_t n_jwt_public_keys;
    cfg_api_key *api_keys;
    size_t n_api_keys;
    uint32_t max_connections;      /* 0 = unlimited */
    uint32_t max_channels;         /* 0 = unlimited */
    uint32_t publishes_per_second; /* 0 = unlimited */
    int64_t storage_bytes;         /* 0 = unlimited */
    uint32_t history_size;         /* caps every namespace's history_size; 0 = no cap */
    int64_t history_ttl_ms;        /* caps every namespace's history_ttl; 0 = no cap */
} cfg_tenant;

/* What happens when a subscriber's queued pushes pass the outbound queue
 * bound (key `slow_consumer`). */
typedef enum cfg_slow {
    CFG_SLOW_DISCONNECT,  /* close with 4001; the client resumes by offset */
    CFG_SLOW_DROP_OLDEST, /* drop the channel's oldest queued pubs, push a gap */
    CFG_SLOW_LATEST,      /* keep only the channel's newest pub, push a gap */
} cfg_slow;

/* One entry of a namespace's `redact` list: a path into a pub's data or
 * headers (util/jpath.h syntax, first segment "data" or "headers", at least
 * one more) and what to do with the value found there. hooks/redact.h
 * compiles the list; config only validates and holds it. */
typedef struct cfg_redact {
    char *path;
    bool mask; /* action mask: the value becomes "***"; otherwise the member is removed */
} cfg_redact;

#define CFG_MAX_REDACT 64 /* entries in one namespace's list */

typedef struct cfg_namespace {
    char *name;             /* "" is the default namespace: channels without ':' */
    uint32_t history_size;  /* default 1000; 0 = unlimited */
    int64_t history_ttl_ms; /* default 24h; 0 = forever */
    bool presence;          /* default true */
    bool join_leave;        /* default false */
    bool read_cursors;      /* default true */
    bool client_publish;    /* default true */
    bool is_private;        /* key `private`; default false: subscribe needs a channel token */
    pub_class cls;          /* key `class`; default standard */
    uint32_t max_attempts;  /* default 7 */
    int64_t ack_wait_ms;    /* default 5s */
    int64_t retry_min_ms;   /* default 1s */
    int64_t retry_max_ms;   /* default 5m */
    uint32_t publishes_per_second; /* per connection; 0 = unlimited */
    uint8_t slow_consumer;         /* key `slow_consumer`, enum cfg_slow; default disconnect */
    cfg_redact *redact;            /* key `redact`; NULL when n_redact is 0 */
    size_t n_redact;
} cfg_namespace;

/* How an inbound source signs its requests (key `scheme`). */
typedef enum cfg_inbound_scheme {
    CFG_INBOUND_STANDARD, /* standard-webhooks: webhook-id, -timestamp, -signature */
    CFG_INBOUND_HMAC,     /* hmac-sha256: one header, PREFIX<hex MAC of the body> */
    CFG_INBOUND_STRIPE,   /* stripe: Stripe-Signature t=...,v1=... */
} cfg_inbound_scheme;

/* One entry of `inbound`: POST /hooks/in/<id> becomes a pub on channel. */
typedef struct cfg_inbound {
    char *id;       /* A-Z a-z 0-9 _ . -, at most CFG_INBOUND_ID_MAX bytes */
    char *tenant;   /* always set: "default" in single-tenant mode without the key */
    uint8_t scheme; /* enum cfg_inbound_scheme */
    char **secrets; /* several while rotating; standard-webhooks: whsec_ or whpk_ */
    size_t n_secrets;
    char *header;         /* hmac-sha256: the signature header (required); else NULL */
    char *prefix;         /* hmac-sha256: before the hex, default "sha256="; else NULL */
    char *id_header;      /* the delivery id's header; NULL: none (stripe: the body's "id") */
    char *channel;        /* a channel of a configured namespace that stores pubs */
    char *type;           /* the pub's type: text with {header:Name} placeholders; NULL: none */
    int64_t tolerance_ms; /* standard-webhooks and stripe: default 5m; 0 for hmac-sha256 */
} cfg_inbound;

#define CFG_INBOUND_ID_MAX 64

/* How an endpoint orders its deliveries (key `ordering`). */
typedef enum cfg_ordering {
    CFG_ORDER_NONE,    /* best effort: deliveries proceed in parallel */
    CFG_ORDER_CHANNEL, /* one in flight per channel, strictly in offset order */
    CFG_ORDER_PATH,    /* one in flight per value of a JSON path (order_path) */
} cfg_ordering;

#define CFG_WEBHOOK_MAX_SECRETS 8
#define CFG_ID_MAX 64 /* ids of webhooks and routes: A-Z a-z 0-9 _ . - */

/* One entry of `webhooks`: an endpoint deliveries are POSTed to. */
typedef struct cfg_webhook {
    char *id;     /* unique within its tenant */
    char *tenant; /* always set: "default" in single-tenant mode without the key */
    char *url;    /* http:// or https:// */
    /* Signing secrets, newest first: whsec_<base64> (HMAC, "v1,") or
     * whsk_<base64 Ed25519 private key> ("v1a,"). Every secret whose expiry
     * is in the future (or none) signs. */
    char **secrets;
    int64_t *secret_expires_ms; /* per secret: unix ms, 0 = never */
    size_t n_secrets;
    uint32_t max_attempts;   /* default: the schedule's length (10) */
    int64_t *retry_schedule; /* delays in ms, first is before attempt 1; NULL: default */
    size_t n_retry_schedule;
    int64_t timeout_ms;         /* default 15s: the whole request */
    int64_t connect_timeout_ms; /* default 5s */
    uint32_t max_in_flight;     /* default 16 */
    uint32_t rate;              /* requests per second; 0 = unlimited */
    uint8_t ordering;           /* enum cfg_ordering; default none */
    char *order_path;           /* CFG_ORDER_PATH: "data.x" or "headers.y" (util/jpath.h) */
    bool enabled;               /* default true */
} cfg_webhook;

/* Where a `where`, `channel` or `type` member of a route's match came from,
 * so that an error found when the rule is compiled (hooks/rule.h reports the
 * JSON path of the offending member, rooted at "match") is shown at its line
 * and column. */
typedef struct cfg_mark {
    char *path; /* "match", "match.where", "match.where.data.severity.$in[1]", "match.type[0]" */
    size_t line, col;
} cfg_mark;

/* One entry of `routes`: a rule over committed pubs and its action. */
typedef struct cfg_route {
    char *id;     /* unique within its tenant */
    char *tenant; /* always set, as for webhooks */
    char *match;  /* the `match` mapping as compact JSON text ("{}" when absent) */
    cfg_mark *marks;
    size_t n_marks;
    char *webhook; /* action {webhook: id}: an endpoint of the same tenant; or NULL */
    char *publish; /* action {publish: channel}: a channel of the same tenant; or NULL */
    bool enabled;  /* default true */
} cfg_route;

typedef struct cfg_limits {
    uint32_t max_message_bytes; /* default 65536: a pub (data, headers, type, correlation) */
    uint32_t max_frame_bytes;   /* default 1 MiB: one WebSocket message */
    uint32_t max_channels_per_connection; /* default 128 */
    uint32_t outbound_queue_bytes;        /* default 1 MiB */
    uint32_t max_connections_per_ip;      /* default 10000 */
    int64_t handshake_timeout_ms;         /* default 10s: HTTP request + connect */
    int64_t idle_timeout_ms;              /* default 0 = ping-based only */
    uint32_t max_body_bytes;              /* default 1 MiB: HTTP API bodies */
    uint32_t commands_per_second;         /* per connection, default 0 = unlimited */
    uint32_t user_commands_per_second; /* per user across connections and workers; 0 = unlimited */
    uint32_t api_requests_per_second;  /* per API key; 0 = unlimited */
    uint32_t max_connections_per_user; /* 0 = unlimited */
    int64_t typing_interval_ms;        /* default 2s: typing pushes per user and channel */
    uint32_t connects_per_second;      /* WebSocket and SSE opens, server-wide; 0 = unlimited */
    uint32_t connect_burst; /* bucket size of connects_per_second; 0 = one second's worth */
    uint32_t backlog_bytes; /* default 8 MiB: a worker's unwritten output that holds publishers */
    uint32_t backlog_shed_bytes; /* default 256 MiB: ... past which ephemeral work is shed */
    uint32_t
        storage_queue_shed; /* default 10000: stored publishes awaiting commit that mark overload */
    uint32_t storage_queue_max; /* default 50000: ... past which every publish is refused */
} cfg_limits;

/* engine: which one stores the channels. */
enum cfg_engine_type { CFG_ENGINE_SQLITE = 0, CFG_ENGINE_REDIS = 1 };

typedef struct cfg_redis {
    char *host; /* engine.address, default 127.0.0.1:6379 */
    int port;
    char *password;         /* NULL: no AUTH */
    int db;                 /* SELECT; default 0 */
    char *prefix;           /* every key starts with it and ':'; default "parley" */
    uint32_t notify_maxlen; /* entries kept in the cross-node stream; default 100000 */
    /* engine.sentinel: the master's address comes from these sentinels */
    char **sentinels; /* "HOST:PORT" each */
    size_t n_sentinels;
    char *sentinel_master;
    uint32_t min_replicas_acked; /* WAIT for this many replicas before an ack; 0 = none */
} cfg_redis;

typedef struct config {
    char *listen_host; /* default "127.0.0.1" */
    int listen_port;   /* default 8080 */
    char *data_dir;    /* default "./data" */
    char *web_root;    /* the web app's directory; NULL: web/ beside the binary if any; "": off */
    int64_t engine_max_db_bytes; /* engine.max_db_bytes; 0 = unlimited */
    enum cfg_engine_type engine_type;
    cfg_redis redis; /* engine type redis: its connection */
    char *admin_key;
    char *metrics_token;      /* bearer token /metrics requires; NULL = open */
    int64_t ping_interval_ms; /* default 25s */
    int workers;              /* default 0 = one per core */
    int64_t dedup_window_ms;  /* default 24h */
    bool dev_tokens;          /* tokens.issue API method enabled; default false */
    bool single_tenant;       /* true when no tenants are configured */
    /* Origin patterns (util/origin.h) browsers may connect from and read the
     * API and SSE answers of. Without the key: http://localhost:* and
     * http://127.0.0.1:* in single-tenant mode, none with tenants. */
    char **allowed_origins;
    size_t n_allowed_origins;
    cfg_limits limits;
    cfg_tenant *tenants;
    size_t n_tenants;
    cfg_namespace *namespaces;
    size_t n_namespaces;
    cfg_inbound *inbound;
    size_t n_inbound;
    cfg_webhook *webhooks;
    size_t n_webhooks;
    cfg_route *routes;
    size_t n_routes;
    /* CIDRs outbound webhooks may reach although the SSRF guard refuses them
     * (loopback, private, ...): key webhook_allowed_networks. */
    char **webhook_allowed_networks;
    size_t n_webhook_allowed_networks;
} config;

/* Fills c with the defaults used when no file is given: single tenant
 * "default" (no secret: the caller generates a development one), namespaces
 * "" (default), "chat" (join_leave on), "news" (client_publish off), "dm",
 * "inbox" (class guaranteed). Returns 0, or -1 on allocation failure. */
int config_defaults(config *c);
/* Parses YAML text into c (which is first set to the defaults; namespaces
 * and tenants given in the file replace the default lists). c need not be
 * initialized; old contents are not freed. On error returns -1, writes
 * "LINE:COL: message" (the first error only) into err and leaves c released
 * (zeroed). Out of memory is reported the same way, as "out of memory".
 * Keys of features Parley does not have yet (Redis shards) are errors
 * ("not supported yet"), never silently ignored. */
int config_load_string(config *c, const char *yaml, size_t len, char *err, size_t errlen);
/* Reads and parses a file; err gets "FILE:LINE:COL: message", or
 * "FILE: reason" when the file cannot be read. */
int config_load_file(config *c, const char *path, char *err, size_t errlen);
/* Frees everything c owns. */
void config_release(config *c);

/* The namespace of a channel name (the part before ':', or "" without one);
 * NULL when that namespace is not configured. */
const cfg_namespace *config_namespace(const config *c, const char *channel, size_t len);
/* The tenant with this id, or NULL. */
const cfg_tenant *config_tenant(const config *c, const char *id);
/* The inbound source with this id (n bytes), or NULL. */
const cfg_inbound *config_inbound(const config *c, const char *id, size_t n);
/* Checks the configuration and the API share (NULL or 1 when fine; else a
 * phrase that follows the value, e.g. "must start with http:// or https://"). */
int config_id_ok(const char *id); /* 1..CFG_ID_MAX of A-Z a-z 0-9 _ . - */
const char *config_webhook_url_error(const char *url);
const char *config_webhook_secret_error(const char *secret); /* whsec_ / whsk_ + base64 */
const char *config_order_path_error(const char *path);       /* "data.x" or "headers.x", no '*' */
/* The webhook with this tenant and id, or NULL. */
const cfg_webhook *config_webhook(const config *c, const char *tenant, const char *id);
/* The line and column of the deepest mark of r that path (a rule error's
 * path, rooted at "match") starts with, at a segment boundary (the next
 * character of path is '\0', '.' or '['; "match.typeX" is not under
 * "match.type"); 0 when r has no marks or none is such a prefix. */
void config_route_mark(const cfg_route *r, const char *path, size_t *line, size_t *col);
/* The scheme's name as written in the file ("standard-webhooks", ...). */
const char *config_inbound_scheme_name(int scheme);

#endif
