/* fuzz_flow: a flow's session fed whatever its peer sends, the way ring/
 * feeds it: bytes land in the ring-owned `in` buffer, GnuTLS pulls them
 * through tf_hs_handshake and tf_hs_recv_packet, and writes to `out`.
 *
 * Input: byte 0 picks the mode, the rest is its payload.
 *   bit 0  the session under test is the server (else the client)
 *   bit 1  TLS 1.2 (else 1.3, or whatever the peer offers for raw input)
 *   bit 2  live: first a real in-memory handshake with a peer tf_session,
 *          then the payload is a program of peer actions (see run_live);
 *          else raw: the payload is the peer's bytes from the first one on
 *   bit 3  whole-records mode (as while a key waits to go into the kernel)
 *   bit 4  raw: the transport ends after the payload (EOF)
 *
 * The session under test is set up as ring/flow_open.c does it (KeyUpdates
 * watched), reads as user_rx_progress does (application data restarts the
 * KeyUpdate count), answers a failed record as record_error does (the alert
 * tf_hs_alert_for names, sent with tf_hs_alert) and writes as encrypt_writes
 * does (small pieces corked unless GnuTLS owes a KeyUpdate).  In live mode
 * the peer reads everything back through GnuTLS, and these must hold, or the
 * target aborts:
 *   - the alert sent for a failed record reaches the peer as a fatal alert
 *     with that description (GNUTLS_E_FATAL_ALERT_RECEIVED);
 *   - the peer reads exactly the bytes written, in order;
 *   - when the peer had asked for a KeyUpdate and the session had read the
 *     request, the peer gets a KeyUpdate before the next data;
 *   - the closing "end" and close_notify arrive as such.
 *
 * GnuTLS draws fresh randoms per session, so recorded flights cannot complete
 * a handshake past the key exchange when replayed; the live mode reaches the
 * post-handshake record path with a real peer instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "handshake/handshake.h"

#define MAX_OPS 256
#define MAX_PIECES 4
#define RECORD_MAX (16 * 1024)   /* ring/flow_tx.c */

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

static size_t take16(cursor *c)
{
    size_t hi = take8(c);

    return hi << 8 | take8(c);
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

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_flow: %s (%ld, %ld)\n", what, a, b);
    abort();
}

/* Takes every record GnuTLS can make of `in`, as user_rx_progress does.
 * Application data goes to sink when there is one.  GNUTLS_E_AGAIN while
 * the session is open, 0 after close_notify, else the error. */
static volatile uint8_t touched;

static int pump(fz_side *s, tf_buf *sink)
{
    for (int i = 0; i < 1024; i++) {
        gnutls_packet_t pkt = NULL;
        const void *data;
        size_t len;
        ssize_t ret = tf_hs_recv_packet(&s->hs, &pkt, &data, &len);

        if (ret > 0) {
            tf_hs_note_app_data(&s->hs);
            /* Copied or touched: ASan checks the segment's bytes. */
            if (sink && !fz_buf_put(sink, data, len))
                abort();
            if (!sink && len)
                touched ^= ((const uint8_t *)data)[0] ^ ((const uint8_t *)data)[len - 1];
            tf_hs_packet_free(pkt);
            continue;
        }
        tf_hs_packet_free(pkt);
        return (int)ret;
    }
    return GNUTLS_E_AGAIN;
}

/* What ring/ asks of a session once it is open. */
static void inspect(fz_side *s)
{
    tf_ktls_secret sec;
    tlsflow_info info;

    tf_hs_info(&s->hs, &info);
    for (int dir = TF_KTLS_TX; dir <= TF_KTLS_RX; dir++) {
        tf_hs_export_secret(s->hs.s, (enum tf_ktls_dir)dir, &sec);
        tf_ktls_secret_wipe(&sec);
    }
    (void)tf_hs_has_pending(&s->hs);
}

/* record_error() in ring/flow_rx.c: the alert the peer is to hear, or -1. */
static int alert_for_record_error(fz_side *dut, int ret)
{
    tlsflow_error err = tf_hs_error(&dut->hs, ret);
    int desc = -1;

    tlsflow_error_message(err);
    if (err.code == TLSFLOW_E_TLS || err.code == TLSFLOW_E_BAD_RECORD)
        desc = tf_hs_alert_for(ret);
    if (desc > 255 || (desc < 0 && desc != -1))
        fail("tf_hs_alert_for: not an alert description", ret, desc);
    return desc;
}

/* ---- Writes, as encrypt_writes() and tf_flow_user_file() make records ---- */

