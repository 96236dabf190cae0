/* tools/common.c — what tlsflow-serve, tlsflow-bench and tlsflow-client share:
 * option values, building a tlsflow_config from them, the self-signed
 * certificate of tlsflow-serve --self-signed, clocks. */
#ifndef TF_TOOLS_COMMON_H
#define TF_TOOLS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <tlsflow.h>

/* TLS options common to the tools; NULL/0 means "library default". */
#define TF_TOOL_MAX_CERTS 16
struct tf_tls_opts {
    const char *cert, *key;      /* servers: the first (default) pair */
    const char *more_certs[TF_TOOL_MAX_CERTS], *more_keys[TF_TOOL_MAX_CERTS];  /* servers: more pairs (SNI) */
    size_t      nmore;
    const char *ocsp;            /* servers: DER OCSP response stapled for the first pair */
    const char *more_ocsp[TF_TOOL_MAX_CERTS];   /* ... for the others */
    const char *ca;              /* clients */
    int         insecure;        /* clients: TLSFLOW_VERIFY_NONE */
    const char *priority;
    const char *alpn;            /* comma-separated */
    tlsflow_ktls_mode ktls;
    unsigned    ktls_flags;      /* TLSFLOW_KTLS_* opt-ins; 0 = none */
    int         no_resumption;   /* tlsflow_config_set_resumption(cfg, 0) */
    const char *ticket_key;      /* servers: tlsflow_config_set_ticket_key_file */
};

/* Builds a config; prints what went wrong (the file and why) to stderr and
 * returns -1 on failure. */
int tf_tool_config(tlsflow_config **out, tlsflow_role role, const struct tf_tls_opts *o);

/* "auto" | "require" | "off" */
int tf_parse_ktls(const char *s, tlsflow_ktls_mode *out);
/* A decimal unsigned within [min, max]; -1 when not. */
int tf_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* "host:port", "[v6]:port" or "host" (port def_port) into host/port buffers. */
int tf_split_hostport(const char *s, const char *def_port, char *host, size_t host_size,
                      char *port, size_t port_size);

/* "TLS1.3" for 0x0304 etc. */
const char *tf_version_name(unsigned v);

/* Makes an ECDSA P-256 key and a self-signed certificate for host (plus
 * localhost, 127.0.0.1 and ::1) into a fresh private directory.  Writes the
 * directory and the two file paths (each PATH_MAX) and returns 0, or prints
 * the reason and returns -1. */
int tf_self_signed(const char *host, char *dir, char *cert_path, char *key_path);
void tf_self_signed_cleanup(const char *dir, const char *cert_path, const char *key_path);

/* CLOCK_MONOTONIC in nanoseconds / seconds. */
uint64_t tf_now_ns(void);
double   tf_now_s(void);
/* This process's user+system CPU seconds (getrusage). */
double   tf_cpu_s(void);

/* Prints the peer's certificate chain (leaf first) of flow to f: per element
 * subject, issuer, validity, key, SHA-256 fingerprint of the DER.  Returns the
 * number of elements printed. */
size_t tf_print_peer_chain(FILE *f, const tlsflow *flow);

/* sendwatch.c: a look at a socket's sending, for send timeouts.  Sending
 * moved between two looks when the socket polled writable (nothing waits on
 * it) or the bytes its peer acknowledged grew. */
struct tf_send_look {
    int      is_writable;   /* POLLOUT: room in the send buffer */
    int      has_error;     /* POLLERR/POLLHUP: the operation will end by itself */
    uint64_t acked;         /* tcpi_bytes_acked (0: not TCP, or too old a kernel) */
};
int tf_send_look(int fd, struct tf_send_look *l);   /* 0, or -1 (errno) */

/* Prints "prog: what: tlsflow_error_message" to stderr. */
void tf_print_error(const char *prog, const char *what, tlsflow_error err);

#endif
