/* rlsync.c: placeholder, being written */
typedef int rw__placeholder_rlsync;
