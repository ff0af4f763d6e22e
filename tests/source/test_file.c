/* SPDX-License-Identifier: MIT */
/*
 * The file-backed source: temporary and named files, data seen after the
 * file is reopened, holes punched on decommit, ENOSPC at obtain time on a
 * full filesystem (a 1 MiB tmpfs, or injected), bad paths and read-only
 * files with the documented errno and no fd or mapping leaked.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_test.h"
#include "source_test.h"

static size_t page;
static char dir[64];

static void setup(void)
{
    page = ca_page_size();
    strcpy(dir, "/tmp/ca-source-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(source_file, .init = setup, .fini = teardown);

static int init_path(ca_source_file *f, const char *path, const char *d, unsigned flags, size_t cap,
                     ca_source_fault *fault)
{
    ca_source_file_options o;
    memset(&o, 0, sizeof o);
    o.path = path;
    o.dir = d;
    o.flags = flags;
    o.capacity = cap;
    o.fault = fault;
    return ca_source_file_init(f, &o);
}

Test(source_file, temporary_is_zeroed_and_unlinked)
{
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, NULL), 0, "%s", ca_last_error());
    cr_assert(f.base.ops->caps & CA_SOURCE_ZEROED);
    struct stat st;
    cr_assert_eq(fstat(ca_source_file_fd(&f), &st), 0);
    cr_assert_eq(st.st_nlink, 0, "unlinked");
    void *p;
    cr_assert_eq(ca_source_obtain(&f.base, 8 * page, page, &p), 0);
    for (size_t i = 0; i < 8 * page; i++)
        cr_assert_eq(((char *)p)[i], 0);
    ca_test_fill(p, 8 * page, 3);
    cr_assert_eq(fstat(ca_source_file_fd(&f), &st), 0);
    cr_assert_geq((size_t)st.st_size, 8 * page);
    char buf[64];
    cr_assert_eq(pread(ca_source_file_fd(&f), buf, sizeof buf, 0), (ssize_t)sizeof buf, "shared mapping");
    cr_assert(ca_test_verify(buf, sizeof buf, 3));
    cr_assert_eq(ca_source_release(&f.base, p, 8 * page), 0);
    cr_assert_null(ca_source_check(&f.base));
    ca_source_file_destroy(&f);
}

Test(source_file, named_file_reopened_data_seen)
{
    char path[128];
    snprintf(path, sizeof path, "%s/data", dir);
    ca_source_file f;
    cr_assert_eq(init_path(&f, path, NULL, 0, 0, NULL), 0, "%s", ca_last_error());
    void *p;
    cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
    ca_test_fill(p, 4 * page, 9);
    cr_assert_eq(ca_source_file_sync(&f, p, 4 * page), 0);
    ca_source_file_destroy(&f); /* not released: the data stays in the file */

    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    static char buf[1 << 16];
    cr_assert_eq(read(fd, buf, 4 * page), (ssize_t)(4 * page));
    cr_assert(ca_test_verify(buf, 4 * page, 9), "data seen through read()");
    close(fd);

    cr_assert_eq(init_path(&f, path, NULL, 0, 0, NULL), 0);
    cr_assert_not(f.base.ops->caps & CA_SOURCE_ZEROED, "existing data: not zeroed");
    cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_file_offset(&f, p), 0);
    cr_assert(ca_test_verify(p, 4 * page, 9), "data seen through a new source");
    ca_source_file_destroy(&f);

    cr_assert_eq(init_path(&f, path, NULL, CA_SOURCE_FILE_TRUNCATE, 0, NULL), 0);
    cr_assert(f.base.ops->caps & CA_SOURCE_ZEROED);
    cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
    cr_assert_eq(((char *)p)[5], 0);
    cr_assert_eq(ca_source_release(&f.base, p, 4 * page), 0);
    ca_source_file_destroy(&f);
}

