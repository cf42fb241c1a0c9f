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

#include "ringway/cidr.h"
#include "ringway/common.h"

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

/* listen[].tls.certificates[]: a PEM chain (leaf first) and its key. */
typedef struct rw_tls_cert_cfg {
    char *cert_file; /* resolved against the config file's directory */
    char *key_file;
} rw_tls_cert_cfg;

/* services[].tls: the service's instances speak TLS (src/core/tls.c, client side). */
typedef struct rw_upstream_tls_cfg {
    char *sni;       /* the server name sent; NULL: the instance's host when it is a name */
    char *ca_file;   /* resolved; NULL: the system bundle (RW_TLS_SYSTEM_CA) */
    bool verify;     /* chain and host name (sni, else the instance's host), default true */
    char *cert_file; /* client certificate for upstream mTLS, with key_file (NULL: none) */
    char *key_file;
    int line;
    struct rw_tls_client *client; /* built at load; owned (rw_config_free) */
} rw_upstream_tls_cfg;

/* A listener's tls: (TLS 1.2/1.3 termination, src/core/tls.c). */
typedef struct rw_tls_cfg {
    rw_tls_cert_cfg *certs; /* chosen by SNI; the first is the default */
    size_t ncerts;
    int min_version;               /* 0: "1.2", 1: "1.3" */
    bool tickets;                  /* session_tickets.enabled, default true */
    uint32_t ticket_rotate_ms;     /* session_tickets.rotate, default 12h */
    char *ticket_key_file;         /* session_tickets.key_file (resolved), or NULL */
    char *client_ca_file;          /* mTLS: CAs for client certificates (resolved), or NULL */
    int client_verify;             /* enum rw_tls_client_verify: off (default), optional, required */
    uint32_t handshake_timeout_ms; /* handshake_timeout (0: http.client_header_timeout) */
    int line;
    struct rw_tls_server *server; /* built at load from the files; owned (rw_config_free) */
} rw_tls_cfg;

typedef struct rw_kv {
    char *name;
    char *value;
} rw_kv;

/* Filters: access checks run in a fixed phase order whatever order they are
 * written in (ip ACL, key_auth/jwt, group ACL, rate_limit). */
enum rw_filter_kind { RW_FILTER_KEY_AUTH = 1, RW_FILTER_JWT, RW_FILTER_ACL, RW_FILTER_RATE_LIMIT };
/* Where a credential is read from. */
enum rw_cred_from { RW_FROM_BEARER = 0, RW_FROM_HEADER, RW_FROM_QUERY, RW_FROM_COOKIE };
/* What a rate limit is keyed by (a combination is a bit set). */
enum rw_rl_key {
    RW_RLK_CONSUMER = 1u << 0, /* consumer id; client IP when no consumer was identified */
    RW_RLK_CRED = 1u << 1,     /* the API key or token presented; client IP when none */
    RW_RLK_IP = 1u << 2,
    RW_RLK_HEADER = 1u << 3, /* a header's value (empty when absent) */
    RW_RLK_ROUTE = 1u << 4,
};
enum rw_rl_scope { RW_RL_LOCAL = 0, RW_RL_GLOBAL };

typedef struct rw_jwt_key_cfg {
    int alg;      /* enum rw_jwt_alg */
    char *kid;    /* NULL: matches tokens of its alg with or without kid */
    char *secret; /* HS*: the secret bytes (secret, secret_env, secret_file, base64 decoded) */
    size_t secret_len;
    char *pem; /* RS/PS/ES/EdDSA: PEM text (pem or pem_file) */
    int line;
} rw_jwt_key_cfg;

typedef struct rw_jwt_cfg {
    int from;        /* enum rw_cred_from, default bearer (Authorization: Bearer) */
    char *from_name; /* header, query parameter or cookie name */
    rw_jwt_key_cfg *keys;
    size_t nkeys;
    char *jwks_file;
    char *jwks_url;
    char *jwks_ca_file;
    uint32_t jwks_refresh_ms; /* default 300000 */
    char *issuer;
    char **audiences;
    size_t naudiences;
    char **required_claims;
    size_t nrequired;
    uint32_t leeway_s;        /* default 0 */
    uint32_t max_age_s;       /* 0: not checked */
    bool require_exp;         /* default true */
    rw_kv *claims_to_headers; /* claim -> header; default sub -> X-User-ID */
    size_t nclaims;
    char *consumer_claim;   /* claim naming a consumer (by id, then name), or NULL */
    bool hide_credentials;  /* drop the token's header/parameter before forwarding */
    uint32_t cache_entries; /* verified-token cache per worker, default 4096; 0 = off */
} rw_jwt_cfg;

typedef struct rw_key_auth_cfg {
    int from;   /* RW_FROM_HEADER (default) or RW_FROM_QUERY */
    char *name; /* default "X-API-Key" (header) or "apikey" (query) */
    bool hide_credentials;
} rw_key_auth_cfg;

