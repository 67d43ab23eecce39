#ifndef SMTPCAP_SIGNAL_GUARD_H
#define SMTPCAP_SIGNAL_GUARD_H
#include <stddef.h>

/*
 * Capture files are read through a memory mapping. If a file shrinks while it is mapped (it
 * is truncated or rewritten in place), or its storage fails (EIO), touching such a page raises
 * SIGBUS. The guard turns that into a one-line error naming the file and exit status 2, as for
 * any other unreadable input, and leaves every other SIGBUS (one sent with kill, a fault
 * outside the capture files) to the disposition that was there before.
 */

/* Installs the guard once (thread-safe); call before the first mapping is registered. */
void smtpcap_install_sigbus_guard(void);

/* Registers a mapped range and the line to print if it faults (copied, cut at 255 bytes).
 * Returns the slot, or -1 when all are taken (the caller then reads without a mapping). */
int smtpcap_register_mapping(const void *start, size_t length, const char *message);

/* Unregister before unmapping: a new mapping at the same addresses is then never mistaken
 * for the capture file. */
void smtpcap_unregister_mapping(int slot);
#endif
