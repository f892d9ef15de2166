/* Strict JSON tokenizer for the hot path (client commands, server API bodies).
 * It yields spans into the caller's bytes instead of a tree, so a value such as a
 * publish's `data` can be passed on byte for byte without re-serializing.
 * Invariant: after a successful json_parse every token is valid RFC 8259 JSON. */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Not json_type/JSON_OBJECT: jansson, used elsewhere in the tree, owns those names
 * and a file may need both headers. */
enum json_kind {
    JSON_KIND_NONE = 0, /* not a token (bad index) */
    JSON_KIND_OBJECT,
    JSON_KIND_ARRAY,
    JSON_KIND_STRING, /* object keys are strings too */
    JSON_KIND_NUMBER,
    JSON_KIND_TRUE,
    JSON_KIND_FALSE,
    JSON_KIND_NULL,
};

#define JSON_DEFAULT_MAX_TOKENS 65536
#define JSON_DEFAULT_MAX_DEPTH 64
/* Hard ceiling on max_depth: the validator keeps its bracket stack as a bitset on
 * the C stack instead of recursing, so depth costs no stack frames. */
#define JSON_MAX_DEPTH_CAP 4096

/* Zero fields mean the defaults above; a NULL json_limits * means all defaults. */
typedef struct json_limits {
    size_t max_tokens;  /* every value and every object key is one token */
    unsigned max_depth; /* nested objects/arrays; "[]" has depth 1 */
    /* The value of every member with this key (written without escapes) is
     * opaque: validated whole, max_depth included, but one token with no
     * children (json_size 0), for payloads only passed on with json_raw.
     * NULL: none. */
    const char *opaque_key;
} json_limits;

struct json_tok; /* private to json.c */

/* One per connection or worker; the token array is kept and reused across parses.
 * Members starting with '_' are private. */
typedef struct json_doc {
    const char *_src; /* borrowed from the caller of json_parse */
    size_t _len;
    struct json_tok *_tok; /* owned */
    size_t _cap;
    int _ntok;
    int _nroots;
    const char *_err_msg; /* static string */
    size_t _err_off;
} json_doc;

void json_doc_init(json_doc *d);
/* Frees the token array; the doc may be reused after json_doc_init. */
void json_doc_release(json_doc *d);

/* Tokenizes src[0..len): one or more JSON values separated by whitespace (clients
 * batch commands as objects separated by '\n'). src is borrowed: it must stay
 * alive and unchanged while tokens of this parse are used. Returns PL_OK,
 * PL_EINVAL (malformed, incl. an empty document), PL_ELIMIT (too many tokens,
 * too deep, or len > INT_MAX) or PL_ENOMEM. On failure the doc holds no tokens
 * and json_error says what is wrong and where. */
int json_parse(json_doc *d, const char *src, size_t len, const json_limits *lim);

/* Returns the static error message of the last failed parse (NULL after success)
 * and, when off is not NULL, the byte offset where the problem was found. */
const char *json_error(const json_doc *d, size_t *off);

/* Number of top-level values, and the token index of the i-th one (-1 if out of
 * range; O(i), so walk with json_next when iterating). */
int json_count(const json_doc *d);
int json_root(const json_doc *d, int i);
/* Total number of tokens; valid indexes are 0..json_ntok()-1. */
int json_ntok(const json_doc *d);

/* Every accessor accepts any int as a token index and answers JSON_KIND_NONE, -1 or
 * PL_EINVAL for indexes that are out of range or of the wrong type. */
enum json_kind json_kind(const json_doc *d, int tok);
/* Elements of an array, members of an object, 0 otherwise. */
int json_size(const json_doc *d, int tok);
/* Index just after tok's subtree (for an object key: after its value). */
int json_skip(const json_doc *d, int tok);
/* First element of an array or first key of an object; -1 if empty or scalar. */
int json_child(const json_doc *d, int tok);
/* Next sibling: next top-level value, next array element, or (given an object
 * key) the next key; -1 at the end. Given an object member's value, -1. */
int json_next(const json_doc *d, int tok);
/* The value of an object key token; -1 if tok is not an object key. */
int json_obj_val(const json_doc *d, int key);
/* Value of member `key` of object obj (compared after unescaping), or -1. With
 * duplicate keys the LAST one wins, as in JavaScript's JSON.parse. */
int json_obj_get(const json_doc *d, int obj, const char *key);
/* A key to look up; JSON_FIELD("lit") measures a literal at compile time. */
typedef struct json_field {
    const char *key;
    size_t len;
} json_field;
#define JSON_FIELD(lit)                                                                            \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }
/* json_obj_get for n keys in one walk over obj's members: vals[i] (n ints,
 * caller-owned) gets the value of fields[i] or -1, the last duplicate
 * winning. Returns the number of members, or -1 (all vals -1) if obj is not
 * an object. */
int json_obj_fields(const json_doc *d, int obj, const json_field *fields, size_t n, int *vals);

/* Raw bytes of any token, pointing into the source: strings include their quotes,
 * containers their brackets, so a value can be copied verbatim. PL_OK/PL_EINVAL. */
int json_raw(const json_doc *d, int tok, const char **p, size_t *n);
/* 1 if string tok holds a backslash escape (its raw bytes differ from its
 * value), else 0. */
int json_str_esc(const json_doc *d, int tok);
/* Contents of a string token between the quotes, escapes NOT decoded. */
int json_str_raw(const json_doc *d, int tok, const char **p, size_t *n);
/* 1 if string tok, unescaped, equals the n bytes s (or the C string lit); else 0. */
int json_str_eqn(const json_doc *d, int tok, const char *s, size_t n);
int json_str_eq(const json_doc *d, int tok, const char *lit);
/* Unescapes string tok into out (cap bytes, caller-owned) and NUL-terminates it;
 * *outlen (may be NULL) gets the length without the NUL. The result may contain
 * NUL bytes (from \u0000). The unescaped form is never longer than the raw one.
 * Returns PL_OK, PL_EINVAL (not a string) or PL_ELIMIT (does not fit). */
int json_str_copy(const json_doc *d, int tok, char *out, size_t cap, size_t *outlen);
/* Integer numbers only: a fraction or exponent is PL_EINVAL even if integral,
 * as is a '-' for json_u64; out of range is PL_ELIMIT. */
int json_u64(const json_doc *d, int tok, uint64_t *out);
int json_i64(const json_doc *d, int tok, int64_t *out);
/* PL_OK with *out 0/1 for false/true, PL_EINVAL otherwise. */
int json_bool(const json_doc *d, int tok, int *out);

#endif
