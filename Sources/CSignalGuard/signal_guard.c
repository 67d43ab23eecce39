#include "signal_guard.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Mapped ranges, in slots written with atomic stores so the handler can read them at any
 * moment. A slot's start is 0 when free and 1 while it is being filled. */
enum { SLOTS = 256, MESSAGE = 256 };

static uintptr_t mapping_start[SLOTS];
static uintptr_t mapping_end[SLOTS];
static char mapping_message[SLOTS][MESSAGE];
static size_t mapping_message_length[SLOTS];
static struct sigaction previous;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void on_sigbus(int signal, siginfo_t *info, void *context) {
    (void)context;
    /* Only a fault carries an address; a SIGBUS sent with kill or sigqueue (si_code <= 0)
     * has a sender's pid where the address would be. */
    if (info->si_code > 0) {
        uintptr_t at = (uintptr_t)info->si_addr;
        for (int i = 0; i < SLOTS; i++) {
            uintptr_t start = __atomic_load_n(&mapping_start[i], __ATOMIC_ACQUIRE);
            uintptr_t end = __atomic_load_n(&mapping_end[i], __ATOMIC_ACQUIRE);
            if (start > 1 && at >= start && at < end) {
                (void)!write(2, mapping_message[i], mapping_message_length[i]);
                _exit(2);
            }
        }
    }
    /* Not ours: put back what was there. A fault happens again under it when this returns;
     * a sent signal is raised again, and delivered under it once this handler returns (it is
     * blocked until then). */
    sigaction(SIGBUS, &previous, NULL);
    if (info->si_code <= 0) raise(signal);
}

static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous);
}

void smtpcap_install_sigbus_guard(void) { pthread_once(&installed, install); }

int smtpcap_register_mapping(const void *start, size_t length, const char *message) {
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t expected = 0;
        if (__atomic_compare_exchange_n(&mapping_start[i], &expected, (uintptr_t)1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            size_t n = strnlen(message, MESSAGE - 2);
            memcpy(mapping_message[i], message, n);
            mapping_message[i][n] = '\n';
            mapping_message_length[i] = n + 1;
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
