/* SPDX-License-Identifier: MIT */
/* libbinned memory return: trim gives back the memory of freed blocks (RSS
 * drops), decay does it by age, empty blocks beyond the keep budget go back
 * at the next slow path, a class that takes back what it gave keeps more
 * (no decommit thrash), and trailing blocks are cut off the frontier. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "binned_internal.h"
#include "ca_test.h"

/* Under AddressSanitizer the process's RSS holds the sanitizer's own state
 * too: about 11 MiB stays resident after every block of these tests is
 * freed and trimmed (measured on this suite's 2-core machines, also before
 * the small tier's hardening), so the RSS bounds are checked in every other
 * build only. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif
#define NEED_RSS()                                                                                 \
    do {                                                                                           \
        if (!RSS_MEANINGFUL)                                                                       \
            cr_skip_test("RSS bounds are not meaningful under AddressSanitizer");                  \
    } while (0)

enum { N = 1 << 20 }; /* 1 Mi blocks of 64 B: 64 MiB */
static void *ptrs[N];

static void fill(ca_binned *b, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = ca_binned_alloc(b, size, 16);
        cr_assert_not_null(ptrs[i]);
        memset(ptrs[i], 1, size);
    }
}

static void drop(ca_binned *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ca_binned_free(b, ptrs[i]);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static ca_binned *inst(uint32_t decay_ms, size_t keep)
{
    memset(ptrs, 0, sizeof ptrs); /* resident before the first measurement */
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 30;
    o.decay_ms = decay_ms;
    o.empty_keep = keep;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    return b;
}

Test(binned_memory, trim_returns_memory)
{
    NEED_RSS();
    ca_binned *b = inst(CA_BINNED_DECAY_NEVER, (size_t)1 << 30);
    long rss0 = ca_test_rss_kib();
    fill(b, N, 64);
    long rss1 = ca_test_rss_kib();
    cr_assert_gt(rss1 - rss0, 60 * 1024, "RSS grew by %ld KiB only", rss1 - rss0);
    drop(b, N);
    long rss2 = ca_test_rss_kib();
    cr_assert_gt(rss2 - rss0, 60 * 1024, "keep budget large, decay never: memory stays until trim");
    ca_binned_trim(b);
    long rss3 = ca_test_rss_kib();
    cr_assert_lt(rss3 - rss0, 4 * 1024, "after trim RSS is still %ld KiB above the start", rss3 - rss0);
    ca_stats s;
    ca_binned_class_stats(b, 3, &s);
    cr_assert_eq(s.bytes_committed, 0);
    uint64_t frontier;
    cr_assert(ca_stats_get_counter(&s, "blocks", &frontier));
    cr_assert_eq(frontier, 0, "trailing blocks trimmed off the frontier");
    cr_assert_null(ca_binned_check(b));
    /* The memory comes back on demand. */
    fill(b, N / 4, 64);
    cr_assert_null(ca_binned_check(b));
    drop(b, N / 4);
    ca_binned_destroy(b);
}

Test(binned_memory, keep_budget_returns_at_next_slow_path)
{
    NEED_RSS();
    ca_binned *b = inst(CA_BINNED_DECAY_NEVER, CA_BINNED_EMPTY_KEEP_NONE);
    long rss0 = ca_test_rss_kib();
    fill(b, N, 64);
    drop(b, N);
    ca_binned_thread_flush(b);
    long rss1 = ca_test_rss_kib();
    /* Only the recycler's bound (256 KiB) and partial blocks stay. */
    cr_assert_lt(rss1 - rss0, 4 * 1024, "RSS %ld KiB above the start", rss1 - rss0);
    ca_binned_destroy(b);
}

Test(binned_memory, decay_returns_memory)
{
    NEED_RSS();
    /* Passes run every decay_ms / 2; 1 s outlasts fill + drop even under ASan
     * on a loaded machine, so the measurement below still sees the burst. */
    ca_binned *b = inst(1000, (size_t)1 << 30);
    long rss0 = ca_test_rss_kib();
    fill(b, N, 64);
    drop(b, N);
    ca_binned_thread_flush(b);
    long rss1 = ca_test_rss_kib();
    cr_assert_gt(rss1 - rss0, 50 * 1024);
    /* Two decay passes on later slow paths (flushes run the pass when due). */
    for (int i = 0; i < 30; i++) { /* two passes need 1-1.5 s */
        nap_ms(60);
        ca_binned_thread_flush(b);
    }
    long rss2 = ca_test_rss_kib();
    cr_assert_lt(rss2 - rss0, 4 * 1024, "after decay RSS is still %ld KiB above the start", rss2 - rss0);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_memory, first_fit_packs_low)
{
    /* After a burst, survivors are re-packed into the lowest blocks when
     * allocation resumes: new blocks come from the bottom of the range. */
    ca_binned *b = inst(CA_BINNED_DECAY_NEVER, CA_BINNED_EMPTY_KEEP_NONE);
    fill(b, 100000, 64);
    drop(b, 100000);
    ca_binned_trim(b);
    void *p = ca_binned_alloc(b, 64, 16);
    cr_assert_eq((char *)p, b->classes[ca_binned_size_class(64)].base, "first block of the class range reused first");
    ca_binned_free(b, p);
    ca_binned_destroy(b);
}

Test(binned_memory, huge_page_ladder)
{
    /* The class span through libsource's ladder: 1 GiB and 2 MiB hugetlb
     * pages need a reserved pool (rarely configured), so the span usually
     * lands on transparent huge pages or base pages; either way it works and
     * the stats say which. */
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 30;
    o.huge = CA_SOURCE_HUGE_THP;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    ca_stats s;
    ca_binned_stats(b, &s);
    uint64_t kind = 99;
    cr_assert(ca_stats_get_counter(&s, "page_kind", &kind));
    cr_assert(kind == CA_SOURCE_PAGE_BASE || kind == CA_SOURCE_PAGE_THP, "page kind %llu", (unsigned long long)kind);
    cr_assert(ca_is_aligned(b->span_base, (size_t)2 << 20));
    void *p = ca_binned_alloc(b, (size_t)200 << 10, 16);
    memset(p, 1, (size_t)200 << 10);
    ca_binned_free(b, p);
    ca_binned_trim(b);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
    o.huge = CA_SOURCE_HUGE_1G + 1;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
}

Test(binned_memory, pressure_policy_moves_epoch)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 30;
    /* Passes run every decay_ms / 2. The first one runs at the first slow
     * path (nothing committed yet); the interval must outlast fill + drop
     * (ASan, a loaded machine) so that the pass measuring 8 MiB comes in the
     * loop below, after epoch0 is read. */
    o.decay_ms = 1000;
    o.empty_keep = (size_t)1 << 30;
    o.pressure_bytes = (size_t)1 << 20;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    memset(ptrs, 0, sizeof ptrs);
    fill(b, N / 8, 64); /* 8 MiB */
    drop(b, N / 8);
    ca_binned__tcache *tc = (ca_binned__tcache *)pthread_getspecific(b->key);
    cr_assert_not_null(tc);
    cr_assert_gt(ca_binned__bin_count(&tc->bins[ca_binned_size_class(64)]), 0, "the cache holds freed slots");
    uint64_t epoch0 = b->epoch;
    for (int i = 0; i < 100 && b->epoch == epoch0; i++) { /* up to 1.5 s on a loaded machine */
        nap_ms(15);
        ca_binned_thread_flush(b); /* a slow path: runs the decay pass when due */
    }
    cr_assert_gt(b->epoch, epoch0, "8 MiB committed > 1 MiB bound: the pass moves the epoch");
    ca_stats s;
    ca_binned_stats(b, &s);
    uint64_t trims = 0;
    cr_assert(ca_stats_get_counter(&s, "pressure_trims", &trims));
    cr_assert_geq(trims, 1);
    cr_assert_eq(b->classes[ca_binned_size_class(64)].rec_bundles, 0, "the recyclers went back to the blocks");
    /* This thread notices on its next slow path (and returns its cache). */
    cr_assert_neq(tc->epoch, b->epoch);
    void *q = ca_binned_alloc(b, 3000, 16); /* empty bin: slow path */
    cr_assert_eq(tc->epoch, b->epoch);
    ca_binned_free(b, q);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_memory, growth_through_classes_does_not_pin_blocks)
{
    /* Strings grown by small appends pass through every class; the slots
     * they leave behind sit in this thread's cache bins, which nobody
     * allocates from again. Each cached slot keeps its block committed
     * unless the cache GC gives idle bins back (without it: about 3x the
     * live bytes committed). The recyclers fill up the same way: a decay
     * pass drains one nobody popped from since the pass before. */
    ca_binned *b = inst(40, CA_BINNED_EMPTY_KEEP_NONE);
    enum { NSTR = 4000 };
    static char *s[NSTR];
    static size_t len[NSTR];
    ca_rng r = {77};
    for (int k = 0; k < 600000; k++) {
        size_t i = (size_t)ca_rng_below(&r, NSTR);
        size_t add = 1 + (size_t)ca_rng_below(&r, 24);
        char *q = (char *)ca_resize(&b->base, s[i], len[i] ? len[i] + 1 : 0, len[i] + add + 1, 16, 0);
        cr_assert_not_null(q);
        memset(q + len[i], 'a', add + 1);
        len[i] += add;
        s[i] = q;
    }
    for (int pass = 0; pass < 3; pass++) { /* decay passes, as the background thread runs them */
        nap_ms(30);
        ca_binned__maybe_purge(b);
    }
    size_t live = 0;
    for (int i = 0; i < NSTR; i++)
        live += len[i] + 1;
    ca_stats st;
    ca_binned_stats(b, &st);
    cr_assert_lt(st.bytes_committed, 2 * live, "%llu bytes committed for %zu live", (unsigned long long)st.bytes_committed,
                 live);
    for (int i = 0; i < NSTR; i++)
        ca_binned_free(b, s[i]);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_memory, grow_shrink_loop_does_not_thrash)
{
    /* A recursion's depth rising and falling: 96 KiB blocks (about 10 per
     * 1 MiB block) taken and all freed again, 100 rounds, with the smallest
     * keep budget (0) and the decay long enough that nothing is idle. Each
     * round's blocks went back and were taken again every round when the
     * excess was decommitted at once: 40 blocks x 100 rounds = 4,000
     * decommits. A block decommitted and needed again within the decay
     * interval now doubles the class's keep budget, so the loop stops
     * returning memory after a few rounds. */
    ca_binned *b = inst(60000, CA_BINNED_EMPTY_KEEP_NONE);
    unsigned cls = ca_binned_size_class((size_t)96 << 10);
    enum { ROUNDS = 100, OBJS = 400 };
    for (int round = 0; round < ROUNDS; round++) {
        fill(b, OBJS, (size_t)96 << 10);
        drop(b, OBJS);
        ca_binned_thread_flush(b); /* a slow path: runs the purge of the excess */
    }
    ca_stats s;
    ca_binned_class_stats(b, cls, &s);
    uint64_t dec = 0, rec = 0, blocks = 0, keep = 0;
    cr_assert(ca_stats_get_counter(&s, "decommits", &dec));
    cr_assert(ca_stats_get_counter(&s, "recommits", &rec));
    cr_assert(ca_stats_get_counter(&s, "blocks", &blocks));
    cr_assert(ca_stats_get_counter(&s, "keep_blocks", &keep));
    cr_assert_gt(dec, 0, "the first round's excess went back (keep budget 0)");
    cr_assert_lt(dec, 4 * blocks, "%llu decommits of %llu blocks in %d rounds: the class thrashes",
                 (unsigned long long)dec, (unsigned long long)blocks, ROUNDS);
    cr_assert_geq(keep, blocks / 2, "keep budget %llu after the loop", (unsigned long long)keep);
    cr_assert_gt(rec, 0);
    cr_assert_null(ca_binned_check(b));
    /* Idle, the budget decays back and trim returns everything. */
    ca_binned_trim(b);
    ca_binned_class_stats(b, cls, &s);
    cr_assert_eq(s.bytes_committed, 0);
    ca_binned_destroy(b);
}

