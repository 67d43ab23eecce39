#define _GNU_SOURCE
#include "gzip_file.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

int smtpcap_is_gzip(int fd) {
    unsigned char magic[2];
    ssize_t n = pread(fd, magic, 2, 0);
    return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

static ssize_t gz_read(void *cookie, char *buffer, size_t size) {
    if (size > 1u << 30) size = 1u << 30;
    int n = gzread((gzFile)cookie, buffer, (unsigned)size);
    if (n < 0) {
        errno = EIO;
        return -1;
    }
    return n;
}

static int gz_close(void *cookie) {
    return gzclose((gzFile)cookie) == Z_OK ? 0 : EOF;
}

FILE *smtpcap_gzip_fopen(int fd) {
    gzFile gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    gzbuffer(gz, 1 << 18);
    cookie_io_functions_t io = {.read = gz_read, .write = NULL, .seek = NULL, .close = gz_close};
    FILE *file = fopencookie(gz, "rb", io);
    if (file == NULL) {
        int saved = errno;
        gzclose(gz); /* closes fd */
        errno = saved;
    }
    return file;
}

int smtpcap_gzip_holds_pcapng(int fd) {
    int copy = dup(fd);
    if (copy < 0) return 0;
    gzFile gz = gzdopen(copy, "rb");
    if (gz == NULL) {
        close(copy);
        return 0;
    }
    unsigned char magic[4];
    int n = gzread(gz, magic, 4);
    gzclose(gz);
    lseek(fd, 0, SEEK_SET);
    return n == 4 && magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a;
}

int smtpcap_gzip_inflate(int fd, const char *directory) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/smtpcap-gunzip-XXXXXX", directory) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int out = mkostemp(path, O_CLOEXEC);
    if (out < 0) return -1;
    unlink(path);
    int copy = dup(fd);
    gzFile gz = copy < 0 ? NULL : gzdopen(copy, "rb");
    if (gz == NULL) {
        if (copy >= 0) close(copy);
        close(out);
        errno = ENOMEM;
        return -1;
    }
    char buffer[1 << 16];
    int n;
    while ((n = gzread(gz, buffer, sizeof buffer)) > 0) {
        for (int done = 0; done < n;) {
            ssize_t w = write(out, buffer + done, (size_t)(n - done));
            if (w < 0) {
                if (errno == EINTR) continue;
                int saved = errno;
                gzclose(gz);
                close(out);
                errno = saved;
                return -1;
            }
            done += (int)w;
        }
    }
    /* A damaged or cut stream ends the copy: what came before it is read, as with a cut file. */
    gzclose(gz);
    lseek(fd, 0, SEEK_SET);
    lseek(out, 0, SEEK_SET);
    return out;
}

int smtpcap_gzip_compress_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (in == NULL) return -1;
    gzFile out = gzopen(to, "wb6");
    if (out == NULL) {
        fclose(in);
        return -1;
    }
    char buffer[1 << 14];
    size_t n;
    int status = 0;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if (gzwrite(out, buffer, (unsigned)n) != (int)n) {
            status = -1;
            break;
        }
    }
    fclose(in);
    if (gzclose(out) != Z_OK) status = -1;
    return status;
}