typedef struct {
    const uint8_t *p;
    size_t         n;
    bool           is_file;   /* tf_flow_user_file: record-sized, never corked */
} piece;

static bool write_file_piece(fz_side *dut, const piece *pc)
{
    for (size_t off = 0; off < pc->n;) {
        size_t m = pc->n - off < RECORD_MAX ? pc->n - off : RECORD_MAX;
        ssize_t ret = tf_hs_send(&dut->hs, pc->p + off, m);

        if (ret < 0)
            return false;
        tf_hs_sent_uncorked(&dut->hs);
        off += (size_t)ret;
    }
    return true;
}

/* false when GnuTLS failed a send or an uncork (the flow would fail). */
static bool dut_write(fz_side *dut, const piece *pcs, size_t count)
{
    size_t corked = 0;

    for (size_t i = 0; i < count; i++) {
        const piece *pc = &pcs[i];

        if (pc->is_file) {
            if (corked && tf_hs_uncork(&dut->hs) < 0)
                return false;
            corked = 0;
            if (!write_file_piece(dut, pc))
                return false;
            continue;
        }
        for (size_t off = 0; off < pc->n;) {
            size_t m = pc->n - off < RECORD_MAX ? pc->n - off : RECORD_MAX;
            bool corking;
            ssize_t ret;

            if (m == RECORD_MAX && corked) {   /* a full record goes out as it is */
                if (tf_hs_uncork(&dut->hs) < 0)
                    return false;
                corked = 0;
            }
            corking = corked || (m < RECORD_MAX && tf_hs_cork(&dut->hs));
            ret = tf_hs_send(&dut->hs, pc->p + off, m);
            if (ret < 0)
                return false;
            if (!corking)
                tf_hs_sent_uncorked(&dut->hs);
            else
                corked += (size_t)ret;
            off += (size_t)ret;
        }
    }
    return !corked || tf_hs_uncork(&dut->hs) == 0;
}

/* ---- Raw mode: the peer's bytes from the first one ---- */

static void run_raw(fz_side *dut, cursor *c, bool eof)
{
    static const piece x = { (const uint8_t *)"x", 1, false };
    int ret = GNUTLS_E_AGAIN;

    fz_buf_put(&dut->in, c->p, c->left);
    dut->eof = eof;
    for (int i = 0; i < 8 && ret == GNUTLS_E_AGAIN; i++) {
        ret = tf_hs_handshake(&dut->hs);
        tf_buf_consume(&dut->out, dut->out.len);   /* nobody reads it */
    }
    if (ret < 0) {
        /* GnuTLS queued its own alert (open_failed: TF_ALERT_QUEUED); the
         * description ring/ would name must still be one. */
        if (ret != GNUTLS_E_AGAIN)
            alert_for_record_error(dut, ret);
        return;
    }
    inspect(dut);
    ret = pump(dut, NULL);
    if (ret == GNUTLS_E_AGAIN) {
        dut_write(dut, &x, 1);
        tf_hs_bye(&dut->hs);
    } else if (ret < 0) {
        int desc = alert_for_record_error(dut, ret);
        if (desc >= 0)
            tf_hs_alert(&dut->hs, desc);
    }
}

/* ---- Live mode: a program of peer actions after a real handshake ---- */

typedef struct {
    fz_side *dut, *peer;
    bool     tls12;
    bool     peer_ok;     /* the peer has read all the session sent, without error */
    bool     ku_asked;    /* a request for our KeyUpdate is on its way to the session */
    bool     ku_owed;     /* the session read it: a KeyUpdate must precede its next data */
    bool     ku_unsure;   /* whether the session took a request is not known */
    bool     is_dirty;    /* bytes not from the peer's GnuTLS went in: GnuTLS may
                           * hold them as part of a record, and what follows */
    tf_buf   got;         /* application data the peer read */
    tf_buf   want;        /* what the session wrote */
    uint8_t  fill[64 * 512];  /* the bytes of record-sized and file pieces */
} live;

/* The peer reads what the session sent.  Returns what it got to. */
static int peer_read(live *l)
{
    int ret;

    fz_transfer(l->dut, l->peer);
    if (!l->peer_ok)
        return GNUTLS_E_INVALID_SESSION;
    ret = pump(l->peer, &l->got);
    if (ret != GNUTLS_E_AGAIN)
        l->peer_ok = false;
    return ret;
}

/* The session writes; the peer must read exactly that, behind the KeyUpdate
 * it asked for if the session had read the request. */