Test(binned_memory, idle_class_returns_blocks_by_decay)
{
    /* The keep budget grown by a loop does not hold memory once the class is
     * idle: a block EMPTY from one decay pass to the next goes back, and the
     * budget halves at each pass without thrash. */
    ca_binned *b = inst(40, CA_BINNED_EMPTY_KEEP_NONE);
    unsigned cls = ca_binned_size_class((size_t)96 << 10);
    for (int round = 0; round < 20; round++) {
        fill(b, 200, (size_t)96 << 10);
        drop(b, 200);
        ca_binned_thread_flush(b);
    }
    ca_binned_thread_flush(b);
    for (int pass = 0; pass < 12; pass++) {
        nap_ms(25);
        ca_binned__maybe_purge(b);
    }
    ca_stats s;
    ca_binned_class_stats(b, cls, &s);
    uint64_t keep = 99;
    cr_assert(ca_stats_get_counter(&s, "keep_blocks", &keep));
    cr_assert_eq(s.bytes_committed, 0, "%llu bytes still committed after idle passes",
                 (unsigned long long)s.bytes_committed);
    cr_assert_eq(keep, 0, "keep budget back to the option's 0");
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

/* Resident pages of [p, p + n) (mincore; n a multiple of the page). */
static size_t resident_pages(const void *p, size_t n)
{
    static unsigned char vec[1 << 12];
    size_t pages = n / ca_page_size(), count = 0;
    cr_assert_leq(pages, sizeof vec);
    cr_assert_eq(mincore((void *)(uintptr_t)p, n, vec), 0);
    for (size_t i = 0; i < pages; i++)
        count += vec[i] & 1;
    return count;
}

/* A class's first blocks touch one page of its metadata: the free chain's
 * tree 0 and the first block words share a page (two pages before, 4 KiB
 * of RSS more per class a program touches). With 16 GiB classes the
 * smallest have 16 trees per chain, with 1 GiB classes one. */
Test(binned_memory, first_blocks_touch_one_metadata_page)
{
    static const size_t sizes[] = {16, 48, 520, 4096, 100000, 200000};
    for (unsigned log2 = 30; log2 <= 34; log2 += 4) {
        ca_binned_options o;
        ca_binned_options_init(&o);
        o.class_range_log2 = log2;
        o.flags |= CA_BINNED_NO_TCACHE; /* one slot carved per malloc */
        ca_binned *b = NULL;
        cr_assert_eq(ca_binned_create(&b, &o), 0);
        if (!b->on_demand) {
            ca_binned_destroy(b);
            cr_skip_test("this build reserves the class span at create (ThreadSanitizer)");
        }
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            void *p[3];
            for (int i = 0; i < 3; i++) {
                p[i] = ca_binned_alloc(b, sizes[k], 16);
                cr_assert_not_null(p[i]);
                memset(p[i], 1, sizes[k]);
            }
            unsigned cls = (unsigned)(((uintptr_t)p[0] - b->span_base) >> b->class_shift);
            ca_binned__class *c = &b->classes[cls];
            cr_assert_eq(resident_pages(c->meta_start, c->meta_mapped), 1,
                         "class of %zu B, %u trees per chain: %zu metadata pages resident", sizes[k],
                         c->free_tree.ntrees, resident_pages(c->meta_start, c->meta_mapped));
            for (int i = 0; i < 3; i++)
                ca_binned_free(b, p[i]);
        }
        ca_binned_destroy(b);
    }
}

