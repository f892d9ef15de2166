/* The Parley server: N worker threads, each with its own libuv loop and an
 * SO_REUSEPORT listener, around one engine. server_run blocks until SIGTERM
 * or SIGINT, then shuts down gracefully (see docs/operations.md). */
#ifndef PL_SERVER_H
#define PL_SERVER_H

#include <stddef.h>

#include "config/config.h"

typedef struct server server;

/* Creates a server from cfg, whose contents it takes over (the caller must
 * not release cfg afterwards, even on failure). NULL with err on failure. */
server *server_new(config *cfg, char *err, size_t errlen);
/* Runs until a termination signal; returns the process exit code. */
int server_run(server *srv);
void server_free(server *srv);
/* 1 when the server serves the web app at / and /admin (web_root). */
int server_serves_web(const server *srv);

/* Reads DIR/dev_secret, creating it with a random secret when missing.
 * Returns a pl_malloc'd secret or NULL (err set). */
char *server_dev_secret(const char *data_dir, char *err, size_t errlen);
/* The development secret of DIR, or NULL when there is none (nothing is
 * created). pl_malloc'd. */
char *server_dev_secret_read(const char *data_dir);

#endif
