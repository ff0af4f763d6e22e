/* SPDX-License-Identifier: MIT */
/*
 * ca_stats helpers and its writers. The writers format into a caller buffer
 * or a small stack buffer and never call malloc (nor printf, which may), so
 * they are safe at exit, inside an allocator and after heap corruption.
 *
 * Concurrency: functions act on caller-owned structs; no shared state.
 */
#include <ctxalloc/core.h>


void ca_stats_init(ca_stats *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->name = name;
}

/* Returns false when the counter found no room (counted in counters_dropped). */
static bool set_counter(ca_stats *s, const char *name, uint64_t value)
{
    for (unsigned i = 0; i < s->ncounters; i++) {
        if (strcmp(s->counters[i].name, name) == 0) {
            s->counters[i].value = value;
            return true;
        }
    }
    if (s->ncounters >= CA_STATS_MAX_COUNTERS) {
        s->counters_dropped++;
        return false;
    }
    s->counters[s->ncounters].name = name;
    s->counters[s->ncounters].value = value;
    s->ncounters++;
    return true;
}

void ca_stats_set_counter(ca_stats *s, const char *name, uint64_t value) { (void)set_counter(s, name, value); }

bool ca_stats_get_counter(const ca_stats *s, const char *name, uint64_t *value)
{
    for (unsigned i = 0; i < s->ncounters; i++) {
        if (strcmp(s->counters[i].name, name) == 0) {
            *value = s->counters[i].value;
            return true;
        }
    }
    return false;
}

unsigned ca_stats_merge(ca_stats *a, const ca_stats *b)
{
    a->bytes_in_use += b->bytes_in_use;
    a->bytes_reserved += b->bytes_reserved;
    a->bytes_committed += b->bytes_committed;
    a->peak_in_use += b->peak_in_use;
    a->allocs += b->allocs;
    a->frees += b->frees;
    a->failures += b->failures;
    a->counters_dropped += b->counters_dropped;
    unsigned dropped = 0;
    for (unsigned i = 0; i < b->ncounters && i < CA_STATS_MAX_COUNTERS; i++) {
        uint64_t v = 0;
        ca_stats_get_counter(a, b->counters[i].name, &v);
        if (!set_counter(a, b->counters[i].name, v + b->counters[i].value))
            dropped++;
    }
    return dropped;
}

/* A bounded output cursor: counts the full length, stores what fits. */
typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
} out;

static void emit_char(out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void emit(out *o, const char *s)
{
    while (*s)
        emit_char(o, *s++);
}

static void emit_u64(out *o, uint64_t v)
{
    char tmp[21];
    (void)ca_fmt_u64(tmp, sizeof tmp, v, 10);
    emit(o, tmp);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void emit_json_str(out *o, const char *s)
{
    emit_char(o, '"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            emit_char(o, '\\');
            emit_char(o, (char)c);
        } else if (c < 0x20) {
            emit(o, "\\u00");
            emit_char(o, "0123456789abcdef"[c >> 4]);
            emit_char(o, "0123456789abcdef"[c & 15]);
        } else {
            emit_char(o, (char)c);
        }
    }
    emit_char(o, '"');
}

/* The fixed fields in output order; one table so text and JSON agree. */
#define CA_STATS_FIELDS(X) \
    X(bytes_in_use)        \
    X(bytes_reserved)      \
    X(bytes_committed)     \
    X(peak_in_use)         \
    X(allocs)              \
    X(frees)               \
    X(failures)

static void format(const ca_stats *s, ca_stats_format fmt, out *o)
{
    const char *name = s->name ? s->name : "unnamed";
    if (fmt == CA_STATS_JSON) {
        emit(o, "{\"name\":");
        emit_json_str(o, name);
#define X(f)                 \
    emit(o, ",\"" #f "\":"); \
    emit_u64(o, s->f);
        CA_STATS_FIELDS(X)
#undef X
        emit(o, ",\"counters\":{");
        for (unsigned i = 0; i < s->ncounters && i < CA_STATS_MAX_COUNTERS; i++) {
            if (i)
                emit_char(o, ',');
            emit_json_str(o, s->counters[i].name);
            emit_char(o, ':');
            emit_u64(o, s->counters[i].value);
        }
        emit_char(o, '}');
        if (s->counters_dropped) {
            emit(o, ",\"counters_dropped\":");
            emit_u64(o, s->counters_dropped);
        }
        emit_char(o, '}');
    } else {
        emit(o, "name: ");
        emit(o, name);
        emit_char(o, '\n');
#define X(f)           \
    emit(o, #f ": ");  \
    emit_u64(o, s->f); \
    emit_char(o, '\n');
        CA_STATS_FIELDS(X)
#undef X
        for (unsigned i = 0; i < s->ncounters && i < CA_STATS_MAX_COUNTERS; i++) {
            emit(o, s->counters[i].name);
            emit(o, ": ");
            emit_u64(o, s->counters[i].value);
            emit_char(o, '\n');
        }
        if (s->counters_dropped) {
            emit(o, "counters_dropped: ");
            emit_u64(o, s->counters_dropped);
            emit_char(o, '\n');
        }
    }
}

size_t ca_stats_format_buf(const ca_stats *s, ca_stats_format fmt, char *buf, size_t cap)
{
    out o = {buf, cap, 0};
    format(s, fmt, &o);
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len;
}

int ca_stats_write_fd(const ca_stats *s, ca_stats_format fmt, int fd)
{
    /* Big enough for every field and counter with names up to ~100 bytes. */
    char buf[4096];
    size_t n = ca_stats_format_buf(s, fmt, buf, sizeof buf - 1);
    if (n >= sizeof buf - 1)
        return EOVERFLOW; /* names too long to format without allocating */
    if (fmt == CA_STATS_JSON)
        buf[n++] = '\n';
    return ca_write_all(fd, buf, n);
}