/* The first mapping of a class is the block it needs (its shadow and its
 * block words with it); headroom comes from the second step on. A program
 * that touches many classes a little keeps its address space small. */
Test(binned_memory, first_mapping_is_one_block)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    if (!b->on_demand) {
        ca_binned_destroy(b);
        cr_skip_test("this build reserves the class span at create (ThreadSanitizer)");
    }
    void *p = ca_binned_alloc(b, 48, 16);
    cr_assert_not_null(p);
    unsigned cls = (unsigned)(((uintptr_t)p - b->span_base) >> b->class_shift);
    ca_binned__class *c = &b->classes[cls];
    size_t block = (size_t)1 << ca_binned__classes[cls].block_shift;
    cr_assert_eq(c->mapped, 1);
    cr_assert_eq(c->span_mapped, block);
    cr_assert_eq(c->shadow_mapped, block >> 4);
    /* the next block maps a step ahead (at least 256 KiB) */
    size_t n = 0;
    while (c->frontier < 2) {
        cr_assert_not_null(ca_binned_alloc(b, 48, 16));
        cr_assert_lt(++n, (size_t)10000);
    }
    cr_assert_geq(c->span_mapped, (size_t)256 << 10);
    ca_binned_destroy(b);
}

/* A thread that touches many classes a little writes one or two pages of
 * its cache's arrays: every bin starts on a starter array of 16 pointers,
 * side by side, and moves to its full array on its second refill (before,
 * each class's first batch went into its full array: a page per four
 * classes, 8 pages for the 25 classes of 64 blocks of 16 to 520 B). */
