// The public header compiles as C++ and its types are usable there.
#include <tlsflow.h>

extern "C" void tf_cxx_cb(tlsflow *flow, const tlsflow_result *res, void *arg);
extern "C" void tf_cxx_cb(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    (void)flow;
    (void)res;
    (void)arg;
}

int main()
{
    tlsflow_error err = { TLSFLOW_E_TIMEOUT, 0 };
    tlsflow_info info = tlsflow_info();
    tlsflow_cb *cb = tf_cxx_cb;
    tlsflow_ktls_mode mode = TLSFLOW_KTLS_AUTO;
    (void)cb;
    (void)mode;
    (void)info;
    return tlsflow_error_message(err)[0] == 0;
}
