/* instset.c - immutable, reference-counted instance arrays (instset.h). */
#include <stdlib.h>
#include <string.h>

#include "ringway/instset.h"

static size_t str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static char *str_put(char **at, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = *at;
    memcpy(p, s, n);
    *at += n;
    return p;
}

rw_instset *rw_instset_new(const rw_instance_cfg *v, uint32_t n, const char *why)
{
    size_t strings = 0;
    for (uint32_t i = 0; i < n; i++)
        strings += str_size(v[i].address) + str_size(v[i].host) + str_size(v[i].authority);
    rw_instset *s = calloc(1, sizeof(*s) + (size_t)n * sizeof(rw_instance_cfg) + strings);
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->n = n;
    if (n == 0 && why != NULL) {
        strncpy(s->why, why, sizeof(s->why) - 1);
        s->why[sizeof(s->why) - 1] = '\0';
    }
    char *at = (char *)(s->v + n);
    for (uint32_t i = 0; i < n; i++) {
        s->v[i] = v[i];
        s->v[i].address = str_put(&at, v[i].address);
        s->v[i].host = str_put(&at, v[i].host);
        s->v[i].authority = str_put(&at, v[i].authority != NULL ? v[i].authority : v[i].address);
    }
    return s;
}

void rw_instset_ref(rw_instset *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void rw_instset_unref(rw_instset *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

bool rw_instset_same(const rw_instset *a, const rw_instset *b)
{
    if (a->n != b->n || (a->n == 0 && strcmp(a->why, b->why) != 0))
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].address, b->v[i].address) != 0 || a->v[i].weight != b->v[i].weight ||
            strcmp(a->v[i].authority, b->v[i].authority) != 0)
            return false;
    return true;
}

static int by_address(const void *a, const void *b)
{
    return strcmp(((const rw_instance_cfg *)a)->address, ((const rw_instance_cfg *)b)->address);
}

void rw_instances_sort(rw_instance_cfg *v, uint32_t n)
{
    qsort(v, n, sizeof(*v), by_address);
}

int rw_instset_find(const rw_instset *s, const char *address)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].address, address) == 0)
            return (int)i;
    return -1;
}
