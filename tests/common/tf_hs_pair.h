/* Two handshake sessions over buffers (hs_pair.c): tf_hs_pair_init makes a
 * client (server name "localhost", tickets cached under key) and a server
 * session, tf_hs_pair_handshake runs both to the end (fails the test
 * otherwise), tf_hs_pump moves what one end wrote into the other's input. */
#ifndef TF_HS_PAIR_H
#define TF_HS_PAIR_H

#include "handshake/handshake.h"

typedef struct {
    tf_session hs;
    tf_buf     in, out;
    bool       eof, done;
} tf_hs_end;

void tf_hs_pair_init(tf_hs_end *c, tf_hs_end *s, const tlsflow_config *ccfg,
                     const tlsflow_config *scfg, const char *key);
void tf_hs_pair_handshake(tf_hs_end *c, tf_hs_end *s);
void tf_hs_pump(tf_hs_end *from, tf_hs_end *to);
void tf_hs_pair_free(tf_hs_end *c, tf_hs_end *s);

#endif
