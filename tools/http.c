/* HTTP/1.x request and response heads (see http.h).  Stateless: every call
 * re-reads the buffer from its start, which is cheap for heads of a few KiB and
 * leaves nothing to get out of step when bytes arrive in pieces. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the line starting at pos.  Returns 1 with *line_len (without CRLF) and
 * *next set, 0 when the line is not complete yet, -400 for a bare LF or a CR
 * that is not followed by LF. */
static int next_line(const char *buf, size_t len, size_t pos, size_t *line_len, size_t *next)
{
    const char *lf = memchr(buf + pos, '\n', len - pos);
    if (!lf)
        return 0;
    size_t end = (size_t)(lf - buf);
    if (end == pos || buf[end - 1] != '\r')
        return -400;
    if (memchr(buf + pos, '\r', end - 1 - pos))
        return -400;
    *line_len = end - 1 - pos;
    *next = end + 1;
    return 1;
}

static int token_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

struct headers {
    int conn_close, conn_keep_alive;
    int has_length, chunked, has_te, hosts;
    uint64_t length;
};

static int parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Connection and Transfer-Encoding values are comma-separated token lists. */
static void scan_list(const char *v, size_t n, struct headers *h, int is_connection)
{
    while (n) {
        const char *comma = memchr(v, ',', n);
        size_t item = comma ? (size_t)(comma - v) : n;
        const char *t = v;
        size_t tn = item;
        trim(&t, &tn);
        if (is_connection) {
            if (token_eq(t, tn, "close"))
                h->conn_close = 1;
            else if (token_eq(t, tn, "keep-alive"))
                h->conn_keep_alive = 1;
        } else if (tn) {
            /* chunked counts only as the final coding */
            h->chunked = token_eq(t, tn, "chunked");
        }
        if (!comma)
            break;
        v += item + 1;
        n -= item + 1;
    }
}

static int header_line(const char *line, size_t n, struct headers *h)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line)
        return -400;
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)line[i]))
            return -400;   /* also whitespace before the colon (RFC 9112 5.1) */
    const char *v = colon + 1;
    size_t vn = n - name_len - 1;
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -400;
    }
    trim(&v, &vn);

    if (token_eq(line, name_len, "Content-Length")) {
        uint64_t x;
        if (parse_length(v, vn, &x) < 0 || (h->has_length && x != h->length))
            return -400;
        h->has_length = 1;
        h->length = x;
    } else if (token_eq(line, name_len, "Transfer-Encoding")) {
        h->has_te = 1;
        scan_list(v, vn, h, 0);
    } else if (token_eq(line, name_len, "Connection")) {
        scan_list(v, vn, h, 1);
    } else if (token_eq(line, name_len, "Host")) {
        h->hosts++;
    }
    return 0;
}

/* Reads header lines from pos up to and including the blank line.  Returns the
 * head's end offset, 0 for more bytes, or -STATUS. */
static int read_headers(const char *buf, size_t len, size_t pos, size_t limit, struct headers *h)
{
    for (;;) {
        size_t n, next;
        int r = next_line(buf, len < limit ? len : limit, pos, &n, &next);
        if (r < 0)
            return r;
        if (r == 0)
            return len >= limit ? -431 : 0;
        if (n == 0)
            return (int)next;
        if (buf[pos] == ' ' || buf[pos] == '\t')
            return -400;   /* obsolete line folding */
        r = header_line(buf + pos, n, h);
        if (r < 0)
            return r;
        pos = next;
    }
}

/* "HTTP/1.x": 0 with *minor, -505 for another HTTP version, -400 otherwise. */
static int parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' ||
        s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
        return -400;
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return -505;
    *minor = s[7] - '0';
    return 0;
}

