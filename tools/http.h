/* tools/http.c — a small HTTP/1.x parser for tlsflow-serve and tlsflow-bench.
 *
 * Pure functions over byte buffers: no I/O, no allocation, no global state, so
 * the parser can be unit-tested and fuzzed on its own.  Only what a static file
 * server and a load generator need: the request line, the headers that decide
 * framing and keep-alive, and a response head. */
#ifndef TF_TOOLS_HTTP_H
#define TF_TOOLS_HTTP_H

#include <stddef.h>
#include <stdint.h>

enum tf_http_method { TF_HTTP_OTHER = 0, TF_HTTP_GET, TF_HTTP_HEAD };

/* Default limit on the request head (request line + headers + blank line). */
#define TF_HTTP_MAX_HEAD 16384

typedef struct {
    enum tf_http_method method;
    const char *target;       /* points into the parsed buffer, not NUL-terminated */
    size_t      target_len;
    int         minor;        /* HTTP/1.<minor>: 0 or 1 */
    int         keep_alive;   /* the connection may carry another request */
    int         has_body;     /* Content-Length > 0 or Transfer-Encoding present */
    uint64_t    content_length;
} tf_http_request;

/* Parses one request head at the start of buf[0..len).
 * Returns the head's length (> 0, including the blank line) when complete,
 * 0 when more bytes are needed, or -STATUS when the request must be refused with
 * that status: -400 malformed, -431 head longer than max_head, -501 unsupported
 * Transfer-Encoding, -505 an HTTP version other than 1.0/1.1.
 * Empty lines before the request line are skipped (RFC 9112 section 2.2) but
 * count against max_head: max_head bytes of them are -400. */
int tf_http_parse_request(const char *buf, size_t len, size_t max_head, tf_http_request *req);

/* Turns a request target into a relative path below a document root.
 * Accepts origin-form only ("/a/b?q"), drops the query, percent-decodes, then
 * refuses NUL, an encoded '/', and any "." or ".." segment left after decoding;
 * empty segments are dropped; a target ending in '/' gets "index.html".
 * Writes a NUL-terminated path without a leading '/' ("." for the root itself
 * never happens: "/" becomes "index.html").  Returns 0, -400 for a bad target,
 * -404 for one that would leave the root, -414 when out is too small. */
int tf_http_target_path(const char *target, size_t target_len, char *out, size_t out_size);

/* A response head: status line, Server, Content-Length, optional Content-Type
 * and Allow, Connection.  Returns its length, or -1 when out is too small. */
int tf_http_format_head(char *out, size_t out_size, int minor, int status,
                        uint64_t content_length, const char *content_type,
                        const char *allow, int keep_alive);

const char *tf_http_reason(int status);
/* A Content-Type for a file name by its extension. */
const char *tf_http_content_type(const char *path);

typedef struct {
    int      status;
    int      minor;
    int      keep_alive;
    int      has_length;     /* 0: the body runs to the end of the connection */
    int      chunked;
    uint64_t content_length;
} tf_http_response;

/* Parses a response head at the start of buf (for tlsflow-bench).  Same return
 * convention as tf_http_parse_request (-400 for anything malformed). */
int tf_http_parse_response(const char *buf, size_t len, size_t max_head, tf_http_response *resp);

#endif
