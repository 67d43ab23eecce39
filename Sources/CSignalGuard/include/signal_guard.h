#ifndef SMTPCAP_SIGNAL_GUARD_H
#define SMTPCAP_SIGNAL_GUARD_H
#include <stddef.h>

/*
 * Capture files are read through a memory mapping. If a file shrinks while it is mapped (it
 * is truncated or rewritten in place), touching a page past its new end raises SIGBUS. The
 * guard turns that into the one-line error and exit status 2 of any other unreadable input,
 * and leaves every other SIGBUS to the handler that was there before.
 */

/* Installs the guard once; call before the first mapping is registered. */
void smtpcap_install_sigbus_guard(void);

/* Returns the slot, or -1 when all are taken (the caller then reads without a mapping). */
int smtpcap_register_mapping(const void *start, size_t length);

void smtpcap_unregister_mapping(int slot);
#endif
