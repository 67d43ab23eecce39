#ifndef SMTPCAP_GZIP_FILE_H
#define SMTPCAP_GZIP_FILE_H
#include <stdio.h>

/// Whether the file open on `fd` starts with gzip's magic bytes (the offset is restored).
int smtpcap_is_gzip(int fd);

/// A stdio stream that reads the gzip-compressed file open on `fd`, decompressed (zlib's
/// gzread behind fopencookie), for libpcap's pcap_fopen_offline. Takes the descriptor in every
/// case: fclose closes it, and a failure (NULL, errno set) has closed it.
FILE *smtpcap_gzip_fopen(int fd);

/// Whether the gzip-compressed file open on `fd` holds pcapng (its first four bytes
/// decompressed are a Section Header Block's type). The offset is restored.
int smtpcap_gzip_holds_pcapng(int fd);

/// Decompresses the gzip file open on `fd` into a new unlinked file in `directory` and returns
/// that file's descriptor at offset 0 (-1 on failure, errno set). `fd` is left open.
int smtpcap_gzip_inflate(int fd, const char *directory);

/// Writes the file `from` gzip-compressed to `to` (the fuzz harness's differential check of
/// the gzip path). 0 on success, -1 on failure.
int smtpcap_gzip_compress_file(const char *from, const char *to);

#endif
