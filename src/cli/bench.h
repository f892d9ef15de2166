/* `parley bench`: the load generator. One process on one libuv loop drives
 * many WebSocket connections against a Parley server (protocol v1) or, for
 * comparison, nats-server (NATS text protocol inside WebSocket frames). */
#ifndef PL_BENCH_H
#define PL_BENCH_H

/* argv[0] is "bench", argv[1] the scenario (fanout, channels, publish,
 * idle, storm), then options (see `parley bench --help`). Prints progress
 * to stderr once a second, and a one-line summary and one JSON line to
 * stdout. Returns the process exit status: 0 on a clean run, 1 when the run
 * failed or a stored class showed loss, duplicates or reordering, 2 on a
 * usage error. argv is not modified or kept. */
int bench_main(int argc, char **argv);

#endif
