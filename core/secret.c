/* Secrets: PINs and passwords in locked, never-dumped, wiped memory. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cacreg.h"

struct cacreg_secret {
    size_t len;
    char bytes[CACREG_SECRET_MAX + 1];
};

/* The page size rounded up to hold one secret. */
static size_t secret_map_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = page > 0 ? (size_t)page : 4096;

    while (size < sizeof(struct cacreg_secret))
        size *= 2;
    return size;
}

cacreg_secret *cacreg_secret_new(void)
{
    size_t size = secret_map_size();
    cacreg_secret *secret;

    secret = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (secret == MAP_FAILED)
        return NULL;
    if (mlock(secret, size) != 0) {
        munmap(secret, size);
        return NULL;
    }
    /* Best effort: keep it out of core dumps and out of a forked child. */
    (void)madvise(secret, size, MADV_DONTDUMP);
    (void)madvise(secret, size, MADV_DONTFORK);
    secret->len = 0;
    secret->bytes[0] = '\0';
    return secret;
}

void cacreg_secret_free(cacreg_secret *secret)
{
    size_t size = secret_map_size();

    if (!secret)
        return;
    OPENSSL_cleanse(secret, sizeof *secret);
    munlock(secret, size);
    munmap(secret, size);
}

cacreg_err cacreg_secret_append(cacreg_secret *secret, const char *bytes, size_t len)
{
    if (len > CACREG_SECRET_MAX - secret->len)
        return CACREG_ERR_TOO_LONG;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] == '\0')
            return CACREG_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        secret->bytes[secret->len + i] = bytes[i];
    secret->len += len;
    secret->bytes[secret->len] = '\0';
    return CACREG_OK;
}

cacreg_err cacreg_secret_move(cacreg_secret *dst, cacreg_secret *src)
{
    cacreg_err rc = cacreg_secret_append(dst, src->bytes, src->len);

    cacreg_secret_clear(src);
    return rc;
}

bool cacreg_secret_backspace(cacreg_secret *secret)
{
    if (secret->len == 0)
        return false;
    /* Step back over UTF-8 continuation bytes to the start of the character. */
    do {
        secret->len--;
    } while (secret->len > 0 && ((unsigned char)secret->bytes[secret->len] & 0xC0) == 0x80);
    OPENSSL_cleanse(secret->bytes + secret->len, CACREG_SECRET_MAX + 1 - secret->len);
    return true;
}

void cacreg_secret_clear(cacreg_secret *secret)
{
    OPENSSL_cleanse(secret->bytes, sizeof secret->bytes);
    secret->len = 0;
}

size_t cacreg_secret_len(const cacreg_secret *secret)
{
    return secret->len;
}

const char *cacreg_secret_data(const cacreg_secret *secret)
{
    return secret->bytes;
}

bool cacreg_secret_is_pin(const cacreg_secret *secret)
{
    if (secret->len < 6 || secret->len > 8)
        return false;
    for (size_t i = 0; i < secret->len; i++)
        if (secret->bytes[i] < '0' || secret->bytes[i] > '9')
            return false;
    return true;
}
