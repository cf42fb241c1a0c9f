/* registry.h - the Redis service registry's entries and its command line
 * (ringway register / deregister); the watcher that reads it is a
 * discovery source (discovery.h). */
#ifndef RINGWAY_REGISTRY_H
#define RINGWAY_REGISTRY_H

#include <stddef.h>

#include "ringway/config.h"

/* Parses a registry member ("IP:PORT" or "[IPv6]:PORT", optionally
 * ";weight=N") of len bytes into out; the canonical address is written to
 * addr (out->address and out->authority point there). 0, or -1 with why. */
int rw_registry_parse_member(const char *s, size_t len, rw_instance_cfg *out, char *addr, size_t addr_cap,
                             char *why, size_t why_cap);

/* Runs "ringway register ..." or "ringway deregister ..." (argv[0] is the
 * subcommand); returns the process exit status. */
int rw_registry_main(int argc, char **argv);

#endif