Test(source_file, decommit_punches_holes)
{
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, NULL), 0);
    void *p;
    size_t n = 256 * page;
    cr_assert_eq(ca_source_obtain(&f.base, n, page, &p), 0);
    memset(p, 1, n);
    struct stat st;
    fstat(ca_source_file_fd(&f), &st);
    long before = (long)st.st_blocks;
    cr_assert_geq(before * 512, (long)n);
    cr_assert_eq(ca_source_decommit(&f.base, p, n), 0);
    fstat(ca_source_file_fd(&f), &st);
    cr_assert_lt((long)st.st_blocks, before / 4, "blocks %ld -> %ld", before, (long)st.st_blocks);
    cr_assert_eq(((char *)p)[100], 0, "a punched hole reads zero");
    cr_assert_eq(ca_source_commit(&f.base, p, n), 0);
    fstat(ca_source_file_fd(&f), &st);
    cr_assert_geq((long)st.st_blocks * 512, (long)n, "commit allocates the blocks again");
    cr_assert_null(ca_source_check(&f.base));
    cr_assert_eq(ca_source_release(&f.base, p, n), 0);
    ca_source_file_destroy(&f);
}

Test(source_file, reserve_commit_and_capacity)
{
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 16 * page, NULL), 0);
    void *r, *p;
    cr_assert_eq(ca_source_reserve(&f.base, 8 * page, page, &r), 0);
    cr_assert_eq(ca_source_commit(&f.base, (char *)r + page, 2 * page), 0);
    memset((char *)r + page, 4, 2 * page);
    ca_stats st;
    ca_source_stats(&f.base, &st);
    cr_assert_eq(st.bytes_reserved, 8 * page);
    cr_assert_eq(st.bytes_committed, 2 * page);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(ca_source_obtain(&f.base, 8 * page, page, &p), 0);
    void *q;
    cr_assert_eq(ca_source_obtain(&f.base, page, page, &q), ENOMEM, "capacity used up");
    cr_assert_eq(ca_source_release(&f.base, r, 8 * page), 0);
    cr_assert_eq(ca_source_obtain(&f.base, 8 * page, page, &q), 0, "offsets reused");
    cr_assert_eq(q, r);
    cr_assert_eq(((char *)q)[page], 0, "released data gone");
    cr_assert_null(ca_source_check(&f.base));
    cr_assert_eq(ca_source_release(&f.base, q, 8 * page), 0);
    cr_assert_eq(ca_source_release(&f.base, p, 8 * page), 0);
    ca_source_stats(&f.base, &st);
    uint64_t top = 1;
    cr_assert(ca_stats_get_counter(&st, "file_top", &top));
    cr_assert_eq(top, 0, "all offsets back");
    ca_source_file_destroy(&f);
}

Test(source_file, bad_paths_no_leak)
{
    long fds = ca_test_count_fds(), maps = ca_test_count_maps();
    ca_source_file f;
    cr_assert_eq(init_path(&f, "/nonexistent-ctxalloc-dir/file", NULL, 0, 0, NULL), ENOENT);
    cr_assert(strstr(ca_last_error(), "open"), "%s", ca_last_error());
    cr_assert_str_eq(ca_last_error(),
                     "source-file: open of the named file '/nonexistent-ctxalloc-dir/file': No such file or directory");
    cr_assert_eq(init_path(&f, NULL, "/nonexistent-ctxalloc-dir", 0, 0, NULL), ENOENT);
    cr_assert(strstr(ca_last_error(), "in the directory '/nonexistent-ctxalloc-dir'"), "%s", ca_last_error());
    char path[128];
    snprintf(path, sizeof path, "%s/plain", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    close(fd);
    cr_assert_eq(init_path(&f, NULL, path, 0, 0, NULL), ENOTDIR);
    cr_assert_eq(init_path(&f, NULL, dir, 0x80, 0, NULL), EINVAL);
    cr_assert(strstr(ca_last_error(), "source-file: bad options"), "%s", ca_last_error());
    cr_assert_eq(init_path(&f, NULL, dir, 0, SIZE_MAX, NULL), EINVAL);
    cr_assert_eq(ca_test_count_fds(), fds);
    cr_assert_eq(ca_test_count_maps(), maps);
}

Test(source_file, read_only_file_eacces)
{
    char path[128];
    snprintf(path, sizeof path, "%s/ro", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0444);
    cr_assert_geq(fd, 0);
    close(fd);
    char rodir[128];
    snprintf(rodir, sizeof rodir, "%s/rodir", dir);
    cr_assert_eq(mkdir(rodir, 0555), 0);
    /* Root passes permission checks: check as nobody in a child, so that
     * this process can still clean up. */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0)
            _exit(10);
        ca_source_file f;
        (void)init_path(&f, path, NULL, 0, 0, NULL); /* warm-up (sanitizer runtimes open files lazily) */
        long fds = ca_test_count_fds(), maps = ca_test_count_maps();
        if (init_path(&f, path, NULL, 0, 0, NULL) != EACCES)
            _exit(11);
        if (init_path(&f, NULL, rodir, 0, 0, NULL) != EACCES)
            _exit(12);
        if (ca_test_count_fds() != fds || (!UNDER_ASAN && ca_test_count_maps() != maps))
            _exit(13);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child check %d failed", WEXITSTATUS(status));
}

