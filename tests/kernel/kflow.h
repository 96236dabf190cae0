/* A tlsflow server and client on one loop echoing a checked byte stream, for
 * the kernel-TLS tests. */
#ifndef TF_KFLOW_H
#define TF_KFLOW_H

#include <stddef.h>
#include <tlsflow.h>

typedef struct {
    const char       *priority;      /* client priority string (NULL: default) */
    tlsflow_ktls_mode ktls;          /* for both sides */
    size_t            bytes;         /* echoed through the server */
    int               close_from_server;
    /* results */
    tlsflow_info      cli, srv;      /* copied at open; strings not kept */
    char              cipher[32];
    int               open_error;    /* tlsflow_errcode of a failed open, 0 if none */
    int               ok;
} kflow_run;

void kflow_echo(kflow_run *run);
int  kflow_expect_ktls(void);        /* TLSFLOW_EXPECT_KTLS=1 */
int  kflow_kernel_has_tls(void);     /* the tls ULP attaches here */

#endif
