/* fuzz_control: the kTLS control-record path as the read path sees it
 * (ring/flow_krx.c: tf_flow_krx_segment -> control_record).
 *
 * Input: byte 0 picks the mode, the rest is its payload.
 *   0  a recvmsg control area: tf_ktls_record_type_buf and tf_ktls_record_type
 *   1  an alert body: tf_ktls_parse_alert
 *   2  a record as the kernel hands it over: payload byte 0 is the type the
 *      control area carries (a real control area is built for it), byte 1
 *      picks the session's role and where to cut the body in two records,
 *      the rest is the record body.  Handshake bodies go to
 *      tf_hs_feed_handshake on a real TLS 1.3 session (in-memory handshake
 *      first), as after the receive key moved into the kernel; a KeyUpdate
 *      then exports the new key and, when asked, answers, as rekey_rx does.
 *   3  like 2, with several records back to back (2-byte length prefixes).
 *   4  a handshake byte stream cut into records: byte 1 picks the role
 *      (bit 0: server) and the version (bit 1: TLS 1.2); then items, each an
 *      opcode byte and its arguments (see stream_mode): messages with true or
 *      lying headers, messages at the size limit, raw bytes, record
 *      boundaries here or some bytes further on (inside a message), and data
 *      records between (which restart the KeyUpdate count).  Records longer
 *      than a TLS record (16 KiB) are cut there.
 *
 * Every record fed is checked against a model of the reassembly, and the
 * target aborts if the library
 *   - returns success for a call in which a KeyUpdate is followed by more
 *     bytes, or one with more than TF_MAX_KEY_UPDATES KeyUpdates in a row,
 *     or one holding a message over TF_POST_MSG_MAX;
 *   - reports another KeyUpdate event than the bytes carried, keeps other
 *     bytes than the partial message the model has left, or holds more than
 *     TF_POST_MSG_MAX + 4 bytes;
 *   - in TLS 1.2, accepts anything but a client's HelloRequest (answered
 *     with refuse_renegotiation) or answers a server's ClientHello with
 *     anything but GNUTLS_E_REHANDSHAKE;
 *   - after a KeyUpdate, exports a receive key that is the old one or whose
 *     sequence number is not 0, or answers a request with anything but one
 *     KeyUpdate(update_not_requested) message in post_out and a new send key.
 */
#include <errno.h>
#include <stdio.h>
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
    fz_side  cli, srv, *dut;
    bool     ready, failed, is_tls12;
    tf_buf   model;      /* what the library should still hold: a partial message */
    unsigned kus;        /* KeyUpdates since the last data record */
    tf_ktls_secret rx, tx;  /* the keys in use */
} rx_state;

#define HS_KEY_UPDATE 24
#define RECORD_MAX (16 * 1024)

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_control: %s (%ld, %ld)\n", what, a, b);
    abort();
}

static void export_key(rx_state *st, enum tf_ktls_dir dir, tf_ktls_secret *out, bool is_update)
{
    tf_ktls_secret *old = dir == TF_KTLS_RX ? &st->rx : &st->tx;
    static const uint8_t zero[8];
    int ret = tf_hs_export_secret(st->dut->hs.s, dir, out);

    if (ret < 0)
        fail("no key to export", dir, ret);
    if (!is_update)
        return;
    if (out->version != 0x0304)
        fail("a KeyUpdate outside TLS 1.3", dir, (long)out->version);
    if (memcmp(out->seq, zero, sizeof(zero)))
        fail("a new key whose records do not start at 0", dir, out->seq[7]);
    if (out->key_len == old->key_len && !memcmp(out->key, old->key, out->key_len))
        fail("a KeyUpdate that kept the key", dir, (long)out->key_len);
}

