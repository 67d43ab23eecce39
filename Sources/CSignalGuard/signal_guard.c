#include "signal_guard.h"
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Mapped ranges, in slots written with atomic stores so the handler can read them at any
 * moment. */
enum { SLOTS = 256 };

static uintptr_t mapping_start[SLOTS];
static uintptr_t mapping_end[SLOTS];
static struct sigaction previous;
static int installed;

static void on_sigbus(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)context;
    uintptr_t at = (uintptr_t)info->si_addr;
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t start = __atomic_load_n(&mapping_start[i], __ATOMIC_ACQUIRE);
        uintptr_t end = __atomic_load_n(&mapping_end[i], __ATOMIC_ACQUIRE);
        if (start > 1 && at >= start && at < end) {
            static const char message[] =
                "smtpcap: a capture file became shorter while it was being read (truncated or rewritten in place)\n";
            (void)!write(2, message, sizeof message - 1);
            _exit(2);
        }
    }
    /* Not ours: put back what was there and let the fault happen again under it. */
    sigaction(SIGBUS, &previous, NULL);
}

void smtpcap_install_sigbus_guard(void) {
    if (__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL)) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous);
}

int smtpcap_register_mapping(const void *start, size_t length) {
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t expected = 0;
        /* 1 marks a slot being filled: no address range starts there. */
        if (__atomic_compare_exchange_n(&mapping_start[i], &expected, (uintptr_t)1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&mapping_end[i], (uintptr_t)start + length, __ATOMIC_RELEASE);
            __atomic_store_n(&mapping_start[i], (uintptr_t)start, __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1;
}

void smtpcap_unregister_mapping(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    __atomic_store_n(&mapping_end[slot], (uintptr_t)0, __ATOMIC_RELEASE);
    __atomic_store_n(&mapping_start[slot], (uintptr_t)0, __ATOMIC_RELEASE);
}
