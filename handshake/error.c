/* tlsflow_error_message: every code, its detail in words. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "handshake/handshake.h"

static __thread char msg[512];

static const char *certificate_reason(int status)
{
    gnutls_datum_t out = { NULL, 0 };

    if (gnutls_certificate_verification_status_print((unsigned)status, GNUTLS_CRT_X509, &out, 0) < 0 ||
        !out.data)
        return NULL;
    snprintf(msg, sizeof(msg), "certificate rejected: %s", (const char *)out.data);
    gnutls_free(out.data);
    return msg;
}

TLSFLOW_PUBLIC const char *tlsflow_error_message(tlsflow_error err)
{
    const char *name, *sname;
    char ebuf[128];

    if (err.code == 0)
        return "no error";
    switch (err.code) {
    case TLSFLOW_E_SYSTEM:
        snprintf(msg, sizeof(msg), "system error: %s (errno %d)",
                 strerror_r(err.detail, ebuf, sizeof(ebuf)), err.detail);
        return msg;
    case TLSFLOW_E_TLS:
        snprintf(msg, sizeof(msg), "TLS error: %s (GnuTLS %d)", gnutls_strerror(err.detail), err.detail);
        return msg;
    case TLSFLOW_E_ALERT:
        name = gnutls_alert_get_name((gnutls_alert_description_t)err.detail);
        sname = gnutls_alert_get_strname((gnutls_alert_description_t)err.detail);
        snprintf(msg, sizeof(msg), "the peer sent a fatal alert: %s (%s, %d)",
                 name ? name : "unknown alert", sname ? sname : "?", err.detail);
        return msg;
    case TLSFLOW_E_CERTIFICATE:
        if (err.detail == GNUTLS_CERT_INVALID)
            return "certificate rejected: the peer sent no certificate, or one that could not be used";
        if (certificate_reason(err.detail))
            return msg;
        snprintf(msg, sizeof(msg), "certificate rejected (status 0x%x)", (unsigned)err.detail);
        return msg;
    case TLSFLOW_E_TRUNCATED:
        return "the connection was closed without close_notify: data may be truncated";
    case TLSFLOW_E_BAD_RECORD:
        if (err.detail)
            snprintf(msg, sizeof(msg), "bad record: %s", gnutls_strerror(err.detail));
        else
            snprintf(msg, sizeof(msg), "bad record: a record failed authentication or was malformed");
        return msg;
    case TLSFLOW_E_TIMEOUT:
        return "timed out";
    case TLSFLOW_E_CLOSED:
        return "the flow is already closed in that direction";
    case TLSFLOW_E_CANCELED:
        return "canceled: the flow was freed with the operation pending";
    case TLSFLOW_E_KTLS_UNAVAILABLE:
        snprintf(msg, sizeof(msg), "kernel TLS required but unavailable: %s (errno %d)",
                 strerror_r(err.detail, ebuf, sizeof(ebuf)), err.detail);
        return msg;
    case TLSFLOW_E_REKEY:
        snprintf(msg, sizeof(msg),
                 "the TLS key had to change and this kernel cannot take a new one (TLS 1.3 "
                 "rekey needs Linux 6.14 or later): %s (errno %d)",
                 strerror_r(err.detail, ebuf, sizeof(ebuf)), err.detail);
        return msg;
    case TLSFLOW_E_RESOLVE:
        snprintf(msg, sizeof(msg), "host name lookup failed: %s", gai_strerror(err.detail));
        return msg;
    }
    snprintf(msg, sizeof(msg), "unknown error code %d (detail %d)", (int)err.code, err.detail);
    return msg;
}