Test(binned_memory, few_blocks_of_many_classes_touch_few_array_pages)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 30;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = ca_binned_alloc(b, 16 + (size_t)i * 8, 16);
        cr_assert_not_null(p[i]);
    }
    ca_binned__tcache *tc = ca_binned__tcache_get(b);
    cr_assert_not_null(tc);
    cr_assert_not_null(tc->arrays);
    size_t bytes = ca_align_up(ca_binned__arrays_bytes(), ca_page_size());
    size_t touched = resident_pages(tc->arrays, bytes);
    cr_assert_leq(touched, 2, "%zu pages of the arrays region resident", touched);
    /* a class used past its starter moves to its full array, keeping what it holds */
    void *q[200];
    for (int i = 0; i < 200; i++)
        cr_assert_not_null(q[i] = ca_binned_alloc(b, 64, 16));
    unsigned cls = (unsigned)(((uintptr_t)q[0] - b->span_base) >> b->class_shift);
    ca_binned__bin *bin = &tc->bins[cls];
    cr_assert_eq(bin->limit - bin->base, (ptrdiff_t)ca_binned__classes[cls].cache_max);
    for (int i = 0; i < 200; i++)
        ca_binned_free(b, q[i]);
    for (int i = 0; i < 64; i++)
        ca_binned_free(b, p[i]);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

