/* fuzz_control: the kTLS control-record path as the read path sees it
 * (ring/flow_ktls.c: krx_done -> control_record).
 *
 * Input: byte 0 picks the mode, the rest is its payload.
 *   0  a recvmsg control area: tf_ktls_record_type_buf and tf_ktls_record_type
 *   1  an alert body: tf_ktls_parse_alert
 *   2  a record as the kernel hands it over: payload byte 0 is the type the
 *      control area carries (a real control area is built for it), byte 1
 *      picks the session's role and where to split the body, the rest is the
 *      record body.  Handshake bodies go to tf_hs_feed_handshake on a real
 *      TLS 1.3 session (in-memory handshake first), as after the receive key
 *      moved into the kernel; a KeyUpdate then exports the new key and, when
 *      asked, answers, as rekey_rx does.
 *   3  like 2, with several records back to back (2-byte length prefixes). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_common.h"
#include "handshake/handshake.h"
#include "ktls/ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static void *dup_exact(const uint8_t *p, size_t n)
{
    void *q = calloc(1, n ? n : 1);

    if (!q)
        abort();
    if (n)
        memcpy(q, p, n);
    return q;
}

static void check_type(const uint8_t *p, size_t n)
{
    void *buf = dup_exact(p, n);
    struct msghdr msg;
    int t1, t2;

    t1 = tf_ktls_record_type_buf(buf, n);
    memset(&msg, 0, sizeof(msg));
    msg.msg_control = buf;
    msg.msg_controllen = n;
    t2 = tf_ktls_record_type(&msg);
    /* One answer for both forms, and only a byte value, DATA or -EINVAL. */
    if (t1 != t2 || t1 < -EINVAL || t1 > 255 || (t1 < 0 && t1 != -EINVAL))
        abort();
    free(buf);
}

static void check_alert(const uint8_t *p, size_t n)
{
    uint8_t *body = dup_exact(p, n);
    tf_ktls_alert a;
    int ret = tf_ktls_parse_alert(body, n, &a);

    if (ret == 0 && (n != 2 || (a.is_close_notify && a.description != 0) ||
                     (a.level == 2 && !a.is_fatal)))
        abort();
    free(body);
}

/* The receiving session, made once per input. */
typedef struct {
    fz_side cli, srv, *dut;
    bool    ready, failed;
} rx_state;

static bool rx_open(rx_state *st, bool server)
{
    if (st->ready)
        return true;
    if (fz_side_init(&st->cli, fz_client_config(0x0304)) < 0 ||
        fz_side_init(&st->srv, fz_server_config()) < 0 ||
        fz_handshake_pair(&st->cli, &st->srv) != 0)
        abort();
    st->dut = server ? &st->srv : &st->cli;
    /* The tickets the server sent after its Finished are read in userspace,
     * as they would be before the receive key moves. */
    for (int i = 0; i < 8; i++) {
        gnutls_packet_t pkt = NULL;
        const void *d;
        size_t l;
        ssize_t r = tf_hs_recv_packet(&st->dut->hs, &pkt, &d, &l);
        tf_hs_packet_free(pkt);
        if (r <= 0)
            break;
    }
    tf_hs_kernel_rx_begin(&st->dut->hs, &st->dut->post_out);
    st->ready = true;
    return true;
}

static void rx_close(rx_state *st)
{
    if (!st->ready)
        return;
    fz_side_deinit(&st->cli);
    fz_side_deinit(&st->srv);
}

/* control_record(), minus the kernel. */
static void control_record(rx_state *st, int type, const uint8_t *body, size_t len,
                           unsigned how)
{
    tf_post_event ev;
    tf_ktls_alert alert;
    tf_ktls_secret sec;
    int ret;

    if (st->failed)
        return;
    switch (type) {
    case TF_REC_ALERT:
        if (tf_ktls_parse_alert(body, len, &alert) < 0 || alert.is_fatal)
            st->failed = true;
        break;
    case TF_REC_HANDSHAKE: {
        size_t split = (how >> 1) % (len + 1);   /* a message cut in two */
        rx_open(st, how & 1);
        ret = tf_hs_feed_handshake(&st->dut->hs, body, split, &ev);
        if (ret == 0 && len > split)
            ret = tf_hs_feed_handshake(&st->dut->hs, body + split, len - split, &ev);
        if (ret < 0) {
            tlsflow_error_message(tf_hs_error(&st->dut->hs, ret));
            st->failed = true;
        } else if (ev.key_update) {
            if (tf_hs_export_secret(st->dut->hs.s, TF_KTLS_RX, &sec) == 0 && sec.version != 0x0304)
                abort();
            tf_ktls_secret_wipe(&sec);
            if (ev.update_requested && tf_hs_request_key_update_reply(&st->dut->hs) < 0)
                st->failed = true;
        }
        tf_buf_consume(&st->dut->post_out, st->dut->post_out.len);
        break;
    }
    default:
        st->failed = true;
        break;
    }
}

/* The control area the kernel would attach to a record of this type. */
static int tagged_type(uint8_t type)
{
    union { struct cmsghdr h; uint8_t b[CMSG_SPACE(1)]; } u;
    struct cmsghdr c;

    memset(&u, 0, sizeof(u));
    memset(&c, 0, sizeof(c));
    c.cmsg_level = SOL_TLS;
    c.cmsg_type = TLS_GET_RECORD_TYPE;
    c.cmsg_len = CMSG_LEN(1);
    memcpy(u.b, &c, sizeof(c));
    u.b[CMSG_LEN(0)] = type;
    return tf_ktls_record_type_buf(u.b, sizeof(u.b));
}

static void one_record(rx_state *st, uint8_t type, unsigned how, const uint8_t *p, size_t n)
{
    uint8_t *body = dup_exact(p, n);
    int t = tagged_type(type);

    if (t != type)
        abort();
    if (t != TF_REC_DATA)
        control_record(st, t, body, n, how);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rx_state st;

    if (size == 0)
        return 0;
    memset(&st, 0, sizeof(st));
    switch (data[0] % 4) {
    case 0:
        check_type(data + 1, size - 1);
        break;
    case 1:
        check_alert(data + 1, size - 1);
        break;
    case 2:
        if (size >= 3)
            one_record(&st, data[1], data[2], data + 3, size - 3);
        break;
    default:
        for (size_t off = 1; off + 4 <= size && !st.failed;) {
            size_t n = (size_t)data[off + 2] << 8 | data[off + 3];
            if (n > size - off - 4)
                n = size - off - 4;
            one_record(&st, data[off], data[off + 1], data + off + 4, n);
            off += 4 + n;
        }
        break;
    }
    rx_close(&st);
    return 0;
}
