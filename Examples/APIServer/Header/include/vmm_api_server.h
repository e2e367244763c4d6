#ifndef VMM_API_SERVER_H
#define VMM_API_SERVER_H

/*
 * The control API's HTTP transport, a library of its own (libVMMAPIServer.so).
 *
 * `vmm run --api-sock PATH` dlopens it only when the flag is given: HTTP/1.1 over a
 * Unix socket needs SwiftNIO and Hummingbird, and with them Foundation, about 10 MiB of
 * resident memory and several milliseconds of start-up that a launcher without the flag
 * should not pay. The library knows nothing of VMs: it hands every request (method,
 * path, body) to `handle` and writes back the status and JSON body it returns. Which
 * endpoints exist, 404/405 answers included, is the caller's (Docs/api/vmm-api.yaml).
 *
 * Connections: at most 16 at once, fewer where RLIMIT_NOFILE leaves less than 16
 * descriptors spare beyond them (out of descriptors, the process dies in libdispatch);
 * more wait unaccepted in the backlog. One with no request in flight for 5 s is closed;
 * so is one whose request has not arrived whole 5 s after its head, or that has taken
 * none of its answers for 5 s while they wait. `handle`'s own time is not limited.
 *
 * Sizes: a request whose Content-Length exceeds `max_body_bytes` reaches `handle` at once
 * with body NULL (the caller answers 413), its body unread, and the connection is closed
 * once that answer is written; headers over 80 KiB (a field, or all of them) are answered
 * 431, with no body, and the connection closed.
 *
 * Threads: `handle` is called on the server's handler threads, one for each connection
 * it serves at once, `release` from the server's request tasks: requests on different
 * connections may be handled at the same time, and a `handle` that blocks holds only its
 * own connection's thread, so the others are answered meanwhile; the caller serialises
 * what must be.
 * `vmm_api_server_start` and `vmm_api_server_stop` on any one thread.
 */

#include <stddef.h>
#include <stdint.h>

#define VMM_API_SERVER_VERSION 1

typedef struct vmm_api_answer {
    int32_t status;    /* an HTTP status code */
    const char *body;  /* JSON, or NULL with body_len 0 for no body (204) */
    size_t body_len;
    const char *allow; /* the Allow header of a 405 (e.g. "GET, PATCH"), else NULL */
} vmm_api_answer_t;

typedef struct vmm_api_ops {
    uint32_t version;  /* VMM_API_SERVER_VERSION */
    void *ctx;
    /* Bodies longer than this are not read: `handle` gets body NULL and body_len SIZE_MAX. */
    size_t max_body_bytes;
    vmm_api_answer_t (*handle)(void *ctx, const char *method, const char *path,
                               const uint8_t *body, size_t body_len);
    /* Called once the answer's body was copied out. */
    void (*release)(void *ctx, vmm_api_answer_t answer);
} vmm_api_ops_t;

/* Serves on the Unix socket `path` (created by the caller's checks beforehand is not
 * required; an existing non-socket file is the caller's to refuse). Returns a handle once
 * the server listens, or NULL with a NUL-terminated reason in `error`. `ops` is copied. */
typedef void *(*vmm_api_server_start_fn)(const char *path, const vmm_api_ops_t *ops, char *error, size_t error_size);
/* Stops serving and waits for the server to end. The socket file is the caller's. */
typedef void (*vmm_api_server_stop_fn)(void *server);

#define VMM_API_SERVER_START "vmm_api_server_start"
#define VMM_API_SERVER_STOP "vmm_api_server_stop"

#endif
