/* gRPC status codes and the header encodings around them: percent-encoded grpc-message,
 * grpc-timeout, and the statuses a client derives from HTTP and RST_STREAM codes. Pure: no I/O. */
#ifndef NR_RPC_STATUS_H
#define NR_RPC_STATUS_H

#include <stddef.h>
#include <stdint.h>

enum rpc_code {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
};

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN_CODE" for anything else. */
const char *rpc_code_name(int code);

/* Percent-encodes `msg` for grpc-message: bytes 0x20-0x7E except '%' stay, others become %XX.
 * Writes at most `len` bytes including the NUL; the result is cut on a whole escape. Returns
 * the length of the full encoding (so a result >= len means it was truncated). */
size_t rpc_percent_encode(const char *msg, char *out, size_t len);

/* Decodes grpc-message. Never fails: an invalid escape is kept literally. `in` is `in_len`
 * bytes (not necessarily NUL-terminated); out gets at most len-1 bytes and a NUL. Returns the
 * decoded length written. */
size_t rpc_percent_decode(const char *in, size_t in_len, char *out, size_t len);

/* Parses grpc-timeout ("1-8 digits" then H, M, S, m, u or n) into nanoseconds, saturating at
 * INT64_MAX. Returns 0, or -EINVAL when malformed. */
int rpc_timeout_parse(const char *s, size_t len, int64_t *ns);

/* Formats a timeout for grpc-timeout with the finest unit whose value fits in 8 digits. buf
 * needs 10 bytes. A timeout <= 0 is written as "1n" (already expired). */
void rpc_timeout_format(int64_t ns, char buf[static 10]);

/* The status a gRPC client reports for an HTTP response status other than 200 (PROTOCOL-HTTP2:
 * 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504
 * UNAVAILABLE, else UNKNOWN). */
int rpc_code_from_http(int http_status);

/* The status for a stream reset with an HTTP/2 error code: REFUSED_STREAM -> UNAVAILABLE,
 * CANCEL -> CANCELLED, ENHANCE_YOUR_CALM -> RESOURCE_EXHAUSTED, INADEQUATE_SECURITY ->
 * PERMISSION_DENIED, anything else INTERNAL. */
int rpc_code_from_h2_error(uint32_t h2_error);

#endif
