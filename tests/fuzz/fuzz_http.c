/* fuzz_http: tlsflow-serve's HTTP parser (tools/http.c), compiled in.
 *
 * Input: byte 0 picks the call, byte 1 a size limit, the rest is the buffer
 * (an exact-size heap copy, so that any overread is caught).
 *   0  tf_http_parse_request (then tf_http_target_path on its target)
 *   1  tf_http_target_path on the whole buffer
 *   2  tf_http_parse_response
 * and checks what the header promises about the results. */
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *target, size_t len, size_t out_size)
{
    char *out = malloc(out_size);
    int ret;

    if (!out)
        abort();
    ret = tf_http_target_path(target, len, out, out_size);
    if (ret == 0) {
        size_t n = strnlen(out, out_size);
        if (n == out_size || n == 0 || out[0] == '/')
            abort();
        /* No "." or ".." segment, no control byte, may not leave the root. */
        for (const char *s = out; s && *s;) {
            const char *slash = strchr(s, '/');
            size_t seg = slash ? (size_t)(slash - s) : strlen(s);
            if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
                abort();
            s = slash ? slash + 1 : NULL;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                abort();
        (void)tf_http_content_type(out);
    } else if (ret != -400 && ret != -404 && ret != -414) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tf_http_request req;
    tf_http_response resp;
    size_t len, limit;
    char *buf, head[256];
    int ret;

    if (size < 2)
        return 0;
    len = size - 2;
    buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    memcpy(buf, data + 2, len);
    limit = data[1] == 0 ? TF_HTTP_MAX_HEAD : (size_t)data[1] * 8;
    switch (data[0] % 3) {
    case 0:
        ret = tf_http_parse_request(buf, len, limit, &req);
        if (ret > 0) {
            if ((size_t)ret > len || req.target < buf || req.target_len == 0 ||
                req.target + req.target_len > buf + ret || (req.minor != 0 && req.minor != 1) ||
                (req.has_body && req.content_length == 0))
                abort();
            check_path(req.target, req.target_len, 1 + data[1]);
            ret = tf_http_format_head(head, 1 + data[1] % sizeof(head), req.minor, 200,
                                      req.content_length, "text/html", NULL, req.keep_alive);
            if (ret >= (int)sizeof(head) || (ret >= 0 && head[ret] != 0))
                abort();
        } else if (ret != 0 && ret != -400 && ret != -431 && ret != -501 && ret != -505) {
            abort();
        }
        break;
    case 1:
        check_path(buf, len, 1 + data[1]);
        break;
    default:
        ret = tf_http_parse_response(buf, len, limit, &resp);
        if (ret > 0 && ((size_t)ret > len || resp.status < 0 || resp.status > 999))
            abort();
        if (ret < 0 && ret != -400)
            abort();
        break;
    }
    free(buf);
    return 0;
}