static void rx_open(rx_state *st, bool server, bool tls12)
{
    if (st->ready)
        return;
    if (fz_side_init(&st->cli, fz_client_config(tls12 ? 0x0303 : 0x0304)) < 0 ||
        fz_side_init(&st->srv, fz_server_config()) < 0)
        abort();
    st->dut = server ? &st->srv : &st->cli;
    tf_hs_watch_key_updates(&st->dut->hs);   /* as tf_flow_start_handshake does */
    if (fz_handshake_pair(&st->cli, &st->srv) != 0)
        abort();
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
    st->is_tls12 = tls12;
    export_key(st, TF_KTLS_RX, &st->rx, false);
    export_key(st, TF_KTLS_TX, &st->tx, false);
    st->ready = true;
}

static void rx_close(rx_state *st)
{
    tf_buf_free(&st->model);
    tf_ktls_secret_wipe(&st->rx);
    tf_ktls_secret_wipe(&st->tx);
    if (!st->ready)
        return;
    fz_side_deinit(&st->cli);
    fz_side_deinit(&st->srv);
}

/* The model's verdict on the record it was just given (appended to model). */
typedef struct {
    size_t   taken;       /* bytes of whole messages */
    unsigned kus;         /* KeyUpdates among them */
    bool     ku_followed; /* a KeyUpdate with bytes behind it */
    bool     ku_bad;      /* a KeyUpdate of another length or value */
    bool     ku_requested;/* the last KeyUpdate asks for ours */
    bool     too_big;     /* a header announces more than TF_POST_MSG_MAX */
} walk;

static walk walk_model(const tf_buf *m)
{
    const uint8_t *p = tf_buf_head(m);
    walk w;

    memset(&w, 0, sizeof(w));
    while (m->len - w.taken >= 4) {
        const uint8_t *h = p + w.taken;
        size_t mlen = 4 + ((size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]);

        if (mlen > TF_POST_MSG_MAX) {
            w.too_big = true;
            break;
        }
        if (m->len - w.taken < mlen)
            break;
        if (h[0] == HS_KEY_UPDATE) {
            w.kus++;
            w.ku_bad |= mlen != 5 || h[4] > 1;
            w.ku_requested = mlen == 5 && h[4] == 1;
            w.ku_followed |= w.taken + mlen != m->len;
        }
        w.taken += mlen;
    }
    return w;
}

static void check_tls13(rx_state *st, size_t before, size_t len, int ret, const tf_post_event *ev)
{
    const tf_buf *in = &st->dut->hs.post_in;
    walk w;

    if (ret < 0)
        return;
    (void)before;
    if (len > TF_POST_MSG_MAX)
        fail("took a record over TF_POST_MSG_MAX", (long)len, 0);
    w = walk_model(&st->model);
    if (w.too_big)
        fail("took a message over TF_POST_MSG_MAX", (long)st->model.len, (long)w.taken);
    if (w.ku_followed)
        fail("took bytes behind a KeyUpdate in its record", (long)st->model.len, (long)w.taken);
    if (w.ku_bad)
        fail("took a malformed KeyUpdate", (long)st->model.len, (long)w.taken);
    if (w.kus > 1 || ev->key_update != (w.kus == 1) ||
        ev->update_requested != (w.kus == 1 && w.ku_requested) || ev->refuse_renegotiation)
        fail("reported other events than the record held", w.kus, ev->key_update);
    st->kus += w.kus;
    if (st->kus > TF_MAX_KEY_UPDATES)
        fail("took more KeyUpdates in a row than TF_MAX_KEY_UPDATES", st->kus, 0);
    if (st->kus != st->dut->hs.key_updates)
        fail("counted KeyUpdates otherwise", st->kus, st->dut->hs.key_updates);
    tf_buf_consume(&st->model, w.taken);
    if (in->len != st->model.len ||
        (in->len && memcmp(tf_buf_head(in), tf_buf_head(&st->model), in->len)))
        fail("holds other bytes than the partial message", (long)in->len, (long)st->model.len);
}