typedef struct rw_acl_cfg {
    char **allow_groups; /* the consumer must be in one of them (none: not checked) */
    size_t nallow_groups;
    char **deny_groups; /* refused when the consumer is in one of them */
    size_t ndeny_groups;
    rw_cidr *allow_ips; /* the client address must be in one (none: not checked) */
    size_t nallow_ips;
    rw_cidr *deny_ips;
    size_t ndeny_ips;
} rw_acl_cfg;

typedef struct rw_rate_limit_cfg {
    char *name;   /* table name: shared state survives reloads under it */
    uint32_t key; /* enum rw_rl_key bits */
    char *header; /* with RW_RLK_HEADER */
    double rate;  /* tokens per second */
    bool unlimited;
    uint32_t burst;     /* default: the N of "N/period" (at least 1) */
    uint32_t window_ms; /* the period of the rate as written (1000, 60000, 3600000) */
    bool tier;          /* take rate (and burst = N per period) from the consumer's tier */
    int scope;          /* enum rw_rl_scope */
    uint32_t max_keys;  /* buckets kept per limit, default 65536 */
    bool headers;       /* RateLimit-* on allowed responses too (default false) */
} rw_rate_limit_cfg;

typedef struct rw_filter_cfg {
    int kind; /* enum rw_filter_kind */
    int line;
    union {
        rw_jwt_cfg jwt;
        rw_key_auth_cfg key_auth;
        rw_acl_cfg acl;
        rw_rate_limit_cfg rate_limit;
    } u;
} rw_filter_cfg;

/* Where an instance came from. */
enum rw_inst_source { RW_SRC_CONFIG = 0, RW_SRC_DNS, RW_SRC_REDIS };

typedef struct rw_instance_cfg {
    char *
        address; /* "host:port" as written (config), "ip:port" (DNS) or as registered (Redis): its identity */
    char *host;  /* host part (name or literal) */
    char *authority; /* the Host header sent to it (preserve_host off): address, or the DNS name:port */
    uint16_t port;
    uint32_t weight;  /* >= 1, default 1 */
    rw_sockaddr addr; /* resolved at load time (first address), or by discovery */
    int source;       /* enum rw_inst_source */
    int line;
} rw_instance_cfg;

/* Where a service's instances come from besides instances: (discovery:). */
typedef struct rw_discovery_cfg {
    char *dns_name; /* dns: NAME:PORT, every A and AAAA record of NAME; NULL: none */
    uint16_t dns_port;
    uint32_t dns_weight;  /* weight of each DNS instance, default 1 */
    uint32_t interval_ms; /* re-resolve at least this often (and when the records' TTL ends), default 5000 */
    rw_sockaddr resolver; /* resolver: HOST:PORT, a DNS server to ask; has_resolver false: the system's */
    bool has_resolver;
    bool redis; /* redis: true: instances registered in the top-level redis: */
} rw_discovery_cfg;

enum rw_hc_type { RW_HC_HTTP = 0, RW_HC_TCP };

#define RW_HC_MAX_EXPECT 8

/* Active health checks of a service's instances (health_check:), run once
 * per node by the health thread. */
typedef struct rw_health_check_cfg {
    bool enabled;
    int type;             /* enum rw_hc_type, default http */
    char *path;           /* http: request target, default "/" */
    int method;           /* http: 0 GET (default), 1 HEAD */
    char *host;           /* http: Host header, default the instance's host:port */
    uint32_t interval_ms; /* default 5000 */
    uint32_t timeout_ms;  /* default 1000, less than the interval */
    uint32_t healthy;     /* consecutive passes that make an instance healthy, default 2 */
    uint32_t unhealthy;   /* consecutive failures that make it unhealthy, default 3 */
    uint32_t jitter_pct;  /* each interval is spread by up to this share, default 10 */
    uint16_t expect_lo[RW_HC_MAX_EXPECT], expect_hi[RW_HC_MAX_EXPECT]; /* default 200-399 */
    uint32_t nexpect;
} rw_health_check_cfg;

/* What counts as an instance failing (outlier.on and retries.on). */
enum {
    RW_FAILON_CONNECT = 1u << 0, /* connect_failure: no connection */
    RW_FAILON_RESET = 1u << 1,   /* reset: the connection broke or closed before a full response head */
    RW_FAILON_TIMEOUT = 1u << 2, /* timeout: connect or first byte */
    RW_FAILON_5XX = 1u << 3,     /* 5xx: any 5xx status (outlier only) */
    RW_FAILON_502 = 1u << 4,     /* 502, 503, 504 (retries only) */
    RW_FAILON_503 = 1u << 5,
    RW_FAILON_504 = 1u << 6,
};

