/* report.c - the node-wide upstream state as /status JSON and Prometheus
 * series (health.h). Control thread, at request time: reads atomics only. */
#include <stdio.h>
#include <string.h>

#include "ringway/common.h"
#include "ringway/health.h"
#include "ringway/instset.h"
#include "ringway/upstate.h"

/* snprintf that never runs past cap: returns the new length. */
#define APPEND(buf, n, cap, ...)                                                                             \
    do {                                                                                                     \
        if ((n) < (cap)) {                                                                                   \
            int w_ = snprintf((buf) + (n), (cap) - (n), __VA_ARGS__);                                        \
            (n) = w_ < 0 ? (cap) : RW_MIN((n) + (size_t)w_, (cap));                                          \
        }                                                                                                    \
    } while (0)

static const char *probe_text(int32_t code, char *b, size_t cap)
{
    if (code > 0)
        snprintf(b, cap, "%d", code);
    else if (code == 0)
        snprintf(b, cap, "\"connected\"");
    else
        snprintf(b, cap, "\"%s\"", strerror(-code));
    return b;
}

static const char *source_name(int s)
{
    return s == RW_SRC_DNS ? "dns" : s == RW_SRC_REDIS ? "redis" : "config";
}

size_t rw_health_status_json(const rw_snapshot *snap, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t now = rw_mono_ms();
    const rw_config *cfg = snap->cfg;
    APPEND(buf, n, cap, "\"upstreams\":[");
    for (size_t s = 0; s < cfg->nservices; s++) {
        const rw_service_cfg *sc = &cfg->services[s];
        const rw_svc_health *h = &snap->upstate[s];
        const rw_instset *set = snap->insts[s];
        uint32_t up = 0;
        for (uint32_t i = 0; i < h->n; i++)
            up += !rw_inst_down(h->inst[i], now);
        APPEND(buf, n, cap,
               "%s{\"service\":\"%s\",\"in_rotation\":%u,\"instances_total\":%u,\"panic\":%s,\"panics\":%llu,"
               "\"health_check\":%s,\"outlier\":%s,",
               s ? "," : "", sc->name, up, h->n, up == 0 && h->n > 0 ? "true" : "false",
               (unsigned long long)atomic_load(&h->svc->panics), sc->health_check.enabled ? "true" : "false",
               sc->outlier.enabled ? "true" : "false");
        if (set->n == 0) { /* why there is none (discovery) */
            APPEND(buf, n, cap, "\"why\":\"");
            for (const char *c = set->why; *c && n + 2 < cap; c++)
                if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
                    buf[n++] = *c;
            APPEND(buf, n, cap, "\",");
        }
        APPEND(buf, n, cap, "\"instances\":[");
        for (uint32_t i = 0; i < h->n; i++) {
            const rw_inst_state *st = h->inst[i];
            uint64_t until = atomic_load(&st->eject_until);
            uint64_t at = atomic_load(&st->last_probe_wall);
            char pb[80];
            APPEND(buf, n, cap,
                   "%s{\"address\":\"%s\",\"source\":\"%s\",\"weight\":%u,\"in_rotation\":%s,\"healthy\":%s,"
                   "\"ejected\":%s,\"ejected_for_ms\":%llu,\"ejections\":%llu,\"failure_streak\":%u,"
                   "\"checks\":{\"passed\":%llu,\"failed\":%llu,\"last\":%s,\"last_at_ms\":%llu}}",
                   i ? "," : "", st->address, source_name(set->v[i].source), set->v[i].weight,
                   rw_inst_down(st, now) ? "false" : "true", atomic_load(&st->healthy) ? "true" : "false",
                   until > now ? "true" : "false", (unsigned long long)(until > now ? until - now : 0),
                   (unsigned long long)atomic_load(&st->ejections), atomic_load(&st->streak),
                   (unsigned long long)atomic_load(&st->probes_ok),
                   (unsigned long long)atomic_load(&st->probes_failed),
                   at ? probe_text(atomic_load(&st->last_probe), pb, sizeof(pb)) : "null",
                   (unsigned long long)at);
        }
        APPEND(buf, n, cap, "]}");
    }
    APPEND(buf, n, cap, "]");
    return n < cap ? n : cap - 1;
}