static void check_tls12(rx_state *st, const uint8_t *p, size_t len, int ret, const tf_post_event *ev)
{
    bool server = st->dut->hs.cfg->role == TLSFLOW_SERVER;

    if (ret == 0 && (server || len < 4 || p[0] != 0 || !ev->refuse_renegotiation || ev->key_update))
        fail("TLS 1.2: took something other than a HelloRequest", p && len ? p[0] : -1, (long)len);
    if (server && len >= 1 && p[0] == 1 && ret != GNUTLS_E_REHANDSHAKE)
        fail("TLS 1.2: a ClientHello not refused as renegotiation", ret, 0);
    if (st->dut->hs.post_in.len)
        fail("TLS 1.2: handshake bytes kept", (long)st->dut->hs.post_in.len, 0);
}

/* One record's handshake bytes, as control_record() hands them over, then
 * what rekey_rx() does with a KeyUpdate. */
static void rekey(rx_state *st, const tf_post_event *ev);

static void feed(rx_state *st, const uint8_t *p, size_t len)
{
    tf_post_event ev;
    size_t before = st->model.len;
    int ret;

    if (st->failed)
        return;
    if (!st->is_tls12 && !fz_buf_put(&st->model, p, len))
        abort();
    ret = tf_hs_feed_handshake(&st->dut->hs, p, len, &ev);
    if (st->dut->hs.post_in.len > TF_POST_MSG_MAX + 4)
        fail("holds more than a message", (long)st->dut->hs.post_in.len, ret);
    if (st->is_tls12)
        check_tls12(st, p, len, ret, &ev);
    else
        check_tls13(st, before, len, ret, &ev);
    if (ret < 0) {
        tlsflow_error_message(tf_hs_error(&st->dut->hs, ret));
        if (tf_hs_alert_for(ret) < 0 || tf_hs_alert_for(ret) > 255)
            fail("tf_hs_alert_for: not an alert description", ret, tf_hs_alert_for(ret));
        st->failed = true;
        return;
    }
    if (ev.key_update)
        rekey(st, &ev);
    tf_buf_consume(&st->dut->post_out, st->dut->post_out.len);   /* the kernel sends it */
}

static void rekey(rx_state *st, const tf_post_event *ev)
{
    tf_ktls_secret sec;
    size_t out_before;

    export_key(st, TF_KTLS_RX, &sec, true);
    tf_ktls_secret_wipe(&st->rx);
    st->rx = sec;
    if (!ev->update_requested)
        return;
    out_before = st->dut->post_out.len;
    if (tf_hs_request_key_update_reply(&st->dut->hs) < 0) {
        st->failed = true;
        return;
    }
    if (st->dut->post_out.len != out_before + 5 ||
        memcmp(tf_buf_head(&st->dut->post_out) + out_before, "\x18\x00\x00\x01\x00", 5))
        fail("the answer is not one KeyUpdate", (long)out_before, (long)st->dut->post_out.len);
    export_key(st, TF_KTLS_TX, &sec, true);
    tf_ktls_secret_wipe(&st->tx);
    st->tx = sec;
}

