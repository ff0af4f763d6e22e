/* SPDX-License-Identifier: MIT */
/*
 * The clock of libbinned (decay passes, the large tier's purge, the secret's
 * seed): the kernel's vDSO clock_gettime, called directly.
 *
 * libc's clock_gettime is a small wrapper around the same vDSO function,
 * but it sits in a 64 KiB window of libc's code that a small program
 * otherwise never runs, and the kernel maps such a window whole on its first
 * fault (fault-around): calling the wrapper at start-up cost the program
 * that much RSS of libc. The vDSO's own entry is found once from the ELF
 * image the kernel maps (AT_SYSINFO_EHDR): its dynamic symbol table, sized
 * by DT_HASH, holds __vdso_clock_gettime. When anything is missing (no vDSO,
 * as under valgrind; no DT_HASH; no such symbol) libc's clock_gettime is
 * used instead.
 *
 * Concurrency: the entry is looked up at most once per thread that finds it
 * unset; every lookup finds the same entry. No malloc, no lock.
 */
#include "binned_internal.h"

#include <elf.h>
#include <sys/auxv.h>
#include <time.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

static clock_fn g_clock; /* __atomic; NULL: not looked up yet */

/* __vdso_clock_gettime in the vDSO mapped at base, or NULL. */
static clock_fn vdso_lookup(uintptr_t base)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_phentsize != sizeof(Elf64_Phdr))
        return NULL;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    uintptr_t load = 0;
    bool loaded = false;
    const Elf64_Dyn *dyn = NULL;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !loaded) {
            load = base + ph[i].p_offset - ph[i].p_vaddr; /* where vaddr 0 is */
            loaded = true;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
        }
    }
    if (!loaded || !dyn)
        return NULL;
    const Elf64_Sym *sym = NULL;
    const char *str = NULL;
    const Elf64_Word *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            sym = (const Elf64_Sym *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            str = (const char *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_HASH)
            hash = (const Elf64_Word *)(load + dyn->d_un.d_ptr);
    }
    if (!sym || !str || !hash)
        return NULL;
    for (Elf64_Word k = 0; k < hash[1]; k++) /* hash[1]: the symbol count */
        if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && sym[k].st_shndx != SHN_UNDEF &&
            strcmp(str + sym[k].st_name, "__vdso_clock_gettime") == 0)
            return (clock_fn)(load + sym[k].st_value);
    return NULL;
}

static clock_fn entry(void)
{
    clock_fn f = __atomic_load_n(&g_clock, __ATOMIC_ACQUIRE);
    if (ca_unlikely(!f)) {
        uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
        f = base ? vdso_lookup(base) : NULL;
        if (!f)
            f = clock_gettime;
        __atomic_store_n(&g_clock, f, __ATOMIC_RELEASE);
    }
    return f;
}

bool ca_binned__clock_is_vdso(void) { return entry() != clock_gettime; }

void ca_binned__clock(clockid_t id, struct timespec *ts)
{
    if (entry()(id, ts) != 0) {
        ts->tv_sec = 0;
        ts->tv_nsec = 0;
    }
}
