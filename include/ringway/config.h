/* config.h - the declarative configuration: types, YAML loading, validation.
 * A loaded rw_config is an immutable snapshot: every string, array and compiled
 * regex in it is owned by the config and freed by rw_config_free. */
#ifndef RINGWAY_CONFIG_H
#define RINGWAY_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum rw_io_mode { RW_IO_AUTO = 0, RW_IO_URING, RW_IO_EPOLL };
enum rw_lb_policy { RW_LB_ROUND_ROBIN = 0, RW_LB_LEAST_CONN, RW_LB_P2C, RW_LB_HASH };
enum rw_hash_on { RW_HASH_IP = 0, RW_HASH_HEADER, RW_HASH_COOKIE };
enum rw_path_kind { RW_PATH_EXACT = 0, RW_PATH_PREFIX, RW_PATH_REGEX };
enum rw_value_kind { RW_VALUE_EXACT = 0, RW_VALUE_REGEX, RW_VALUE_PRESENT };
enum rw_redis_failure { RW_REDIS_LOCAL = 0, RW_REDIS_ALLOW, RW_REDIS_DENY };

/* A socket address to listen on or connect to, with its text as written. */
typedef struct rw_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80];
} rw_sockaddr;

typedef struct rw_instance_cfg {
    char *address;        /* "host:port" as written */
    char *host;           /* host part (name or literal), used for the Host header */
    uint16_t port;
    uint32_t weight;      /* >= 1, default 1 */
    rw_sockaddr addr;     /* resolved at load time (first address) */
    int line;
} rw_instance_cfg;

typedef struct rw_service_cfg {
    char *name;
    int lb;               /* enum rw_lb_policy, default round_robin */
    int hash_on;          /* enum rw_hash_on, with lb: hash (default ip) */
    char *hash_key;       /* header or cookie name for hash_on header:/cookie: */
    uint32_t connect_timeout_ms;    /* default 5000 */
    uint32_t first_byte_timeout_ms; /* default 60000: request sent -> response head */
    uint32_t total_timeout_ms;      /* default 0 = none: whole exchange */
    uint32_t keepalive_max_idle;    /* default 64 idle conns per instance per worker */
    uint32_t keepalive_idle_timeout_ms; /* default 60000 */
    rw_instance_cfg *instances;
    size_t ninstances;
    int line;
} rw_service_cfg;

typedef struct rw_path_cfg {
    int kind;             /* enum rw_path_kind */
    char *value;
    regex_t *re;          /* compiled (REG_EXTENDED) when kind == RW_PATH_REGEX */
} rw_path_cfg;

/* A header or query-parameter predicate. YAML: `Name: "v"` (exact),
 * `Name: {regex: "^v[0-9]+$"}` or `Name: {present: true}`. */
typedef struct rw_kv_match {
    char *name;
    char *value;
    int kind;             /* enum rw_value_kind */
    regex_t *re;
} rw_kv_match;

typedef struct rw_kv {
    char *name;
    char *value;
} rw_kv;

typedef struct rw_respond_cfg {
    int status;           /* 200..599 (1xx is refused at load) */
    rw_kv *headers;
    size_t nheaders;
    char *body;           /* may contain NUL bytes: use body_len */
    size_t body_len;
} rw_respond_cfg;

typedef struct rw_route_cfg {
    char *name;
    char **hosts;         /* exact ("api.example.com") or leading wildcard ("*.example.com"); lower-cased */
    size_t nhosts;
    uint32_t methods;     /* bit (1u << enum rw_http_method); 0 = any */
    rw_path_cfg *paths;   /* none = every path */
    size_t npaths;
    rw_kv_match *headers;
    size_t nheaders;
    rw_kv_match *query;
    size_t nquery;
    char *strip_path;     /* prefix removed before forwarding, or NULL */
    char *rewrite_from;   /* regex source, or NULL */
    regex_t *rewrite_re;
    char *rewrite_to;     /* replacement with $1..$9 */
    bool preserve_host;   /* forward the client's Host (default false: the instance's host:port) */
    char *service;        /* service name, NULL for respond routes */
    int service_index;    /* index into rw_config.services, -1 for respond routes */
    bool has_respond;
    rw_respond_cfg respond;
    int line;
} rw_route_cfg;