static void dut_sends(live *l, const piece *pcs, size_t count)
{
    unsigned seen = l->peer->key_updates_in;
    bool owed = l->ku_owed && !l->ku_unsure && l->peer_ok;
    bool ok;

    tf_buf_consume(&l->want, l->want.len);
    tf_buf_consume(&l->got, l->got.len);
    for (size_t i = 0; i < count; i++)
        if (!fz_buf_put(&l->want, pcs[i].p, pcs[i].n))
            abort();
    ok = dut_write(l->dut, pcs, count);
    peer_read(l);
    if (ok && l->peer_ok) {
        if (l->got.len != l->want.len ||
            (l->want.len && memcmp(tf_buf_head(&l->got), tf_buf_head(&l->want), l->want.len)))
            fail("the peer read other bytes than were written", (long)l->want.len, (long)l->got.len);
        if (owed && l->want.len && l->peer->key_updates_in == seen)
            fail("data went out without the KeyUpdate GnuTLS owed the peer", (long)l->want.len, (long)seen);
    }
    if (l->peer->key_updates_in != seen)
        l->ku_owed = false;
}

/* A failed record, answered as ring/ does: the alert follows whatever the
 * session already sent, and the peer's GnuTLS must report exactly it. */
static void dut_failed(live *l, int ret)
{
    int desc = alert_for_record_error(l->dut, ret);
    int got;

    if (desc < 0)
        return;
    tf_hs_alert(&l->dut->hs, desc);
    got = peer_read(l);
    if (got == GNUTLS_E_INVALID_SESSION)
        return;               /* the peer had stopped reading before */
    if (got != GNUTLS_E_FATAL_ALERT_RECEIVED)
        fail("the peer did not get our fatal alert", ret, got);
    if ((int)gnutls_alert_get(l->peer->hs.s) != desc)
        fail("the peer got another alert than was sent", desc, (long)gnutls_alert_get(l->peer->hs.s));
}