/* Passive outlier detection (outlier:): consecutive failures eject an
 * instance node-wide for a while. */
typedef struct rw_outlier_cfg {
    bool enabled;
    uint32_t consecutive_failures; /* default 5 */
    uint32_t base_ejection_ms;     /* default 30000; the n-th ejection in a row lasts n times this */
    uint32_t max_ejection_ms;      /* default 300000 */
    uint32_t max_ejected_percent;  /* default 50 (at least one instance of two or more) */
    uint32_t on;                   /* RW_FAILON_* bits, default connect_failure, reset, timeout, 5xx */
} rw_outlier_cfg;

#define RW_MAX_ATTEMPTS 10

/* Retries (retries:): which failed attempts are tried again, how often, how
 * soon, and the budget that keeps retries from multiplying an outage. */
typedef struct rw_retries_cfg {
    uint32_t attempts;   /* tries in all, the first included: default 2, at most RW_MAX_ATTEMPTS */
    uint32_t on;         /* RW_FAILON_* bits, default connect_failure */
    uint32_t backoff_ms; /* base of the jittered exponential wait before a retry, default 0 (at once) */
    uint32_t budget_pct; /* retries in flight at most this share of the service's requests, default 20 */
    uint32_t budget_min; /* ... but always this many, default 3 (per worker) */
    bool non_idempotent; /* retry_non_idempotent: also POST, PATCH (bodiless ones) after a send */
} rw_retries_cfg;

typedef struct rw_service_cfg {
    char *name;
    int lb;                         /* enum rw_lb_policy, default round_robin */
    int hash_on;                    /* enum rw_hash_on, with lb: hash (default ip) */
    char *hash_key;                 /* header or cookie name for hash_on header:/cookie: */
    uint32_t connect_timeout_ms;    /* default 5000 */
    uint32_t first_byte_timeout_ms; /* default 60000: request sent -> response head */
    uint32_t total_timeout_ms;      /* default 0 = none: whole exchange */
    uint32_t queue_timeout_ms;      /* default 0 = the connect timeout: longest wait for a connection slot */
    uint32_t max_conns;             /* default 1024 open conns per instance per worker; 0 = no cap */
    uint32_t keepalive_max_idle;    /* default 64 idle conns per instance per worker */
    uint32_t keepalive_idle_timeout_ms; /* default 60000 */
    rw_instance_cfg *instances;
    size_t ninstances;
    rw_filter_cfg *filters; /* applied to every route of the service */
    size_t nfilters;
    rw_health_check_cfg health_check;
    rw_outlier_cfg outlier;
    rw_retries_cfg retries;
    rw_discovery_cfg discovery;
    uint32_t max_requests;    /* requests in flight or queued per instance per worker; 0 = no cap (default) */
    rw_upstream_tls_cfg *tls; /* NULL: plain TCP */
    int line;
} rw_service_cfg;

typedef struct rw_path_cfg {
    int kind; /* enum rw_path_kind */
    char *value;
    regex_t *re; /* compiled (REG_EXTENDED) when kind == RW_PATH_REGEX */
} rw_path_cfg;

/* A header or query-parameter predicate. YAML: `Name: "v"` (exact),
 * `Name: {regex: "^v[0-9]+$"}` or `Name: {present: true}`. */
typedef struct rw_kv_match {
    char *name;
    char *value;
    int kind; /* enum rw_value_kind */
    regex_t *re;
} rw_kv_match;

typedef struct rw_respond_cfg {
    int status; /* 200..599 (1xx is refused at load) */
    rw_kv *headers;
    size_t nheaders;
    char *body; /* may contain NUL bytes: use body_len */
    size_t body_len;
} rw_respond_cfg;

typedef struct rw_route_cfg {
    char *name;
    char **hosts; /* exact ("api.example.com") or leading wildcard ("*.example.com"); lower-cased */
    size_t nhosts;
    uint32_t methods;   /* bit (1u << enum rw_http_method); 0 = any */
    rw_path_cfg *paths; /* none = every path */
    size_t npaths;
    rw_kv_match *headers;
    size_t nheaders;
    rw_kv_match *query;
    size_t nquery;
    char *strip_path;   /* prefix removed before forwarding, or NULL */
    char *rewrite_from; /* regex source, or NULL */
    regex_t *rewrite_re;
    char *rewrite_to;   /* replacement with $1..$9 */
    bool preserve_host; /* forward the client's Host (default false: the instance's host:port) */
    char *service;      /* service name, NULL for respond routes */
    int service_index;  /* index into rw_config.services, -1 for respond routes */
    bool has_respond;
    rw_respond_cfg respond;
    bool https_redirect;    /* on a plain listener: 308 to https://host[:TLS port]/target, before filters */
    char *hsts;             /* Strict-Transport-Security value (TLS connections only), or NULL */
    rw_str hsts_line;       /* "Strict-Transport-Security: <hsts>\r\n" (empty when unset) */
    rw_filter_cfg *filters; /* as written; effective list = global + service + route */
    size_t nfilters;
    int line;
} rw_route_cfg;

