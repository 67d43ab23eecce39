/* A counting malloc interposer for `bench/run.sh allocs` (LD_PRELOAD): prints how many
 * malloc, calloc and realloc calls the process made, at exit, on standard error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static unsigned long long n_malloc, n_calloc, n_realloc;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static char boot[65536]; static size_t boot_used;
void *malloc(size_t s) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); n_malloc++; return real_malloc(s); }
void *calloc(size_t a, size_t b) {
  if (!real_calloc) { void *p = boot + boot_used; boot_used += (a*b + 15) & ~15; return p; }
  n_calloc++; return real_calloc(a, b); }
void *realloc(void *p, size_t s) { if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc"); n_realloc++; return real_realloc(p, s); }
__attribute__((constructor)) static void init(void) { real_calloc = dlsym(RTLD_NEXT, "calloc"); }
__attribute__((destructor)) static void fini(void) { char b[200]; int l = snprintf(b, sizeof b, "mallocs %llu callocs %llu reallocs %llu\n", n_malloc, n_calloc, n_realloc); write(2, b, l); }