typedef struct rw_http_cfg {
    uint32_t client_header_timeout_ms; /* default 10000 */
    uint32_t client_body_timeout_ms;   /* default 60000: max gap between body reads */
    uint32_t keepalive_timeout_ms;     /* default 75000 */
    uint32_t send_timeout_ms;          /* default 60000: max gap while writing to a client */
    uint64_t max_header_bytes;         /* default 16384 */
    uint64_t max_request_line;         /* default 8192 */
    uint64_t max_body_bytes;           /* default 10m; 0 = unlimited */
    uint32_t max_headers;              /* default 100 */
} rw_http_cfg;

typedef struct rw_redis_cfg {
    char *url;            /* NULL when no redis section */
    uint32_t sync_interval_ms; /* default 100 */
    int on_failure;       /* enum rw_redis_failure */
} rw_redis_cfg;

typedef struct rw_tier_cfg {
    char *name;
    double rate_per_sec;  /* tokens per second */
    bool unlimited;
} rw_tier_cfg;

typedef struct rw_consumer_cfg {
    char *name;
    char *id;             /* defaults to name */
    char **groups;
    size_t ngroups;
    char *tier;           /* NULL or a name in tiers */
    int tier_index;       /* index into rw_config.tiers, -1 when tier is NULL */
    char **keys;          /* plain or "sha256:<64 hex>" */
    size_t nkeys;
    int line;
} rw_consumer_cfg;

typedef struct rw_config {
    char *source;         /* file path or "<embedded>" */
    rw_sockaddr *listen;
    size_t nlisten;
    bool has_admin;
    rw_sockaddr admin;
    uint32_t workers;     /* 0 = auto (CPUs in the affinity mask) */
    int io;               /* enum rw_io_mode */
    uint32_t max_conns;   /* process-wide client connection cap, default 65536 */
    uint32_t drain_timeout_ms; /* default 30000 */
    rw_http_cfg http;
    rw_redis_cfg redis;
    rw_service_cfg *services;
    size_t nservices;
    rw_route_cfg *routes;
    size_t nroutes;
    rw_tier_cfg *tiers;
    size_t ntiers;
    rw_consumer_cfg *consumers;
    size_t nconsumers;
    void *arena;          /* private: owns all the memory above */
} rw_config;

/* The YAML compiled into the binary, used when no --config is given. */
extern const char rw_config_embedded_default[];

/* Loads and validates a YAML file. On success stores a new config in *out and
 * returns 0; on failure returns -1 and writes "file:line: what is wrong" to err. */
int rw_config_load_file(const char *path, rw_config **out, char *err, size_t errlen);

/* Same as rw_config_load_file for an in-memory document; name is used in errors. */
int rw_config_load_string(const char *yaml, size_t len, const char *name, rw_config **out,
                          char *err, size_t errlen);

/* Frees a config and everything it owns; NULL is allowed. */
void rw_config_free(rw_config *cfg);

/* Parses "250ms", "10s", "5m", "1h" (a bare number is ms) into milliseconds; 0 or -EINVAL. */
int rw_parse_duration_ms(const char *s, uint64_t *out);
/* Parses "512", "16k", "10m", "1g" (binary multiples) into bytes; 0 or -EINVAL. */
int rw_parse_size(const char *s, uint64_t *out);
/* Parses "N/s", "N/min", "N/hour" (also "N/m", "N/h") or "unlimited"; 0 or -EINVAL. */
int rw_parse_rate(const char *s, double *per_sec, bool *unlimited);
/* Parses "ADDR:PORT", "[V6]:PORT" or ":PORT" (all IPv4) into a numeric address;
 * no DNS. Returns 0 or -EINVAL. */
int rw_parse_sockaddr(const char *s, rw_sockaddr *out);
/* Writes the canonical "1.2.3.4:80" / "[::1]:80" form of a->ss into a->text. */
void rw_sockaddr_format(rw_sockaddr *a);

#endif
