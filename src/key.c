/*
 * The server's shared key, kept where a cell or a crash cannot take it:
 * one page of its own, locked in RAM (never swapped), left out of core
 * dumps, and wiped in every child the process creates (MADV_WIPEONFORK),
 * so a cell, a copy of the server made by clone3, holds zeros there.  The
 * key is read straight into that page; no other copy is made.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_PAGE 4096

static int fail(cb_error *err, const char *path, const char *why)
{
        cb_error_set(err, "key_file", "key file %s: %s", path, why);
        return -1;
}

static uint8_t *secret_page(void)
{
        void *p = mmap(NULL, KEY_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
                return NULL;
        if (mlock(p, KEY_PAGE) < 0 || madvise(p, KEY_PAGE, MADV_DONTDUMP) < 0 ||
            madvise(p, KEY_PAGE, MADV_WIPEONFORK) < 0) {
                munmap(p, KEY_PAGE);
                return NULL;
        }
        return p;
}

/* The whole file into buf; its size in *len.  The file must stay under a page. */
static int read_all(int fd, uint8_t *buf, size_t *len)
{
        ssize_t n;

        *len = 0;
        while ((n = read(fd, buf + *len, KEY_PAGE - *len)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || (*len += (size_t)n) >= KEY_PAGE)
                        return -1;
        }
        return 0;
}

int cb_key_load(const char *path, struct cb_key *key, cb_error *err)
{
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        int rc;

        memset(key, 0, sizeof(*key));
        if (fd < 0)
                return fail(err, path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return fail(err, path, "not a regular file");
        }
        if (st.st_mode & (S_IRWXG | S_IRWXO)) {
                close(fd);
                return fail(err, path, "readable or writable by others; chmod 600 it");
        }
        key->bytes = secret_page();
        if (!key->bytes) {
                close(fd);
                return fail(err, path, "cannot lock memory for it");
        }
        rc = read_all(fd, key->bytes, &key->len);
        close(fd);
        if (rc < 0 || key->len < CB_KEY_MIN) {
                cb_key_free(key);
                return fail(err, path,
                            rc < 0 ? "unreadable or larger than 4095 bytes"
                                   : "shorter than 32 bytes");
        }
        return 0;
}

void cb_key_free(struct cb_key *key)
{
        if (key->bytes) {
                sodium_memzero(key->bytes, KEY_PAGE);
                munlock(key->bytes, KEY_PAGE);
                munmap(key->bytes, KEY_PAGE);
        }
        memset(key, 0, sizeof(*key));
}
