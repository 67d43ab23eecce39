#ifndef SMTPCAP_PROBE_SUPPORT_H
#define SMTPCAP_PROBE_SUPPORT_H
/* The system calls and OpenSSL calls of `smtpcap probe`, behind a small C interface: the one
 * place where its pointers live. Every call that waits takes a timeout in milliseconds. */

typedef struct smtpcap_tls smtpcap_tls;

/* A TCP socket of `family` (4 or 6) bound to an ephemeral port, which *local_port receives
 * (so the capture filter can name it before the connection starts). -1 on error. */
int smtpcap_socket(int family, int *local_port, char *err, int errlen);
/* Connects `fd` to address:port within timeout_ms. 0, or -1 with err set. */
int smtpcap_connect(int fd, int family, const char *address, int port, int timeout_ms, char *err, int errlen);
/* Reads up to len bytes (through TLS when tls is set). >0 bytes, 0 end of stream, -1 error
 * (err set), -2 timeout. */
int smtpcap_recv(int fd, smtpcap_tls *tls, unsigned char *buf, int len, int timeout_ms, char *err, int errlen);
/* Writes all len bytes. 0, or -1 with err set. */
int smtpcap_send(int fd, smtpcap_tls *tls, const unsigned char *buf, int len, int timeout_ms, char *err, int errlen);
void smtpcap_close(int fd);
/* The connected socket's local address as an SMTP address literal ("[198.51.100.10]",
 * "[IPv6:2001:db8::10]"). 0, or -1. */
int smtpcap_local_literal(int fd, char *out, int outlen);

/* A TLS client handshake on fd with SNI `server_name` (NULL: none), no certificate
 * verification (opportunistic, as MTAs do). NULL with err set on failure. */
smtpcap_tls *smtpcap_tls_start(int fd, const char *server_name, int timeout_ms, char *err, int errlen);
/* The agreed version and cipher (OpenSSL's names). */
void smtpcap_tls_info(smtpcap_tls *tls, char *version, int versionlen, char *cipher, int cipherlen);
/* The peer's leaf certificate, DER: its length (copied when it fits in len), 0 when none. */
int smtpcap_tls_peer_der(smtpcap_tls *tls, unsigned char *out, int len);
void smtpcap_tls_free(smtpcap_tls *tls);

/* res_query(3) on the system resolver (/etc/resolv.conf): the raw answer's length, or -1
 * with *h_err set to h_errno (1 HOST_NOT_FOUND, 2 TRY_AGAIN, 3 NO_RECOVERY, 4 NO_DATA). */
int smtpcap_res_query(const char *name, int type, unsigned char *answer, int len, int *h_err);
/* getaddrinfo(3) for `host` in `family` (4 or 6): addresses as text, one per line, into out.
 * The number of addresses, or -1 with err set (gai_strerror). */
int smtpcap_addresses(const char *host, int family, char *out, int outlen, char *err, int errlen);
/* This host's name as the resolver qualifies it (the FQDN), or the plain host name. */
int smtpcap_fqdn(char *out, int outlen);

#endif