size_t rw_health_metrics(const rw_snapshot *snap, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t now = rw_mono_ms();
    const rw_config *cfg = snap->cfg;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"ringway_upstream_healthy", "gauge",
         "Whether the instance is in rotation (1): passing its health checks and not ejected."},
        {"ringway_upstream_ejected", "gauge", "Whether outlier detection has the instance ejected now (1)."},
        {"ringway_upstream_ejections_total", "counter", "Outlier ejections of the instance."},
        {"ringway_health_checks_total", "counter", "Active health checks of the instance, by result."},
        {"ringway_upstream_requests_total", "counter",
         "Attempts sent to the instance, by result (ok: an answer below 500; 5xx; failed: no answer)."},
    };
    for (size_t f = 0; f < RW_ARRAY_LEN(fam); f++) {
        APPEND(buf, n, cap, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
               fam[f].type);
        for (size_t s = 0; s < cfg->nservices; s++) {
            const rw_svc_health *h = &snap->upstate[s];
            for (uint32_t i = 0; i < h->n; i++) {
                const rw_inst_state *st = h->inst[i];
                const char *svc = cfg->services[s].name;
                switch (f) {
                case 0:
                    APPEND(buf, n, cap, "%s{service=\"%s\",instance=\"%s\"} %d\n", fam[f].name, svc,
                           st->address, !rw_inst_down(st, now));
                    break;
                case 1:
                    APPEND(buf, n, cap, "%s{service=\"%s\",instance=\"%s\"} %d\n", fam[f].name, svc,
                           st->address, atomic_load(&st->eject_until) > now);
                    break;
                case 2:
                    APPEND(buf, n, cap, "%s{service=\"%s\",instance=\"%s\"} %llu\n", fam[f].name, svc,
                           st->address, (unsigned long long)atomic_load(&st->ejections));
                    break;
                case 4:
                    APPEND(buf, n, cap,
                           "%s{service=\"%s\",instance=\"%s\",result=\"ok\"} %llu\n"
                           "%s{service=\"%s\",instance=\"%s\",result=\"5xx\"} %llu\n"
                           "%s{service=\"%s\",instance=\"%s\",result=\"failed\"} %llu\n",
                           fam[f].name, svc, st->address, (unsigned long long)rw_upstate_total(st, RW_UP_OK),
                           fam[f].name, svc, st->address, (unsigned long long)rw_upstate_total(st, RW_UP_5XX),
                           fam[f].name, svc, st->address,
                           (unsigned long long)rw_upstate_total(st, RW_UP_FAILED));
                    break;
                default:
                    APPEND(buf, n, cap,
                           "%s{service=\"%s\",instance=\"%s\",result=\"passed\"} %llu\n"
                           "%s{service=\"%s\",instance=\"%s\",result=\"failed\"} %llu\n",
                           fam[f].name, svc, st->address, (unsigned long long)atomic_load(&st->probes_ok),
                           fam[f].name, svc, st->address,
                           (unsigned long long)atomic_load(&st->probes_failed));
                }
            }
        }
    }
    APPEND(
        buf, n, cap,
        "# HELP ringway_upstream_panic_total Requests routed among all instances of a service because none "
        "was in rotation.\n# TYPE ringway_upstream_panic_total counter\n");
    for (size_t s = 0; s < cfg->nservices; s++)
        APPEND(buf, n, cap, "ringway_upstream_panic_total{service=\"%s\"} %llu\n", cfg->services[s].name,
               (unsigned long long)atomic_load(&snap->upstate[s].svc->panics));
    return n < cap ? n : cap - 1;
}
