/* SPDX-License-Identifier: MIT */
/* Helpers of libsource's tests: /proc/self/smaps lookups for one address. */
#ifndef SOURCE_TEST_H
#define SOURCE_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Copy the value of `field` ("Rss:", "VmFlags:", "Locked:", "KernelPageSize:")
 * of the mapping holding p into out; the mapping's header line (with its
 * name) into hdr when not NULL. Returns false when not found. */
static inline void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static inline bool smaps_field(const void *p, const char *field, char *out, size_t cap, char *hdr,
                               size_t hcap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool inside = false, found = false;
    if (!f)
        return false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            if (inside && hdr)
                copy_str(hdr, hcap, line);
            continue;
        }
        if (inside && strncmp(line, field, strlen(field)) == 0) {
            copy_str(out, cap, line + strlen(field));
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static inline long smaps_kib(const void *p, const char *field)
{
    char v[128];
    long k = -1;
    if (smaps_field(p, field, v, sizeof v, NULL, 0))
        sscanf(v, "%ld", &k);
    return k;
}

static inline bool smaps_has_flag(const void *p, const char *flag)
{
    char v[256];
    if (!smaps_field(p, "VmFlags:", v, sizeof v, NULL, 0))
        return false;
    char pat[8];
    snprintf(pat, sizeof pat, " %s", flag);
    return strstr(v, pat) != NULL;
}

/* HugePages_Free of the default size from /proc/meminfo. */
static inline long meminfo_value(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) {
            sscanf(line + strlen(key), "%ld", &v);
            break;
        }
    fclose(f);
    return v;
}

static inline long hugepages_free(const char *size_dir)
{
    char path[256];
    long v = 0;
    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/%s/free_hugepages", size_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1 /* ASan's mlock interceptor does nothing */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#endif
