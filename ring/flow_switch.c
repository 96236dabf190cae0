/* The keys' move to the kernel: the plan right after the handshake, the ULP,
 * and each direction's switch at a record boundary. */
#include <errno.h>
#include <stdlib.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "ring/ring.h"

static int secret_params(tlsflow *f, unsigned *version, enum tf_ktls_cipher *cipher)
{
    tf_ktls_secret s;
    int ret = tf_hs_export_secret(f->hs.s, TF_KTLS_TX, &s);

    if (ret == 0) {
        *version = s.version;
        *cipher = s.cipher;
        f->tls_version = s.version;
        f->tx_record_limit = f->cfg->test_tx_record_limit ? f->cfg->test_tx_record_limit
                                                          : tf_ktls_record_limit(s.version, s.cipher);
    }
    tf_ktls_secret_wipe(&s);
    return ret;
}

/* Decides, right after the handshake, whether the keys go to the kernel. */
tlsflow_error tf_flow_ktls_plan(tlsflow *f)
{
    enum tf_ktls_cipher cipher = TF_CIPHER_UNKNOWN;
    unsigned version = 0;
    int ret;

    if (f->cfg->ktls == TLSFLOW_KTLS_OFF)
        return tf_err(0, 0);
    ret = tf_hs_gnutls_owns_ktls(&f->hs) ? -EBUSY : tf_ktls_probe_ulp();
    if (ret == 0)
        ret = secret_params(f, &version, &cipher);
    if (ret == 0)
        ret = tf_ktls_probe(version, cipher, TF_KTLS_TX);
    if (ret == 0 && !f->cfg->test_ktls_tx_only)
        ret = tf_ktls_probe(version, cipher, TF_KTLS_RX);
    tf_trace(f, "ktls plan: version %#x cipher %d -> %d", version, cipher, ret);
    if (ret < 0) {
        if (f->cfg->ktls == TLSFLOW_KTLS_REQUIRE)
            return tf_err(TLSFLOW_E_KTLS_UNAVAILABLE, -ret);
        return tf_err(0, 0);     /* AUTO: userspace records, invisibly */
    }
    f->tx_path = PATH_SWITCHING;
    if (!f->cfg->test_ktls_tx_only) {
        f->rx_path = PATH_SWITCHING;
        tf_hs_whole_records(&f->hs, true);
    }
    return tf_err(0, 0);
}

int tf_flow_ktls_install(tlsflow *f, enum tf_ktls_dir dir)
{
    tf_ktls_secret s;
    int ret = 0;

    if (!f->kio && !(f->kio = calloc(1, sizeof(*f->kio))))
        return -ENOMEM;
    if (!f->ulp_attached) {
        ret = tf_ktls_attach(f->fd);
        if (ret < 0)
            return ret;
        f->ulp_attached = true;
    }
    ret = tf_hs_export_secret(f->hs.s, dir, &s);
    if (ret == 0)
        ret = tf_ktls_install(f->fd, dir, &s);
    tf_ktls_secret_wipe(&s);
    return ret;
}

/* The ULP goes on while the connection is surely ESTABLISHED: a peer that
 * closes right after its last handshake flight would otherwise leave the
 * socket in CLOSE_WAIT, where the kernel refuses it.  Without keys it is
 * plain TCP. */
void tf_flow_ktls_attach_early(tlsflow *f)
{
    if (f->cfg->ktls == TLSFLOW_KTLS_OFF || f->ulp_attached || tf_ktls_probe_ulp() < 0)
        return;
    f->ulp_attached = tf_ktls_attach(f->fd) == 0;
}

/* A direction the kernel refuses stays in userspace under AUTO; REQUIRE fails. */
static bool switch_failed(tlsflow *f, int ret)
{
    if (f->cfg->ktls == TLSFLOW_KTLS_REQUIRE) {
        tf_flow_fail(f, tf_err(TLSFLOW_E_KTLS_UNAVAILABLE, -ret));
        return false;
    }
    return true;
}

/* Called with every userspace record flushed. */
bool tf_flow_ktls_tx_switch(tlsflow *f)
{
    int ret;

    f->tx_path = PATH_USER;
    ret = tf_flow_ktls_install(f, TF_KTLS_TX);
    tf_trace(f, "TX key to the kernel: %d", ret);
    if (ret < 0)
        return switch_failed(f, ret);
    f->tx_path = PATH_KERNEL;
    f->tx_sent = f->tx_pos = 0;    /* from here, positions count plaintext */
    /* GnuTLS must write no record now; what it would send (the answer to a
     * KeyUpdate read in userspace) goes through the kernel. */
    tf_hs_capture_handshake(&f->hs, &f->post_out);
    if (f->cfg->ktls_flags & TLSFLOW_KTLS_ZEROCOPY_RO)
        tf_trace(f, "TLS_TX_ZEROCOPY_RO: %d", tf_ktls_set_flag(f->fd, TF_KTLS_FLAG_ZEROCOPY_RO));
    return true;
}

/* Called with no record, not even part of one, left in userspace. */
bool tf_flow_ktls_rx_switch(tlsflow *f)
{
    int ret;

    f->rx_path = PATH_USER;
    tf_hs_whole_records(&f->hs, false);
    ret = tf_flow_ktls_install(f, TF_KTLS_RX);
    tf_trace(f, "RX key to the kernel: %d", ret);
    if (ret < 0)
        return switch_failed(f, ret);
    f->rx_path = PATH_KERNEL;
    tf_pool_release(&f->loop->in_pool, &f->in);
    tf_hs_kernel_rx_begin(&f->hs, &f->post_out);
    if (f->cfg->ktls_flags & TLSFLOW_KTLS_RX_NO_PAD)
        tf_trace(f, "TLS_RX_EXPECT_NO_PAD: %d", tf_ktls_set_flag(f->fd, TF_KTLS_FLAG_RX_NO_PAD));
    return true;
}
