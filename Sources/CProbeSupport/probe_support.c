#define _GNU_SOURCE
#include "probe_support.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct smtpcap_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    /* A fatal error happened: no close_notify may be sent (the peer may be gone). */
    int failed;
};

static void seterr(char *err, int errlen, const char *what, const char *detail) {
    if (err && errlen > 0) snprintf(err, (size_t)errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be readable (events POLLIN) or writable (POLLOUT). 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        return r < 0 ? -1 : (r == 0 ? 0 : 1);
    }
}

int smtpcap_socket(int family, int *local_port, char *err, int errlen) {
    int af = family == 6 ? AF_INET6 : AF_INET;
    int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) { seterr(err, errlen, "socket", strerror(errno)); return -1; }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (af == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        seterr(err, errlen, "bind", strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        seterr(err, errlen, "getsockname", strerror(errno));
        close(fd);
        return -1;
    }
    *local_port = af == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int smtpcap_connect(int fd, int family, const char *address, int port, int timeout_ms, char *err, int errlen) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1) { seterr(err, errlen, "not an IPv6 address", address); return -1; }
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, address, &a->sin_addr) != 1) { seterr(err, errlen, "not an IPv4 address", address); return -1; }
        len = sizeof *a;
    }
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int r = connect(fd, (struct sockaddr *)&ss, len);
    if (r != 0 && errno == ECONNREFUSED) { seterr(err, errlen, "connection refused", NULL); return -1; }
    if (r != 0 && errno != EINPROGRESS) { seterr(err, errlen, "connection failed", strerror(errno)); return -1; }
    if (r != 0) {
        int w = wait_fd(fd, POLLOUT, timeout_ms);
        if (w == 0) { seterr(err, errlen, "connection timed out", NULL); return -1; }
        if (w < 0) { seterr(err, errlen, "connection failed", strerror(errno)); return -1; }
        int so = 0;
        socklen_t sl = sizeof so;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
        if (so != 0) {
            if (so == ECONNREFUSED) seterr(err, errlen, "connection refused", NULL);
            else seterr(err, errlen, "connection failed", strerror(so));
            return -1;
        }
    }
    return 0;
}

int smtpcap_recv(int fd, smtpcap_tls *tls, unsigned char *buf, int len, int timeout_ms, char *err, int errlen) {
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (tls) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_read(tls->ssl, buf, len);
            if (n > 0) return n;
            int e = SSL_get_error(tls->ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN) return 0;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                unsigned long code = ERR_get_error();
                tls->failed = 1;
                if (e == SSL_ERROR_SYSCALL && code == 0) {
                    if (errno == 0) return 0;  /* closed without close_notify */
                    seterr(err, errlen, errno == ECONNRESET ? "connection reset" : "read failed", strerror(errno));
                    return -1;
                }
                seterr(err, errlen, "TLS read failed", code ? ERR_reason_error_string(code) : NULL);
                return -1;
            }
            int left = (int)(deadline - now_ms());
            if (left <= 0) return -2;
            int w = wait_fd(fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, left);
            if (w == 0) return -2;
            if (w < 0) { seterr(err, errlen, "poll", strerror(errno)); return -1; }
            continue;
        }
        ssize_t n = recv(fd, buf, (size_t)len, 0);
        if (n > 0) return (int)n;
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            seterr(err, errlen, errno == ECONNRESET ? "connection reset" : "read failed", strerror(errno));
            return -1;
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0) return -2;
        int w = wait_fd(fd, POLLIN, left);
        if (w == 0) return -2;
        if (w < 0) { seterr(err, errlen, "poll", strerror(errno)); return -1; }
    }
}

int smtpcap_send(int fd, smtpcap_tls *tls, const unsigned char *buf, int len, int timeout_ms, char *err, int errlen) {
    long long deadline = now_ms() + timeout_ms;
    int done = 0;
    while (done < len) {
        int n;
        if (tls) {
            ERR_clear_error();
            errno = 0;
            n = SSL_write(tls->ssl, buf + done, len - done);
            if (n <= 0) {
                int e = SSL_get_error(tls->ssl, n);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    unsigned long code = ERR_get_error();
                    tls->failed = 1;
                    seterr(err, errlen, "TLS write failed", code ? ERR_reason_error_string(code) : (errno ? strerror(errno) : NULL));
                    return -1;
                }
                int left = (int)(deadline - now_ms());
                if (left <= 0 || wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) <= 0) {
                    seterr(err, errlen, "write timed out", NULL);
                    return -1;
                }
                continue;
            }
        } else {
            ssize_t s = send(fd, buf + done, (size_t)(len - done), MSG_NOSIGNAL);
            if (s < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) { seterr(err, errlen, "write failed", strerror(errno)); return -1; }
                int left = (int)(deadline - now_ms());
                if (left <= 0 || wait_fd(fd, POLLOUT, left) <= 0) { seterr(err, errlen, "write timed out", NULL); return -1; }
                continue;
            }
            n = (int)s;
        }
        done += n;
    }
    return 0;
}

