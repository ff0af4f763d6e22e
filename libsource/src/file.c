/* SPDX-License-Identifier: MIT */
/* File-backed source (being written: every entry fails with ENOTSUP). */
#include "source_internal.h"

bool ca_source__is_file(const ca_source *s) { (void)s; return false; }
const char *ca_source__file_check(const ca_source *s) { (void)s; return NULL; }
int ca_source_file_init(ca_source_file *s, const ca_source_file_options *o) { (void)s; (void)o; return ENOTSUP; }
void ca_source_file_destroy(ca_source_file *s) { (void)s; }
int ca_source_file_sync(ca_source_file *s, void *p, size_t size) { (void)s; (void)p; (void)size; return ENOTSUP; }
int ca_source_file_fd(const ca_source_file *s) { (void)s; return -1; }
uint64_t ca_source_file_offset(const ca_source_file *s, const void *p) { (void)s; (void)p; return (uint64_t)-1; }
const char *ca_source_file_error(const ca_source_file *s) { (void)s; return "not built yet"; }
