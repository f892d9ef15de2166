/* Internals of the routing-rule matcher shared by its files: the compiled
 * form (rule.c builds it), the prepared event and evaluation (rule_event.c),
 * and explanations (rule_explain.c). Not for use outside src/hooks/rule*. */
#ifndef PL_RULE_INT_H
#define PL_RULE_INT_H

#include <stdint.h>

#include "hooks/rule.h"
#include "util/json.h"
#include "util/sbuf.h"

enum rule_op {
    RULE_EQ,
    RULE_NEQ,
    RULE_IN,
    RULE_NIN,
    RULE_EXISTS,
    RULE_GT,
    RULE_GTE,
    RULE_LT,
    RULE_LTE,
    RULE_CONTAINS,
    RULE_AND, /* a predicate object: all its clauses */
    RULE_OR,
    RULE_NOT,
};

enum rule_root { RULE_ROOT_DATA, RULE_ROOT_HEADERS };

/* One node of `where`: a comparison on a path, or a combinator whose
 * children are linked by kid/next (indexes into rule_match.nodes). */
typedef struct rule_node {
    uint8_t op;   /* enum rule_op */
    uint8_t root; /* enum rule_root, comparisons only */
    uint8_t nseg;
    int kid;    /* first child; -1 */
    int next;   /* next sibling; -1 */
    char *path; /* as written ("data.items.0.id"), owned; comparisons only */
    char *segs; /* the segments after the root, each NUL-terminated, owned */
    uint16_t seg_off[RULE_MAX_SEGS];
    int32_t seg_idx[RULE_MAX_SEGS]; /* the segment as an array index; -1 */
    json_t *arg;                    /* the operand, an owned deep copy; NULL for combinators */
} rule_node;

struct rule_match {
    char **chan; /* channel globs, owned */
    size_t nchan;
    char **type; /* type globs, owned */
    size_t ntype;
    rule_node *nodes; /* nodes[0] is the `where` predicate if nnodes > 0 */
    int nnodes;
    int cap;
};

/* A prepared JSON text: its tokens, and the decoded form of its escaped
 * string values (rare), kept so comparisons never allocate. */
typedef struct rule_esc {
    int tok;
    size_t off; /* into rule_event.arena */
    size_t len;
} rule_esc;

typedef struct rule_doc {
    json_doc doc;
    int root;          /* the value's token; -1 if absent or unreadable */
    rule_esc *esc;     /* sorted by tok */
    const sbuf *arena; /* where esc points: the event's */
    size_t nesc, capesc;
} rule_doc;

struct rule_event {
    const char *tenant;
    const char *channel;
    size_t channel_len;
    const char *type;
    size_t type_len;
    rule_doc data, headers;
    sbuf arena;
};

/* Outcome of one comparison, with why it failed (for explanations). */
enum rule_res {
    RULE_RES_MATCH,
    RULE_RES_NO,      /* compared, and the value does not satisfy it */
    RULE_RES_MISSING, /* the path is not in the event */
    RULE_RES_TYPE,    /* the value's kind cannot be compared with the operand */
};

/* The glob of list (n entries, sep ':' or '.') that matches s, or -1; an
 * empty list answers -2 (the layer is absent: everything matches). */
int rule_globs_find(char *const *list, size_t n, const char *s, size_t sn, char sep);
/* Finds comparison node n's path in ev: *d and the token, or -1. */
int rule_resolve(const rule_node *n, const rule_event *ev, const rule_doc **d);
/* Runs comparison node n on token tok of d (tok -1: missing). */
enum rule_res rule_compare(const rule_node *n, const rule_doc *d, int tok);
/* 1 if node i of m holds on ev (short-circuits). */
int rule_node_eval(const rule_match *m, int i, const rule_event *ev);
/* The decoded bytes of string token tok of d. */
void rule_doc_str(const rule_doc *d, int tok, const char **p, size_t *n);

#endif
