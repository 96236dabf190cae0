/* An LD_PRELOAD shim for test_resolve.c: getaddrinfo for "slow.tlsflow.test"
 * takes 2 s (times TF_TIME_SCALE) and answers 127.0.0.1; every other name
 * goes to the real getaddrinfo. */
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SLOW_NAME "slow.tlsflow.test"
#define SLOW_MS 2000

typedef int gai_fn(const char *, const char *, const struct addrinfo *, struct addrinfo **);

/* test_resolve.c looks this up to tell that the shim is loaded. */
int tf_slow_gai_loaded(void);
int tf_slow_gai_loaded(void)
{
    return 1;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn *real = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
    struct addrinfo h;
    const char *scale = getenv("TF_TIME_SCALE");
    long ms = SLOW_MS * (scale && atoi(scale) > 1 ? atoi(scale) : 1);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    if (!real)
        return EAI_FAIL;
    if (!node || strcmp(node, SLOW_NAME) != 0)
        return real(node, service, hints, res);
    while (nanosleep(&ts, &ts) != 0)
        ;
    memset(&h, 0, sizeof(h));
    if (hints)
        h = *hints;
    h.ai_family = AF_INET;
    h.ai_flags = (h.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST;
    return real("127.0.0.1", service, &h, res);
}