void smtpcap_close(int fd) {
    if (fd >= 0) close(fd);
}

int smtpcap_local_literal(int fd, char *out, int outlen) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char text[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text)) return -1;
        snprintf(out, (size_t)outlen, "[IPv6:%s]", text);
    } else {
        if (!inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof text)) return -1;
        snprintf(out, (size_t)outlen, "[%s]", text);
    }
    return 0;
}

smtpcap_tls *smtpcap_tls_start(int fd, const char *server_name, int timeout_ms, char *err, int errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { seterr(err, errlen, "TLS setup failed", NULL); return NULL; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Opportunistic, as MTAs are: old protocol versions and small keys are what the server
     * offers, to be reported (weak-tls), not refused by this host's policy. */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, 0);
    SSL *ssl = SSL_new(ctx);
    if (!ssl) { SSL_CTX_free(ctx); seterr(err, errlen, "TLS setup failed", NULL); return NULL; }
    SSL_set_fd(ssl, fd);
    if (server_name && server_name[0]) SSL_set_tlsext_host_name(ssl, server_name);
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r == 1) break;
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int left = (int)(deadline - now_ms());
            if (left <= 0 || wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left) <= 0) {
                seterr(err, errlen, "TLS handshake timed out", NULL);
                SSL_free(ssl);
                SSL_CTX_free(ctx);
                return NULL;
            }
            continue;
        }
        unsigned long code = ERR_get_error();
        const char *why = code ? ERR_reason_error_string(code) : (e == SSL_ERROR_SYSCALL ? "the server closed the connection" : NULL);
        seterr(err, errlen, "TLS handshake failed", why);
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct smtpcap_tls *t = malloc(sizeof *t);
    if (!t) { SSL_free(ssl); SSL_CTX_free(ctx); seterr(err, errlen, "out of memory", NULL); return NULL; }
    t->ctx = ctx;
    t->ssl = ssl;
    t->failed = 0;
    return t;
}

void smtpcap_tls_info(smtpcap_tls *tls, char *version, int versionlen, char *cipher, int cipherlen) {
    snprintf(version, (size_t)versionlen, "%s", SSL_get_version(tls->ssl));
    const char *c = SSL_get_cipher_name(tls->ssl);
    snprintf(cipher, (size_t)cipherlen, "%s", c ? c : "");
}

int smtpcap_tls_peer_der(smtpcap_tls *tls, unsigned char *out, int len) {
    X509 *cert = SSL_get1_peer_certificate(tls->ssl);
    if (!cert) return 0;
    int n = i2d_X509(cert, NULL);
    if (n > 0 && n <= len) {
        unsigned char *p = out;
        i2d_X509(cert, &p);
    }
    X509_free(cert);
    return n > 0 ? n : 0;
}

void smtpcap_tls_free(smtpcap_tls *tls) {
    if (!tls) return;
    ERR_clear_error();
    if (!tls->failed) SSL_shutdown(tls->ssl);
    ERR_clear_error();
    SSL_free(tls->ssl);
    SSL_CTX_free(tls->ctx);
    free(tls);
}

int smtpcap_res_query(const char *name, int type, unsigned char *answer, int len, int *h_err) {
    struct __res_state state;
    memset(&state, 0, sizeof state);
    if (res_ninit(&state) != 0) { *h_err = NO_RECOVERY; return -1; }
    int n = res_nquery(&state, name, ns_c_in, type, answer, len);
    *h_err = n < 0 ? state.res_h_errno : 0;
    res_nclose(&state);
    return n;
}

int smtpcap_addresses(const char *host, int family, char *out, int outlen, char *err, int errlen) {
    struct addrinfo hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family == 6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo(host, NULL, &hints, &list);
    if (r != 0) {
        if (r == EAI_NONAME || r == EAI_NODATA || r == EAI_ADDRFAMILY) { out[0] = 0; return 0; }
        seterr(err, errlen, "address lookup failed", gai_strerror(r));
        return -1;
    }
    int count = 0, used = 0;
    out[0] = 0;
    for (struct addrinfo *a = list; a; a = a->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *addr = a->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr
                                                    : (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr;
        if (!inet_ntop(a->ai_family, addr, text, sizeof text)) continue;
        int w = snprintf(out + used, (size_t)(outlen - used), "%s\n", text);
        if (w < 0 || used + w >= outlen) break;
        used += w;
        count++;
    }
    freeaddrinfo(list);
    return count;
}

int smtpcap_fqdn(char *out, int outlen) {
    char host[256];
    if (gethostname(host, sizeof host) != 0) return -1;
    host[sizeof host - 1] = 0;
    struct addrinfo hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_CANONNAME;
    if (getaddrinfo(host, NULL, &hints, &list) == 0 && list && list->ai_canonname && strchr(list->ai_canonname, '.')) {
        snprintf(out, (size_t)outlen, "%s", list->ai_canonname);
    } else {
        snprintf(out, (size_t)outlen, "%s", host);
    }
    if (list) freeaddrinfo(list);
    return 0;
}
