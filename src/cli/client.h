/* The client commands of `parley`: publish, history, presence, dlq and
 * trace through the server's HTTP API (docs/api.md), subscribe and tail
 * over WebSocket (docs/protocol.md). Each takes the argv of its command
 * (argv[0] is the command name), prints results on stdout (human lines, or
 * one JSON object per line with --json) and returns the process exit
 * status: 0, 1 for a server or connection error (printed on stderr as
 * `parley: CODE MESSAGE` or with the URL tried), 2 for a usage error.
 * argv is not modified or kept beyond the call. */
#ifndef PL_CLIENT_H
#define PL_CLIENT_H

int client_publish(int argc, char **argv);
int client_history(int argc, char **argv);
int client_presence(int argc, char **argv);
int client_dlq(int argc, char **argv);
int client_trace(int argc, char **argv);
/* Runs until SIGINT or SIGTERM (exit 0), reconnecting when the connection
 * drops and resuming each channel after the last pub it printed. */
int client_subscribe(int argc, char **argv);
/* subscribe without --since: only what is published from now on. */
int client_tail(int argc, char **argv);

#endif