/* An instance's state is touched for the classes it uses only: each class
 * is set up on its first use (its 320 bytes in the instance), not all 100
 * at create (the default instance's static state was 9 pages resident in
 * every program). */
Test(binned_memory, unused_classes_leave_instance_state_untouched)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 30;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    void *p = ca_binned_alloc(b, 16, 16), *q = ca_binned_alloc(b, 64, 16);
    cr_assert(p && q);
    uintptr_t lo = ca_align_down((uintptr_t)b, ca_page_size());
    size_t bytes = ca_align_up((uintptr_t)b + sizeof *b, ca_page_size()) - lo;
    size_t touched = resident_pages((void *)lo, bytes);
    cr_assert_leq(touched, 2, "%zu of %zu pages of the instance resident", touched, bytes / ca_page_size());
    cr_assert_null(b->classes[50].lock_lk, "a class never used is not set up");
    cr_assert_null(ca_binned_check(b));
    ca_stats st;
    cr_assert_eq(ca_binned_class_stats(b, 50, &st), 0);
    cr_assert_eq(st.bytes_committed, 0);
    ca_binned_free(b, p);
    ca_binned_free(b, q);
    ca_binned_trim(b);
    cr_assert_null(ca_binned_check(b));
    cr_assert_null(b->classes[50].lock_lk, "trim leaves unused classes alone");
    ca_binned_destroy(b);
}
static bool page_resident(const void *p)
{
    unsigned char v = 0;
    uintptr_t pg = (uintptr_t)p & ~(uintptr_t)(ca_page_size() - 1);
    cr_assert_eq(mincore((void *)pg, ca_page_size(), &v), 0);
    return v & 1;
}

Test(binned_memory, steady_class_populates_ahead_first_block_does_not)
{
    /* A class in steady use (a second block started) populates the 64 KiB
     * chunks a refill carves from untouched memory with one madvise; the
     * first block of a class is left to fault page by page, so a small
     * program's footprint is only what it writes. */
    void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(probe, MAP_FAILED);
    int ok = madvise(probe, 4096, 23 /* MADV_POPULATE_WRITE */);
    munmap(probe, 4096);
    if (ok != 0)
        cr_skip_test("madvise(MADV_POPULATE_WRITE) is not supported here (errno %d)", errno);
    ca_binned *b = inst(1000, 8);
    enum { SZ = 1000, PER_BLOCK = 64 }; /* class 1024 B: 64 KiB blocks of 64 slots */
    void *first = ca_binned_alloc(b, SZ, 16);
    cr_assert_not_null(first);
    char *blk0 = (char *)((uintptr_t)first & ~(uintptr_t)0xffff);
    cr_assert(!page_resident(blk0 + 60 * 1024), "the first block's untouched pages are not populated");
    static void *held[3 * PER_BLOCK];
    char *top = NULL;
    for (int i = 0; i < PER_BLOCK + 1; i++) {
        held[i] = ca_binned_alloc(b, SZ, 16);
        cr_assert_not_null(held[i]);
        if ((char *)held[i] > top)
            top = (char *)held[i];
    }
    char *blk1 = (char *)((uintptr_t)top & ~(uintptr_t)0xffff);
    cr_assert_neq(blk1, blk0, "a second block was started");
    cr_assert(page_resident(blk1 + 60 * 1024), "a steady class's fresh block is populated ahead");
    for (int i = 0; i < PER_BLOCK + 1; i++)
        ca_binned_free(b, held[i]);
    ca_binned_free(b, first);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}