/* A full filesystem: obtain fails with ENOSPC and nothing stays mapped. */
static void expect_enospc(ca_source_file *f, size_t n)
{
    long maps = ca_test_count_maps();
    void *p;
    ca_stats st;
    ca_source_stats(&f->base, &st);
    cr_assert_eq(ca_source_obtain(&f->base, n, page, &p), ENOSPC, "%s", ca_last_error());
    cr_assert(strstr(ca_last_error(), "fallocate"), "%s", ca_last_error());
    cr_assert_eq(ca_test_count_maps(), maps);
    ca_stats st2;
    ca_source_stats(&f->base, &st2);
    cr_assert_eq(st2.failures, st.failures + 1);
    cr_assert_eq(st2.bytes_reserved, st.bytes_reserved);
    cr_assert_null(ca_source_check(&f->base));
}

Test(source_file, enospc_on_tiny_tmpfs)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0)
        cr_skip_test("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); ENOSPC covered by injection");
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, NULL), 0, "%s", ca_last_error());
    void *p;
    cr_assert_eq(ca_source_obtain(&f.base, 128 * 1024, page, &p), 0);
    expect_enospc(&f, 4 << 20);
    memset(p, 1, 128 * 1024); /* the range that fit is fully usable */
    cr_assert_eq(ca_source_release(&f.base, p, 128 * 1024), 0);
    ca_source_file_destroy(&f);
    umount(dir);
}

Test(source_file, enospc_injected)
{
    ca_source_fault flt;
    ca_source_fault_init(&flt, CA_SOURCE_FAULT_FALLOCATE, 1, 1, ENOSPC);
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, &flt), 0);
    expect_enospc(&f, 16 * page);
    void *p;
    cr_assert_eq(ca_source_obtain(&f.base, 16 * page, page, &p), 0, "the next try works");
    cr_assert_eq(ca_source_file_offset(&f, p), 0, "the failed offsets were returned");
    cr_assert_eq(ca_source_release(&f.base, p, 16 * page), 0);
    ca_source_file_destroy(&f);
}

Test(source_file, tmpfile_fallback)
{
    ca_source_fault flt;
    ca_source_fault_init(&flt, CA_SOURCE_FAULT_OPEN, 1, 1, EOPNOTSUPP);
    ca_source_file f;
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, &flt), 0, "%s", ca_last_error());
    cr_assert_eq(flt.injected, 1);
    struct stat st;
    cr_assert_eq(fstat(ca_source_file_fd(&f), &st), 0);
    cr_assert_eq(st.st_nlink, 0, "the fallback file is unlinked at once");
    void *p;
    cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_release(&f.base, p, 4 * page), 0);
    ca_source_file_destroy(&f);
    ca_source_fault_init(&flt, CA_SOURCE_FAULT_OPEN, 1, 1, EMFILE);
    cr_assert_eq(init_path(&f, NULL, dir, 0, 0, &flt), EMFILE, "other errors do not fall back");
}

Test(source_file, init_destroy_cycles_leak_nothing)
{
    long fds = ca_test_count_fds(), maps = ca_test_count_maps();
    for (int i = 0; i < 20; i++) {
        ca_source_file f;
        cr_assert_eq(init_path(&f, NULL, dir, 0, 0, NULL), 0);
        void *p;
        cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
        cr_assert_eq(ca_source_release(&f.base, p, 4 * page), 0);
        ca_source_file_destroy(&f);
    }
    cr_assert_eq(ca_test_count_fds(), fds);
    cr_assert_eq(ca_test_count_maps(), maps);
}