/* control_record(), minus the kernel. */
static void control_record(rx_state *st, int type, const uint8_t *body, size_t len,
                           unsigned how)
{
    tf_ktls_alert alert;

    if (st->failed)
        return;
    switch (type) {
    case TF_REC_ALERT:
        if (tf_ktls_parse_alert(body, len, &alert) < 0 || alert.is_fatal)
            st->failed = true;
        break;
    case TF_REC_HANDSHAKE: {
        size_t split = (how >> 1) % (len + 1);   /* a message cut in two records */
        rx_open(st, how & 1, false);
        feed(st, body, split);
        if (len > split)
            feed(st, body + split, len - split);
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
    else if (st->ready)
        st->dut->hs.key_updates = st->kus = 0;   /* as tf_flow_krx_segment does */
    free(body);
}

/* ---- Mode 4: a handshake stream cut into records ---- */

#define MAX_CUTS 512
#define MAX_BIG 3

typedef struct {
    size_t off;
    bool   is_data;    /* a data record comes here */
} cut;

typedef struct {
    const uint8_t *p;
    size_t         left;
} cursor;

static unsigned take8(cursor *c)
{
    if (!c->left)
        return 0;
    c->left--;
    return *c->p++;
}

static const uint8_t *take(cursor *c, size_t *n)
{
    const uint8_t *p = c->p;

    if (*n > c->left)
        *n = c->left;
    c->p += *n;
    c->left -= *n;
    return p;
}

static void put_header(tf_buf *s, unsigned type, size_t len)
{
    uint8_t h[4] = { (uint8_t)type, (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };

    if (!fz_buf_put(s, h, 4))
        abort();
}

static int by_offset(const void *a, const void *b)
{
    const cut *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off ? 1 : (int)x->is_data - (int)y->is_data;
}

/* Items, each an opcode byte (mod 6) and its arguments:
 *   0 type len16 body  a message with its true header
 *   1 type len24 n8 body  a header that says len24, then n8 bytes
 *   2                  a record ends here
 *   3 k16              a record ends k16 bytes further on
 *   4                  a record ends here, then a data record
 *   5 type d8          a message of TF_POST_MSG_MAX - 132 + d8 bytes, header
 *                      included (about the limit; three per input at most) */
static void stream_mode(rx_state *st, cursor *c)
{
    static uint8_t zeros[TF_POST_MSG_MAX + 128];
    tf_buf s = { 0 };
    cut *cuts = calloc(MAX_CUTS, sizeof(*cuts));
    size_t ncuts = 0, n, from = 0;
    unsigned flags = take8(c), big = 0;

    if (!cuts)
        abort();
    rx_open(st, flags & 1, flags & 2);
    while (c->left && ncuts < MAX_CUTS) {
        unsigned op = take8(c) % 6, type;
        const uint8_t *p;

        switch (op) {
        case 0:
            type = take8(c);
            n = take8(c) << 8;
            n |= take8(c);
            p = take(c, &n);
            put_header(&s, type, n);
            fz_buf_put(&s, p, n);
            break;
        case 1:
            type = take8(c);
            n = (size_t)take8(c) << 16;
            n |= (size_t)take8(c) << 8;
            n |= take8(c);
            put_header(&s, type, n);
            n = take8(c);
            p = take(c, &n);
            fz_buf_put(&s, p, n);
            break;
        case 2:
        case 4:
            cuts[ncuts++] = (cut){ s.len, op == 4 };
            break;
        case 3:
            n = take8(c) << 8;
            n |= take8(c);
            cuts[ncuts++] = (cut){ s.len + n, false };
            break;
        default:
            type = take8(c);
            n = TF_POST_MSG_MAX - 132 + take8(c);
            if (big++ < MAX_BIG) {
                put_header(&s, type, n - 4);
                fz_buf_put(&s, zeros, n - 4);
            }
            break;
        }
    }
    qsort(cuts, ncuts, sizeof(*cuts), by_offset);
    /* Records between the cuts, none over RECORD_MAX. */
    for (size_t i = 0; i <= ncuts && !st->failed; i++) {
        size_t to = i < ncuts && cuts[i].off < s.len ? cuts[i].off : s.len;

        while (from < to && !st->failed) {
            size_t rec = to - from < RECORD_MAX ? to - from : RECORD_MAX;
            feed(st, tf_buf_head(&s) + from, rec);
            from += rec;
        }
        if (i < ncuts && cuts[i].is_data)
            st->dut->hs.key_updates = st->kus = 0;   /* as tf_flow_krx_segment does */
    }
    tf_buf_free(&s);
    free(cuts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rx_state st;

    if (size == 0)
        return 0;
    memset(&st, 0, sizeof(st));
    switch (data[0] % 5) {
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
    case 3:
        for (size_t off = 1; off + 4 <= size && !st.failed;) {
            size_t n = (size_t)data[off + 2] << 8 | data[off + 3];
            if (n > size - off - 4)
                n = size - off - 4;
            one_record(&st, data[off], data[off + 1], data + off + 4, n);
            off += 4 + n;
        }
        break;
    default: {
        cursor c = { data + 1, size - 1 };
        stream_mode(&st, &c);
        break;
    }
    }
    rx_close(&st);
    return 0;
}
