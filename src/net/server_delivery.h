/* The server's side of guaranteed delivery: builds the delivery manager over
 * this server's engine, presence, namespaces and workers (the callbacks of
 * delivery_deps live in server_delivery.c). */
#ifndef PL_SERVER_DELIVERY_H
#define PL_SERVER_DELIVERY_H

#include "delivery/delivery.h"

struct server;

/* A stopped manager whose callbacks reach srv (borrowed: it must outlive
 * the manager, and srv->eng must be set); NULL on allocation failure. */
delivery *server_delivery_new(struct server *srv);

#endif
