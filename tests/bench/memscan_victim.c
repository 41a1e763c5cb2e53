/*
 * memscan_victim: a process that holds secrets in known places, for
 * test_memscan.sh. Built -O0 by that test; no secret is ever in its binary or
 * its arguments: each is made from a seed, byte by byte, where it is kept.
 *
 * usage: memscan_victim SEED BIG_MIB   (secret B, as text, on standard input)
 *
 * Secret A: 3 copies in heap blocks, 1 in main's stack frame, and a 4th heap
 * copy wiped with explicit_bzero and freed (so 4 to be found). Secret B (read
 * from standard input): the read buffer, and a copy in a block freed without
 * wiping, after the 16 bytes malloc reuses (2). Secret C: 1 copy on a second
 * thread's stack. Secret D: 1 copy in a BIG_MIB anonymous reservation that is
 * mostly never touched, astride the 1 MiB boundary 40/64 of the way in, inside
 * 2 touched MiB. Marker E lies in the binary's read-only data only. And one
 * page that cannot be read: a shared file mapping's second page, past the
 * end of its one-page file.
 *
 * When all is in place it prints "ready A_HEX C_HEX D_HEX" and sleeps until
 * killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SECRET_LEN 24

static const char marker_e[] = "memscan victim read-only marker E";
static const char *volatile keep_marker_e = marker_e;
static uint32_t seed;
static pthread_barrier_t ready;

/* Byte i of secret `which`, computed on its own so no copy exists elsewhere. */
static unsigned char secret_byte(unsigned which, unsigned i)
{
    uint32_t x = seed * 2654435761u ^ which * 40503u ^ (i + 1) * 0x9E3779B9u;

    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    x *= 0x297A2D39u;
    x ^= x >> 15;
    return (unsigned char)x;
}

static void put_secret(volatile unsigned char *dst, unsigned which)
{
    for (unsigned i = 0; i < SECRET_LEN; i++)
        dst[i] = secret_byte(which, i);
}

/* Writes a secret's hex form, made again from the seed, not from a copy. */
static void print_hex(unsigned which)
{
    static const char digits[] = "0123456789abcdef";
    char hex[2 * SECRET_LEN + 1];

    for (size_t i = 0; i < SECRET_LEN; i++) {
        unsigned char b = secret_byte(which, (unsigned)i);
        hex[2 * i] = digits[b >> 4];
        hex[2 * i + 1] = digits[b & 15];
    }
    hex[sizeof hex - 1] = ' ';
    if (write(1, hex, sizeof hex) < 0)
        exit(1);
}

/* malloc, or the end of the victim. */
static unsigned char *xmalloc(size_t size)
{
    unsigned char *p = malloc(size);

    if (!p)
        exit(1);
    return p;
}

static void *thread_main(void *arg)
{
    volatile unsigned char on_thread_stack[SECRET_LEN + 8];

    (void)arg;
    put_secret(on_thread_stack + 4, 'C');
    pthread_barrier_wait(&ready);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    volatile unsigned char on_stack[SECRET_LEN + 8];
    unsigned char *heap[3], *wiped, *freed_b, *b, *big;
    size_t big_size, at;
    ssize_t b_len;
    int memfd;
    pthread_t thread;

    if (argc != 3)
        return 2;
    seed = (uint32_t)strtoul(argv[1], NULL, 10);
    big_size = strtoul(argv[2], NULL, 10) << 20;

    for (int i = 0; i < 3; i++) {
        heap[i] = xmalloc(64);
        put_secret(heap[i] + 8, 'A');
    }
    put_secret(on_stack + 4, 'A');
    wiped = xmalloc(64);
    put_secret(wiped + 8, 'A');
    explicit_bzero(wiped, 64);
    free(wiped);

    b = xmalloc(128);
    freed_b = xmalloc(96);
    b_len = read(0, b, 127);
    if (b_len <= 0)
        exit(1);
    memcpy(freed_b + 32, b, (size_t)b_len);
    free(freed_b);

    big = mmap(NULL, big_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big == MAP_FAILED)
        exit(1);
    madvise(big, big_size, MADV_NOHUGEPAGE); /* 4 KiB pages: the runs are as touched */
    at = big_size / 64 * 40;
    memset(big + at - (1 << 20), 0x5A, 2 << 20);
    put_secret(big + at - SECRET_LEN / 2, 'D');

    memfd = memfd_create("memscan-victim", 0);
    if (memfd < 0 || ftruncate(memfd, 4096) < 0 ||
        mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) == MAP_FAILED)
        return 1;

    pthread_barrier_init(&ready, NULL, 2);
    if (pthread_create(&thread, NULL, thread_main, NULL) != 0)
        return 1;
    pthread_barrier_wait(&ready);

    if (write(1, "ready ", 6) < 0)
        return 1;
    print_hex('A');
    print_hex('C');
    print_hex('D');
    if (write(1, "\n", 1) < 0)
        return 1;
    for (;;)
        pause();
}
