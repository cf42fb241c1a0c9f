/* transport.c - the transport kinds beside plain sockets (transport.h):
 * TLS (src/core/tls.c). */
#include "ringway/transport.h"

extern const rw_transport_ops rw__tls_transport_ops;

const rw_transport_ops *rw_transport_kinds[RW_TRANSPORT__COUNT] = {
    [RW_TRANSPORT_TLS] = &rw__tls_transport_ops,
};
