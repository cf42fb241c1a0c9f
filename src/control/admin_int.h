/* admin_int.h - private: the admin listener used by the control thread. */
#ifndef RINGWAY_ADMIN_INT_H
#define RINGWAY_ADMIN_INT_H

#include <time.h>

#include "ringway/control.h"

typedef struct rw_admin {
    rw_control_opts *ctl;
    int fd;
    time_t started;
} rw_admin;

void rw__admin_init(rw_admin *a, rw_control_opts *ctl, int fd);
/* Accepts and answers one admin request (short timeouts; never blocks long). */
void rw__admin_accept(rw_admin *a);
/* Reloads the config (SIGHUP and POST /reload); 0 or -1, message in msg. */
int rw__control_reload(rw_control_opts *o, char *msg, size_t msglen);

#endif
