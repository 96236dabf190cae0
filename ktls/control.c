/* ktls/control.c — TLS control records on a kTLS socket: reading the record
 * type the kernel attaches to recvmsg (SOL_TLS / TLS_GET_RECORD_TYPE), making
 * sense of an alert body, and building the TLS_SET_RECORD_TYPE cmsg for
 * sendmsg.  Pure functions over bytes: they must survive any input (a fuzz
 * target feeds them garbage), so they copy headers out with memcpy instead of
 * trusting the buffer's alignment or the CMSG_* macros' bounds. */
#include <errno.h>
#include <string.h>

#include "ktls/ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* TLS alert levels and the descriptions that do not end a connection. */
#define ALERT_WARNING 1
#define ALERT_FATAL 2
#define ALERT_CLOSE_NOTIFY 0
#define ALERT_USER_CANCELED 90
#define ALERT_NO_RENEGOTIATION 100

int tf_ktls_record_type_buf(const void *cbuf, size_t len)
{
    const unsigned char *p = cbuf;
    const size_t hdr = CMSG_LEN(0);   /* aligned header; data starts here */
    struct cmsghdr c;
    size_t off = 0, step;

    if (!p || len == 0)
        return TF_REC_DATA;
    /* Trailing bytes too short for a header are padding, not a message. */
    while (len - off >= sizeof(c)) {
        memcpy(&c, p + off, sizeof(c));
        if (c.cmsg_len < hdr || c.cmsg_len > len - off)
            return -EINVAL;
        if (c.cmsg_level == SOL_TLS && c.cmsg_type == TLS_GET_RECORD_TYPE) {
            if (c.cmsg_len < hdr + 1)
                return -EINVAL;
            return p[off + hdr];
        }
        step = CMSG_ALIGN(c.cmsg_len);
        if (step > len - off)   /* the last message may lack its tail padding */
            break;
        off += step;
    }
    /* The kernel tags every record when given a control buffer, but a data
     * record may come untagged (no buffer, or it did not fit); a control
     * record never does (the kernel fails the read with EIO instead). */
    return TF_REC_DATA;
}

int tf_ktls_record_type(const struct msghdr *msg)
{
    if (!msg)
        return -EINVAL;
    if (!msg->msg_control)
        return TF_REC_DATA;
    return tf_ktls_record_type_buf(msg->msg_control, msg->msg_controllen);
}

/* In TLS 1.3 the level is implicit in the description (RFC 8446 6): only
 * close_notify and user_canceled are warnings.  TLS 1.2 also lets
 * no_renegotiation be a warning; any other description ends the connection
 * whatever level the peer wrote, so we never keep reading past one. */
int tf_ktls_parse_alert(const uint8_t *body, size_t len, tf_ktls_alert *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (!body || len != 2 || (body[0] != ALERT_WARNING && body[0] != ALERT_FATAL))
        return -EBADMSG;
    out->level = body[0];
    out->description = body[1];
    out->is_close_notify = body[1] == ALERT_CLOSE_NOTIFY;
    out->is_fatal = body[0] == ALERT_FATAL ||
                    (body[1] != ALERT_CLOSE_NOTIFY && body[1] != ALERT_USER_CANCELED &&
                     body[1] != ALERT_NO_RENEGOTIATION);
    return 0;
}

size_t tf_ktls_set_record_type_cmsg(void *cbuf, size_t cap, uint8_t type)
{
    struct cmsghdr c;

    if (!cbuf || cap < CMSG_SPACE(1))
        return 0;
    /* Zero the padding too: it goes to the kernel and must not carry stale bytes. */
    memset(cbuf, 0, CMSG_SPACE(1));
    memset(&c, 0, sizeof(c));
    c.cmsg_level = SOL_TLS;
    c.cmsg_type = TLS_SET_RECORD_TYPE;
    c.cmsg_len = CMSG_LEN(1);
    memcpy(cbuf, &c, sizeof(c));
    ((unsigned char *)cbuf)[CMSG_LEN(0)] = type;
    return CMSG_SPACE(1);
}
