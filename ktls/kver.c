/* ktls/kver.c — the one place that reads the kernel version, for what a probe
 * cannot find out without side effects.  Everything else is probed (probe.c).
 *
 * TLS 1.3 rekey: a second setsockopt(TLS_TX/TLS_RX) on a socket that already
 * has a key.  Before Linux 6.14 the kernel refuses it with EBUSY ("we don't
 * support set crypto info more than one time").  The series "tls: implement
 * key updates for TLS1.3" (Sabrina Dubroca, merged for 6.14) accepts it for
 * TLS 1.3 only, and pauses decryption after delivering a KeyUpdate until the
 * new TLS_RX key is set (reads fail with EKEYEXPIRED meanwhile).  Probing it
 * would need a live keyed socket and a KeyUpdate, so we go by the version.
 * TLS 1.2 has no KeyUpdate and the kernel never rekeys it: always 0. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "ktls/ktls.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned kmajor, kminor;   /* 0.0 when uname failed or did not parse */

int tf_ktls_kver_parse(const char *release, unsigned *major, unsigned *minor)
{
    char *end;
    unsigned long maj, min;

    if (!release || !major || !minor || *release < '0' || *release > '9')
        return -EINVAL;
    maj = strtoul(release, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9')
        return -EINVAL;
    min = strtoul(end + 1, &end, 10);
    if (maj > 0xffff || min > 0xffff)
        return -EINVAL;
    *major = (unsigned)maj;
    *minor = (unsigned)min;
    return 0;
}

static void read_kver(void)
{
    struct utsname u;

    /* On failure both stay 0: no rekey, the safe answer. */
    if (uname(&u) == 0)
        tf_ktls_kver_parse(u.release, &kmajor, &kminor);
}

static int at_least(unsigned major, unsigned minor)
{
    pthread_once(&once, read_kver);
    return kmajor > major || (kmajor == major && kminor >= minor);
}

int tf_ktls_has_rekey(unsigned version)
{
    return version == TLS_1_3_VERSION && at_least(6, 14);
}