static size_t skip_empty_lines(const char *buf, size_t len)
{
    size_t pos = 0;
    while (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n')
        pos += 2;
    return pos;
}

int tf_http_parse_request(const char *buf, size_t len, size_t max_head, tf_http_request *req)
{
    struct headers h = {0};
    size_t pos = skip_empty_lines(buf, len);
    size_t limit = max_head;   /* the blank lines before count too */
    size_t n, next;

    memset(req, 0, sizeof(*req));
    if (pos >= max_head)
        return -400;   /* nothing but empty lines */
    int r = next_line(buf, len < limit ? len : limit, pos, &n, &next);
    if (r < 0)
        return r;
    if (r == 0)
        return len >= limit ? -431 : 0;

    const char *line = buf + pos;
    const char *sp1 = memchr(line, ' ', n);
    if (!sp1 || sp1 == line)
        return -400;
    size_t mlen = (size_t)(sp1 - line);
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)line[i]))
            return -400;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(line + n - t));
    if (!sp2 || sp2 == t)
        return -400;
    for (const char *p = t; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -400;
    r = parse_version(sp2 + 1, (size_t)(line + n - sp2 - 1), &req->minor);
    if (r < 0)
        return r;

    /* methods are case-sensitive (RFC 9110 9.1) */
    if (mlen == 3 && memcmp(line, "GET", 3) == 0)
        req->method = TF_HTTP_GET;
    else if (mlen == 4 && memcmp(line, "HEAD", 4) == 0)
        req->method = TF_HTTP_HEAD;
    req->target = t;
    req->target_len = (size_t)(sp2 - t);

    r = read_headers(buf, len, next, limit, &h);
    if (r <= 0)
        return r;
    if (h.hosts > 1 || (req->minor == 1 && h.hosts == 0))
        return -400;
    if (h.has_te && h.has_length)
        return -400;   /* request smuggling shape (RFC 9112 6.1) */
    if (h.has_te)
        return req->minor == 0 ? -400 : -501;
    req->content_length = h.length;
    req->has_body = h.has_length && h.length > 0;
    req->keep_alive = req->minor == 1 ? !h.conn_close : (h.conn_keep_alive && !h.conn_close);
    return r;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tf_http_target_path(const char *target, size_t target_len, char *out, size_t out_size)
{
    size_t end = 0, o = 0;

    if (target_len == 0 || target[0] != '/' || out_size == 0)
        return -400;
    while (end < target_len && target[end] != '?' && target[end] != '#')
        end++;

    size_t i = 1;
    while (i <= end) {
        size_t seg_start = o;
        /* one segment: decode into out after a '/' separator */
        if (o > 0) {
            if (o + 1 >= out_size)
                return -414;
            out[o++] = '/';
            seg_start = o;
        }
        while (i < end && target[i] != '/') {
            char c = target[i];
            if (c == '%') {
                int hi = i + 2 < end ? hexval(target[i + 1]) : -1;
                int lo = hi >= 0 ? hexval(target[i + 2]) : -1;
                if (lo < 0)
                    return -400;
                c = (char)(hi << 4 | lo);
                if (c == '/')
                    return -400;   /* an encoded separator would hide a segment */
                i += 3;
            } else {
                i++;
            }
            if ((unsigned char)c < 0x20 || c == 0x7f)
                return -400;   /* NUL and other controls */
            if (o + 1 >= out_size)
                return -414;
            out[o++] = c;
        }
        size_t seg_len = o - seg_start;
        if (seg_len == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.')
            return -404;
        if (seg_len == 0 || (seg_len == 1 && out[seg_start] == '.'))
            o = seg_start > 0 ? seg_start - 1 : 0;   /* drop empty and "." segments */
        i++;   /* past the '/' (or the end) */
    }
    /* a target naming a directory ("/", "/a/") gets its index */
    if (end == 0 || target[end - 1] == '/' || o == 0) {
        const char *idx = o ? "/index.html" : "index.html";
        size_t n = strlen(idx);
        if (o + n + 1 > out_size)
            return -414;
        memcpy(out + o, idx, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

const char *tf_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

const char *tf_http_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html"}, {"htm", "text/html"}, {"txt", "text/plain"},
        {"css", "text/css"}, {"js", "text/javascript"}, {"json", "application/json"},
        {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
        {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

int tf_http_format_head(char *out, size_t out_size, int minor, int status,
                        uint64_t content_length, const char *content_type,
                        const char *allow, int keep_alive)
{
    int n = snprintf(out, out_size,
                     "HTTP/1.%d %d %s\r\nServer: tlsflow\r\nContent-Length: %llu\r\n"
                     "%s%s%s%s%s%s%s\r\n",
                     minor, status, tf_http_reason(status), (unsigned long long)content_length,
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "",
                     allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
                     keep_alive ? (minor == 0 ? "Connection: keep-alive\r\n" : "")
                                : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    return n;
}

int tf_http_parse_response(const char *buf, size_t len, size_t max_head, tf_http_response *resp)
{
    struct headers h = {0};
    size_t n, next;

    memset(resp, 0, sizeof(*resp));
    int r = next_line(buf, len < max_head ? len : max_head, 0, &n, &next);
    if (r < 0)
        return -400;
    if (r == 0)
        return len >= max_head ? -400 : 0;
    /* "HTTP/1.x SSS[ reason]" */
    if (n < 12 || buf[8] != ' ' || (n > 12 && buf[12] != ' '))
        return -400;
    if (parse_version(buf, 8, &resp->minor) < 0)
        return -400;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -400;
        status = status * 10 + (buf[i] - '0');
    }
    resp->status = status;

    r = read_headers(buf, len, next, max_head, &h);
    if (r < 0)
        return -400;
    if (r == 0)
        return 0;
    resp->keep_alive = resp->minor == 1 ? !h.conn_close : (h.conn_keep_alive && !h.conn_close);
    resp->chunked = h.has_te && h.chunked;
    if (h.has_te && !h.chunked)
        resp->keep_alive = 0;   /* framed by the connection's end */
    if ((status >= 100 && status < 200) || status == 204 || status == 304) {
        resp->has_length = 1;
        resp->content_length = 0;
    } else if (!h.has_te && h.has_length) {
        resp->has_length = 1;
        resp->content_length = h.length;
    } else if (!h.has_te) {
        resp->keep_alive = 0;
    }
    return r;
}
