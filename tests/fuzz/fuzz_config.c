/* fuzz_config: configuration inputs from files and strings.
 *
 * Input: byte 0 picks the setter, the rest is its argument.
 *   0  certificate chain and key (split at the first "\n--KEY--\n", else in
 *      the middle), written to memfds: tlsflow_config_set_cert_file
 *   1  a CA bundle: tlsflow_config_set_ca_file
 *   2  a priority string: tlsflow_config_set_priority
 *   3  an ALPN list, one protocol per '\n' (zero-length ones too):
 *      tlsflow_config_set_alpn
 * A setting that is accepted is then used: the config is frozen and a session
 * made with it handshakes in memory with a default peer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"

#define SPLIT "\n--KEY--\n"

static int memfd_of(const uint8_t *p, size_t n, char *path, size_t cap)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);

    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

static char *cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static bool is_errno(int ret)
{
    return ret == 0 || ret == -EINVAL || ret == -ENOMEM || ret == -ENOENT || ret == -EBADMSG ||
           ret == -EKEYREJECTED;   /* certificate files: not PEM, key not the certificate's */
}

/* Uses an accepted config: freeze, session, in-memory handshake. */
static void use(tlsflow_config *cfg)
{
    fz_side a, b;
    tlsflow_config *other;

    if (tf_hs_config_freeze(cfg) < 0)
        return;
    other = cfg->role == TLSFLOW_SERVER ? fz_client_config(0x0304) : fz_server_config();
    if (fz_side_init(&a, cfg) < 0)
        return;
    if (fz_side_init(&b, other) == 0) {
        int ret = cfg->role == TLSFLOW_SERVER ? fz_handshake_pair(&b, &a) : fz_handshake_pair(&a, &b);
        if (ret == 0) {
            tlsflow_info info;
            tf_hs_info(&a.hs, &info);
        } else {
            tlsflow_error_message(tf_hs_error(&a.hs, ret));
        }
        fz_side_deinit(&b);
    }
    fz_side_deinit(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tlsflow_config *cfg;
    const uint8_t *p = data + 1;
    size_t n = size ? size - 1 : 0;
    char path1[64], path2[64], *s;
    int fd1, fd2, ret = -EINVAL;

    if (size == 0)
        return 0;
    fz_server_config();   /* the peers, made before any fuzzed state */
    switch (data[0] % 4) {
    case 0: {
        const uint8_t *cut = memmem(p, n, SPLIT, strlen(SPLIT));
        size_t n1 = cut ? (size_t)(cut - p) : n / 2;
        size_t skip = cut ? strlen(SPLIT) : 0;
        if (tlsflow_config_new(&cfg, TLSFLOW_SERVER) < 0)
            abort();
        fd1 = memfd_of(p, n1, path1, sizeof(path1));
        fd2 = memfd_of(p + n1 + skip, n - n1 - skip, path2, sizeof(path2));
        ret = tlsflow_config_set_cert_file(cfg, path1, path2);
        close(fd1);
        close(fd2);
        break;
    }
    case 1:
        if (tlsflow_config_new(&cfg, TLSFLOW_CLIENT) < 0)
            abort();
        fd1 = memfd_of(p, n, path1, sizeof(path1));
        ret = tlsflow_config_set_ca_file(cfg, path1);
        close(fd1);
        tlsflow_config_set_verify(cfg, TLSFLOW_VERIFY_OPTIONAL);
        break;
    case 2:
        if (tlsflow_config_new(&cfg, n & 1 ? TLSFLOW_SERVER : TLSFLOW_CLIENT) < 0)
            abort();
        s = cstr(p, n);
        ret = tlsflow_config_set_priority(cfg, s);
        free(s);
        break;
    default: {
        const char *list[16];
        size_t count = 0;
        s = cstr(p, n);
        for (char *t = s, *nl; t && count < 16; t = nl) {
            nl = strchr(t, '\n');
            if (nl)
                *nl++ = 0;
            list[count++] = t;
        }
        if (tlsflow_config_new(&cfg, count & 1 ? TLSFLOW_SERVER : TLSFLOW_CLIENT) < 0)
            abort();
        ret = tlsflow_config_set_alpn(cfg, list, count);
        /* A second set replaces the first without leaking it. */
        if (ret == 0 && count)
            ret = tlsflow_config_set_alpn(cfg, list, 1);
        free(s);
        break;
    }
    }
    if (!is_errno(ret))
        abort();
    if (ret == 0) {
        /* Whatever the input did not set comes from the test certificate. */
        if ((cfg->role == TLSFLOW_SERVER && !cfg->has_cert) ||
            (cfg->role == TLSFLOW_CLIENT && !cfg->has_ca))
            fz_add_cert(cfg);
        use(cfg);
    }
    tlsflow_config_free(cfg);
    return 0;
}
