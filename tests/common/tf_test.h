/* Shared helpers for tlsflow's tests: certificate paths, peer processes,
 * checksummed data.  See the sources beside this header. */
#ifndef TF_TEST_H
#define TF_TEST_H

#include <stddef.h>
#include <stdint.h>

/* Certificates made by tests/common/make-certs.sh into TF_TEST_CERTS. */
#define TF_CERT(name) TF_TEST_CERTS "/" name
#define TF_CA             TF_CERT("ca.pem")
#define TF_RSA_CERT       TF_CERT("server-rsa.pem")
#define TF_RSA_KEY        TF_CERT("server-rsa-key.pem")
#define TF_ECDSA_CERT     TF_CERT("server-ecdsa.pem")
#define TF_ECDSA_KEY      TF_CERT("server-ecdsa-key.pem")
#define TF_EXPIRED_CERT   TF_CERT("expired.pem")
#define TF_EXPIRED_KEY    TF_CERT("expired-key.pem")
#define TF_WRONGHOST_CERT TF_CERT("wronghost.pem")
#define TF_WRONGHOST_KEY  TF_CERT("wronghost-key.pem")
#define TF_UNTRUSTED_CA   TF_CERT("untrusted-ca.pem")
#define TF_UNTRUSTED_CERT TF_CERT("untrusted.pem")
#define TF_UNTRUSTED_KEY  TF_CERT("untrusted-key.pem")
#define TF_CLIENT_CERT    TF_CERT("client.pem")
#define TF_CLIENT_KEY     TF_CERT("client-key.pem")

/* Exit code CTest reads as "skipped". */
#define TF_SKIP 77

#endif
