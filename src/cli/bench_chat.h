/* The chat scenario of `parley bench`: many connections, each a member of
 * BENCH_CHAT_PER_CONN rooms (channels) of skewed sizes, every publish sent
 * by a member of its room through its own connection, and every member's
 * view of every room checked for loss, duplicates and order.
 *
 * The plan (pure, unit-tested) fixes who is where:
 *   - Room sizes. With N connections, R rooms and M = 5N memberships, room
 *     i of R gets 2 + (S - 2) * u_i^k before rounding, where S = min(200, N)
 *     is the largest size, u_i = (i + 0.5) / R its quantile and k > 0 the
 *     exponent (found by bisection) that makes the sizes add up to M;
 *     rounding keeps the sum exact (largest remainders). A large k means
 *     most rooms hold 2 or 3 members (direct messages, small groups) and a
 *     few hold up to S: the default 10,000 connections in 2,000 rooms give
 *     k ~ 7.6, median size 3, a tenth of the rooms over 100.
 *   - Rooms in a seeded random order are laid end to end over 5 layers of N
 *     positions each; position j of layer l belongs to connection
 *     perm_l[j] (a seeded permutation per layer), so each connection is in
 *     exactly one room per layer; a connection that lands twice in a room
 *     crossing a layer boundary is swapped with a random other position.
 *   - Publishing picks a membership uniformly at random (seeded): its
 *     connection publishes to its room. Every member then speaks at the
 *     same rate and a room's traffic grows with its size, as in a chat; a
 *     pub reaches all members of its room, its sender included. */
#ifndef PL_BENCH_CHAT_H
#define PL_BENCH_CHAT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/sbuf.h"

#define BENCH_CHAT_PER_CONN 5
#define BENCH_CHAT_MIN_SIZE 2
#define BENCH_CHAT_MAX_SIZE 200
/* Publishes a connection keeps unanswered (a power of two): a person in a
 * chat has a message or two unanswered, not dozens. */
#define BENCH_CHAT_WINDOW 16
/* --find-max stops after this many rate steps. */
#define BENCH_CHAT_MAX_STEPS 32

typedef struct bench_chat_plan {
    uint32_t conns, rooms;
    uint32_t *size;   /* per room */
    uint32_t *member; /* conns * BENCH_CHAT_PER_CONN: connection c's rooms at c*5 .. c*5+4 */
    double k;         /* the exponent of the size curve */
} bench_chat_plan;

/* NULL when conns connections can be members of 5 distinct rooms each over
 * rooms rooms of 2 .. min(200, conns) members, else why not (static). */
const char *bench_chat_check(uint32_t conns, uint32_t rooms);
/* Fills size[0..rooms) (sum exactly total, each in min .. max) and returns
 * the exponent used; sizes are in decreasing order. Needs rooms * min <=
 * total <= rooms * max. */
double bench_chat_sizes(uint32_t rooms, uint64_t total, uint32_t min, uint32_t max, uint32_t *size);
/* Builds the plan for conns and rooms from seed. 0, or -1 when the input
 * is refused by bench_chat_check, memory runs out or the memberships could
 * not be made distinct (not seen for valid input). */
int bench_chat_plan_make(bench_chat_plan *p, uint32_t conns, uint32_t rooms, uint64_t seed);
void bench_chat_plan_release(bench_chat_plan *p);

/* A seeded generator (splitmix64), shared by the plan and the run. */
uint64_t bench_chat_rand(uint64_t *state);

/* One rate step of a run (a plain run is one step). */
typedef struct bench_chat_step {
    double rate;        /* asked, pubs/s */
    double pubs_per_s;  /* sent over the step's time */
    double deliv_per_s; /* deliveries over the step's time and its settling */
    uint64_t pubs, deliveries;
    double p50_ms, p99_ms; /* publish to delivery */
    double settle_s;       /* step end until every delivery was in; <0 if not within the bound */
    uint64_t shed;
    bool kept_up; /* every pub sent on schedule, none shed, all delivered in time */
    bool ok;      /* kept up and p99 within the bound */
} bench_chat_step;

typedef struct bench_chat_sum {
    bool on;
    uint32_t rooms, memberships;
    uint32_t size_min, size_median, size_max;
    double size_k;
    double fanout;                /* mean members per pub: sum(size^2) / sum(size) */
    uint64_t memberships_lossy;   /* (connection, room) views that missed something */
    uint64_t memberships_dup_ooo; /* ... that got a duplicate or an out-of-order pub */
    bool find_max;
    double p99_bound_ms;
    double max_rate; /* highest step rate met; 0 when none */
    uint32_t nsteps;
    bench_chat_step steps[BENCH_CHAT_MAX_STEPS];
} bench_chat_sum;

/* ,"chat":{...} for the JSON line and the human part of the summary. */
void bench_chat_json(const bench_chat_sum *s, sbuf *j);
void bench_chat_human(const bench_chat_sum *s, sbuf *h);

#endif