enum rw_alog_format { RW_ALOG_JSON = 0, RW_ALOG_TEXT };

/* The access log (access_log:, --access-log): one line per request. */
typedef struct rw_access_log_cfg {
    char *path;          /* "stdout" (default), "stderr", "off" or a file (static or arena) */
    int format;          /* enum rw_alog_format, default json */
    uint32_t sample_ppm; /* share of requests answered below 400 that are logged, per million (default all) */
    bool errors_only;    /* only answers of 400 and more, and requests without an answer */
} rw_access_log_cfg;

/* The request id: read from clients, sent upstream, returned on every response. */
typedef struct rw_request_id_cfg {
    char *header;      /* its header name (default "X-Request-Id"; static or arena) */
    size_t header_len; /* strlen(header) */
    bool enabled;      /* false: none is kept, made, sent or returned */
} rw_request_id_cfg;

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
    char *url;                 /* NULL when no redis section */
    uint32_t sync_interval_ms; /* default 100 */
    int on_failure;            /* enum rw_redis_failure */
} rw_redis_cfg;

typedef struct rw_tier_cfg {
    char *name;
    double rate_per_sec; /* tokens per second */
    bool unlimited;
    uint32_t window_ms; /* the period written ("N/min": 60000): N is also the burst */
} rw_tier_cfg;

typedef struct rw_consumer_cfg {
    char *name;
    char *id; /* defaults to name */
    char **groups;
    size_t ngroups;
    char *tier;     /* NULL or a name in tiers */
    int tier_index; /* index into rw_config.tiers, -1 when tier is NULL */
    char **keys;    /* plain or "sha256:<64 hex>" */
    size_t nkeys;
    char **certs; /* client certificate SHA-256 fingerprints: 64 lower-case hex digits each
                     (written "sha256:<hex>", any case, colons allowed; normalised at load) */
    size_t ncerts;
    int line;
} rw_consumer_cfg;

typedef struct rw_config {
    char *source; /* file path or "<embedded>" */
    rw_sockaddr *listen;
    size_t nlisten;
    /* One per entry of the file's listen list (NULL: plain HTTP); NULL when
     * none has tls: or --listen replaced the list. */
    rw_tls_cfg **listen_tls;
    rw_tls_cfg **tls_all; /* the file's entries, kept for rw_config_free */
    size_t nlisten_tls;
    bool has_admin;
    rw_sockaddr admin;
    char *admin_token_env; /* admin.token_env: the variable holding the bearer token for POST /reload */
    char *admin_token;     /* its value at load (NULL: none); mutating admin requests need it */
    bool has_metrics_listen;
    rw_sockaddr metrics_listen; /* a read-only admin listener (/metrics, /status, /health, /ready) */
    uint32_t workers;           /* 0 = auto (CPUs in the affinity mask) */
    int io;                     /* enum rw_io_mode */
    uint32_t max_conns;         /* process-wide client connection cap, default 65536 */
    uint32_t drain_timeout_ms;  /* default 30000 */
    uint32_t shutdown_delay_ms; /* SIGTERM: /ready 503 while still serving this long, then drain; default 0 */
    bool watch_config;          /* reload when the config file changes (also --watch-config) */
    uint64_t source_hash;       /* FNV-1a of the file's bytes (rw_config_load_file; 0: not from a file) */
    char *upgrade_socket;       /* the upgrade (handover) socket's path, "off", or NULL: the default */
    rw_request_id_cfg request_id;
    rw_access_log_cfg access_log;
    bool trace_context; /* W3C traceparent: continue the client's trace or start one (default true) */
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
    rw_filter_cfg *filters; /* top-level: applied to every route */
    size_t nfilters;
    rw_cidr *trusted_proxies; /* peers whose X-Forwarded-For names the client */
    size_t ntrusted_proxies;
    uint32_t rate_limit_shard_keys; /* per-worker LRU cap of rate-limit keys, default 16384 */
    void *arena;                    /* private: owns all the memory above */
} rw_config;

/* The YAML compiled into the binary, used when no --config is given. */
extern const char rw_config_embedded_default[];

/* Loads and validates a YAML file. On success stores a new config in *out and
 * returns 0; on failure returns -1 and writes "file:line: what is wrong" to err. */
int rw_config_load_file(const char *path, rw_config **out, char *err, size_t errlen);

/* Same as rw_config_load_file for an in-memory document; name is used in errors. */
int rw_config_load_string(const char *yaml, size_t len, const char *name, rw_config **out, char *err,
                          size_t errlen);

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
