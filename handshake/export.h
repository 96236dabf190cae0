/* handshake/export.h — one direction's record state out of a GnuTLS session,
 * in the form ktls/ installs.  (To be folded into handshake/handshake.h.) */
#ifndef TF_HS_EXPORT_H
#define TF_HS_EXPORT_H

#include <gnutls/gnutls.h>

#include "ktls/ktls.h"

/* Fills *out with the key, IV and next sequence number GnuTLS holds for dir
 * (TF_KTLS_RX: what we read, TF_KTLS_TX: what we write), after the handshake.
 * 0, -EOPNOTSUPP for a version or cipher the kernel has no form for
 * (TLS <= 1.1, CBC, AES-CCM-8 ...), -EINVAL for a bad argument, -EIO when GnuTLS
 * refuses or hands back sizes that do not match the cipher.  *out is wiped on
 * every error. */
int tf_hs_export_secret(gnutls_session_t s, enum tf_ktls_dir dir, tf_ktls_secret *out);

#endif
