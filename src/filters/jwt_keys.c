/* jwt_keys.c: placeholder, being written */
typedef int rw__placeholder_jwt_keys;
