/* Shared by the fuzz targets: an in-memory certificate, configurations built
 * around it, two tf_sessions talking over ring-owned-style tf_buf's, and the
 * transfer of one side's output into the other's input. */
#ifndef TF_FUZZ_COMMON_H
#define TF_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handshake/handshake.h"

#define FZ_NAME "fuzz.test"

/* One side of an in-memory connection: what ring/ would own for a flow. */
typedef struct {
    tf_session hs;
    tf_buf     in, out, post_out;
    bool       eof;
    bool       is_init;
    unsigned   key_updates_in;   /* KeyUpdates read, once fz_count_key_updates is on */
} fz_side;

/* Configurations made once per process.  version: 0x0304 (default) or 0x0303. */
tlsflow_config *fz_server_config(void);
tlsflow_config *fz_client_config(unsigned version);

/* Servers: the test certificate and key; clients: trust in it. */
void fz_add_cert(tlsflow_config *cfg);

/* 0 or a GnuTLS error. */
int  fz_side_init(fz_side *s, tlsflow_config *cfg);
void fz_side_deinit(fz_side *s);

/* Appends n bytes to a buffer; false when out of memory. */
bool fz_buf_put(tf_buf *b, const void *p, size_t n);
/* Moves everything in from->out to to->in. */
void fz_transfer(fz_side *from, fz_side *to);

/* Counts, in s->key_updates_in, the KeyUpdates s's GnuTLS accepts from its
 * peer (for a side that is not under test: it takes the session's hook). */
void fz_count_key_updates(fz_side *s);

/* Drives both handshakes until done: 0, or the first GnuTLS error. */
int fz_handshake_pair(fz_side *cli, fz_side *srv);

/* Called by the replay driver before the first input (the libFuzzer build
 * defines LLVMFuzzerInitialize instead when the target needs one). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
