/*
 * HTTP/1.1 over TLS (libmicrohttpd on GnuTLS): the handshake asks every
 * client for a certificate and accepts none; a certificate whose issuer the
 * TLS layer does not know ends the handshake with unknown_ca. Each request
 * goes to api_handle() on libmicrohttpd's worker threads.
 */
#ifndef PORTAL_SERVER_H
#define PORTAL_SERVER_H

#include <stddef.h>

#include "api.h"
#include "config.h"

typedef struct server server;

/* Starts listening; err says why it cannot. Free with server_stop(). */
server *server_start(const portald_config *cfg, const api_context *ctx, char *err,
                     size_t err_size);

/* The port listened on (the kernel's choice for port 0). */
int server_port(const server *s);

/* Stops accepting, ends the connections and the threads. NULL is allowed. */
void server_stop(server *s);

#endif
