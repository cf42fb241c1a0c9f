/* config_default.c - the configuration compiled into the binary, used when
 * ringway starts without --config. It must always load (tests/unit/test_config.c
 * checks it). Listening on both 0.0.0.0 and [::] relies on the listener setting
 * IPV6_V6ONLY on IPv6 sockets. */
#include "ringway/config.h"

const char rw_config_embedded_default[] =
    "# ringway built-in configuration (used when no --config is given)\n"
    "listen: [\"0.0.0.0:8080\", \"[::]:8080\"]\n"
    "admin: \"127.0.0.1:9901\"\n"
    "workers: auto\n"
    "io: auto\n"
    "\n"
    "routes:\n"
    "  - name: root\n"
    "    paths: [{exact: /}]\n"
    "    respond:\n"
    "      status: 200\n"
    "      headers: {Content-Type: application/json}\n"
    "      body: '{\"service\":\"ringway\",\"status\":\"ok\"}'\n"
    "\n"
    "  - name: not-found\n"
    "    respond:\n"
    "      status: 404\n"
    "      headers: {Content-Type: application/json}\n"
    "      body: '{\"error\":\"no route\"}'\n";