/* Each action: one opcode byte, then its arguments. */
static void run_live(live *l, cursor *c)
{
    fz_side *dut = l->dut, *peer = l->peer;
    const uint8_t *p;
    piece pcs[MAX_PIECES];
    size_t n, idx, count;
    int ret = GNUTLS_E_AGAIN;
    unsigned a;

    inspect(dut);
    for (int ops = 0; ret == GNUTLS_E_AGAIN && c->left && ops < MAX_OPS; ops++) {
        unsigned op = take8(c) % 12;

        switch (op) {
        case 0:               /* raw bytes from the peer */
            n = take8(c);
            p = take(c, &n);
            fz_buf_put(&dut->in, p, n);
            l->is_dirty = true;
            break;
        case 1:               /* application data from the peer */
            n = take16(c);
            p = take(c, &n);
            while (n) {
                ssize_t r = tf_hs_send(&peer->hs, p, n);
                if (r <= 0)
                    break;
                p += r;
                n -= (size_t)r;
            }
            fz_transfer(peer, dut);
            break;
        case 2:               /* an alert, any level and description */
            a = take8(c);
            gnutls_alert_send(peer->hs.s, (gnutls_alert_level_t)(a & 3),
                              (gnutls_alert_description_t)take8(c));
            fz_transfer(peer, dut);
            break;
        case 3:               /* close_notify */
            tf_hs_bye(&peer->hs);
            fz_transfer(peer, dut);
            break;
        case 4:               /* KeyUpdates (up to 16 in a row), maybe asking for ours */
            a = take8(c);
            for (unsigned i = 0; !l->tls12 && i <= (a >> 1 & 15); i++)
                if (gnutls_session_key_update(peer->hs.s, a & 1 ? GNUTLS_KU_PEER : 0) == 0 &&
                    (a & 1))
                    l->ku_asked = true;
            fz_transfer(peer, dut);
            break;
        case 5:               /* renegotiation (1.2) or a new ticket (1.3) */
            if (l->tls12 && peer->hs.cfg->role == TLSFLOW_SERVER)
                gnutls_rehandshake(peer->hs.s);
            else if (l->tls12)
                gnutls_handshake(peer->hs.s);
            else if (peer->hs.cfg->role == TLSFLOW_SERVER)
                gnutls_session_ticket_send(peer->hs.s, 1 + take8(c) % 2, 0);
            fz_transfer(peer, dut);
            break;
        case 6:               /* we write (one small write); the peer reads and may answer */
            n = take8(c);
            pcs[0].p = take(c, &n);
            pcs[0].n = n;
            pcs[0].is_file = false;
            dut_sends(l, pcs, 1);
            fz_transfer(peer, dut);
            break;
        case 7:               /* a flipped bit: in a record the peer sends, or in what waits */
            idx = take16(c);
            a = take8(c) | 1;
            n = take8(c);
            p = take(c, &n);
            l->is_dirty = true;
            if (n && tf_hs_send(&peer->hs, p, n) > 0 && peer->out.len) {
                tf_buf_head(&peer->out)[idx % peer->out.len] ^= (uint8_t)a;
                fz_transfer(peer, dut);
            } else if (dut->in.len) {
                tf_buf_head(&dut->in)[idx % dut->in.len] ^= (uint8_t)a;
            }
            break;
        case 8:               /* the transport ends */
            dut->eof = true;
            break;
        case 9:               /* our own KeyUpdate */
            if (!l->tls12)
                tf_hs_request_key_update_reply(&dut->hs);
            a = peer->key_updates_in;
            peer_read(l);
            if (peer->key_updates_in != a)
                l->ku_owed = false;
            fz_transfer(peer, dut);
            break;
        case 10:
            tf_hs_whole_records(&dut->hs, take8(c) & 1);
            break;
        default:              /* writes queued together: small, record-sized, file pieces */
            count = 1 + take8(c) % MAX_PIECES;
            for (size_t i = 0; i < count; i++) {
                a = take8(c);
                pcs[i].is_file = (a & 3) == 2;
                if ((a & 3) == 1) {          /* around a full record */
                    pcs[i].p = l->fill;
                    pcs[i].n = RECORD_MAX - 16 + (a >> 2);
                } else if ((a & 3) == 2) {   /* a file: whole records and a rest */
                    pcs[i].p = l->fill;
                    pcs[i].n = (size_t)(a >> 2) * 512 + take8(c);
                } else {
                    n = take8(c);
                    pcs[i].p = take(c, &n);
                    pcs[i].n = n;
                }
            }
            dut_sends(l, pcs, count);
            fz_transfer(peer, dut);
            break;
        }
        ret = pump(dut, NULL);
        if (l->ku_asked) {
            /* Only the peer's records went in, all were read: the request
             * was taken (an empty `in` alone says nothing: GnuTLS takes
             * the start of a record it cannot finish yet). */
            if (ret == GNUTLS_E_AGAIN && dut->in.len == 0 && !l->is_dirty)
                l->ku_owed = true;
            else
                l->ku_unsure = true;
            l->ku_asked = false;
        }
    }
    if (ret < 0 && ret != GNUTLS_E_AGAIN) {
        dut_failed(l, ret);
    } else if (ret == GNUTLS_E_AGAIN) {
        pcs[0].p = (const uint8_t *)"end";
        pcs[0].n = 3;
        pcs[0].is_file = false;
        dut_sends(l, pcs, 1);
        bool was_ok = l->peer_ok;
        if (tf_hs_bye(&dut->hs) == 0 && was_ok && (ret = peer_read(l)) != 0)
            fail("the peer did not get our close_notify", ret, (long)l->got.len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static live l;
    fz_side dut, peer;
    cursor c = { data, size };
    unsigned mode = take8(&c);
    bool server = mode & 1, tls12 = mode & 2;
    tlsflow_config *dcfg = server ? fz_server_config() : fz_client_config(tls12 ? 0x0303 : 0x0304);
    tlsflow_config *pcfg = server ? fz_client_config(tls12 ? 0x0303 : 0x0304) : fz_server_config();

    if (size == 0)
        return 0;
    if (fz_side_init(&dut, dcfg) < 0)
        abort();
    tf_hs_watch_key_updates(&dut.hs);   /* as tf_flow_start_handshake does */
    if (!(mode & 4)) {
        tf_hs_whole_records(&dut.hs, mode & 8);
        run_raw(&dut, &c, mode & 16);
        fz_side_deinit(&dut);
        return 0;
    }
    if (fz_side_init(&peer, pcfg) < 0)
        abort();
    if (fz_handshake_pair(server ? &peer : &dut, server ? &dut : &peer) != 0)
        abort();              /* the in-memory handshake itself must work */
    fz_count_key_updates(&peer);
    tf_hs_whole_records(&dut.hs, mode & 8);
    if (!l.fill[1])
        for (size_t i = 0; i < sizeof(l.fill); i++)
            l.fill[i] = (uint8_t)(i * 7 + 1);
    l.dut = &dut;
    l.peer = &peer;
    l.tls12 = tls12;
    l.peer_ok = true;
    l.ku_asked = l.ku_owed = l.ku_unsure = l.is_dirty = false;
    run_live(&l, &c);
    tf_buf_free(&l.got);
    tf_buf_free(&l.want);
    fz_side_deinit(&peer);
    fz_side_deinit(&dut);
    return 0;
}
