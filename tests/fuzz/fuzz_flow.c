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
 * GnuTLS draws fresh randoms per session, so recorded flights cannot complete
 * a handshake past the key exchange when replayed; the live mode reaches the
 * post-handshake record path with a real peer instead. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "handshake/handshake.h"

#define MAX_OPS 256

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
    return take8(c) << 8 | take8(c);
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

/* Takes every record GnuTLS can make of `in`, as user_rx_progress does.
 * Returns false once the session is over (close_notify or an error). */
static bool pump(fz_side *s)
{
    volatile uint8_t sink = 0;

    for (int i = 0; i < 1024; i++) {
        gnutls_packet_t pkt = NULL;
        const void *data;
        size_t len;
        ssize_t ret = tf_hs_recv_packet(&s->hs, &pkt, &data, &len);

        if (ret > 0) {
            if (len)   /* touch every byte: ASan checks the segment */
                sink ^= ((const uint8_t *)data)[0] ^ ((const uint8_t *)data)[len - 1];
            tf_hs_packet_free(pkt);
            continue;
        }
        tf_hs_packet_free(pkt);
        if (ret == 0)
            return false;
        if (ret == GNUTLS_E_AGAIN)
            return true;
        tlsflow_error_message(tf_hs_error(&s->hs, (int)ret));
        return false;
    }
    return true;
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

static void run_raw(fz_side *dut, cursor *c, bool eof)
{
    int ret = GNUTLS_E_AGAIN;

    fz_buf_put(&dut->in, c->p, c->left);
    dut->eof = eof;
    for (int i = 0; i < 8 && ret == GNUTLS_E_AGAIN; i++) {
        ret = tf_hs_handshake(&dut->hs);
        tf_buf_consume(&dut->out, dut->out.len);   /* nobody reads it */
    }
    if (ret < 0) {
        if (ret != GNUTLS_E_AGAIN)
            tlsflow_error_message(tf_hs_error(&dut->hs, ret));
        return;
    }
    inspect(dut);
    if (pump(dut)) {
        tf_hs_send(&dut->hs, "x", 1);
        tf_hs_bye(&dut->hs);
    }
}

static void peer_send(fz_side *peer, fz_side *dut, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t ret = tf_hs_send(&peer->hs, p, n);
        if (ret <= 0)
            break;
        p += ret;
        n -= (size_t)ret;
    }
    fz_transfer(peer, dut);
}

/* Each action: one opcode byte, then its arguments. */
static void run_live(fz_side *dut, fz_side *peer, cursor *c, bool tls12)
{
    const uint8_t *p;
    size_t n;
    bool open = true;

    inspect(dut);
    for (int ops = 0; open && c->left && ops < MAX_OPS; ops++) {
        unsigned op = take8(c) % 11, a;

        switch (op) {
        case 0:               /* raw bytes from the peer */
            n = take8(c);
            p = take(c, &n);
            fz_buf_put(&dut->in, p, n);
            break;
        case 1:               /* application data from the peer */
            n = take16(c);
            p = take(c, &n);
            peer_send(peer, dut, p, n);
            break;
        case 2:               /* an alert, any level and description */
            a = take8(c);
            gnutls_alert_send(peer->hs.s, (gnutls_alert_level_t)(a & 3), (gnutls_alert_description_t)take8(c));
            fz_transfer(peer, dut);
            break;
        case 3:               /* close_notify */
            tf_hs_bye(&peer->hs);
            fz_transfer(peer, dut);
            break;
        case 4:               /* a KeyUpdate, maybe asking for ours */
            if (!tls12)
                gnutls_session_key_update(peer->hs.s, take8(c) & 1 ? GNUTLS_KU_PEER : 0);
            fz_transfer(peer, dut);
            break;
        case 5:               /* renegotiation (1.2) or a new ticket (1.3) */
            if (tls12 && peer->hs.cfg->role == TLSFLOW_SERVER)
                gnutls_rehandshake(peer->hs.s);
            else if (tls12)
                gnutls_handshake(peer->hs.s);
            else if (peer->hs.cfg->role == TLSFLOW_SERVER)
                gnutls_session_ticket_send(peer->hs.s, 1 + take8(c) % 2, 0);
            fz_transfer(peer, dut);
            break;
        case 6:               /* we send; the peer reads and may answer */
            n = take8(c);
            p = take(c, &n);
            if (n)
                tf_hs_send(&dut->hs, p, n);
            fz_transfer(dut, peer);
            pump(peer);
            fz_transfer(peer, dut);
            break;
        case 7:               /* a flipped bit in what waits to be read */
            n = take16(c);
            a = take8(c) | 1;
            if (dut->in.len)
                tf_buf_head(&dut->in)[n % dut->in.len] ^= (uint8_t)a;
            break;
        case 8:               /* the transport ends */
            dut->eof = true;
            break;
        case 9:               /* our own KeyUpdate */
            if (!tls12)
                tf_hs_request_key_update_reply(&dut->hs);
            fz_transfer(dut, peer);
            pump(peer);
            fz_transfer(peer, dut);
            break;
        default:
            tf_hs_whole_records(&dut->hs, take8(c) & 1);
            break;
        }
        open = pump(dut);
    }
    if (open) {
        tf_hs_send(&dut->hs, "end", 3);
        tf_hs_bye(&dut->hs);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    if (!(mode & 4)) {
        tf_hs_whole_records(&dut.hs, mode & 8);
        run_raw(&dut, &c, mode & 16);
        fz_side_deinit(&dut);
        return 0;
    }
    if (fz_side_init(&peer, pcfg) < 0)
        abort();
    if (fz_handshake_pair(server ? &peer : &dut, server ? &dut : &peer) == 0) {
        tf_hs_whole_records(&dut.hs, mode & 8);
        run_live(&dut, &peer, &c, tls12);
    } else {
        abort();              /* the in-memory handshake itself must work */
    }
    fz_side_deinit(&peer);
    fz_side_deinit(&dut);
    return 0;
}
