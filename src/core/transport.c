/* transport.c - the transport kinds beside plain sockets (transport.h). None
 * is built in yet: TLS fills its slot when it lands. */
#include "ringway/transport.h"

const rw_transport_ops *rw_transport_kinds[RW_TRANSPORT__COUNT];
