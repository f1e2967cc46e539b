/* crypt_bench.c - the cost of encryption at rest (issue 13): a blob of SIZE bytes written and
 * read back through the store's blob API, plain and with a keyring, side by side in one run.
 * Times are CPU time of this process (CLOCK_PROCESS_CPUTIME_ID, not wall: the machine is shared),
 * the best of ROUNDS; files live in DATA_DIR (page cache: this measures the CPU work, not the
 * disk). Not a test: bench/crypt.sh builds and runs it.
 *
 *   write: store_crypt_writer (encrypt) vs write(2) of the same bytes, no fsync
 *   read:  store_blob_open + store_blob_reader_read of the whole blob, encrypted vs plain
 *
 * usage: crypt_bench DATA_DIR [MIB] */
#include "base/log.h"
#include "store/store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 5
#define BLOCK ((size_t)1 << 20)

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write size bytes of buf (in BLOCK pieces) to a new file, through w when kr is set. */
static double write_once(const store_keyring *kr, const char *path, const uint8_t *buf, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    store_crypt_writer *w = NULL;
    double t0 = cpu_s();
    if (kr)
        store_crypt_writer_open(kr, fd, &w, NULL);
    for (size_t off = 0; off < size; off += BLOCK) {
        if (w)
            store_crypt_write(w, buf + off, BLOCK, NULL);
        else if (write(fd, buf + off, BLOCK) != (ssize_t)BLOCK)
            abort();
    }
    if (w)
        store_crypt_writer_finish(w, NULL);
    double t = cpu_s() - t0;
    store_crypt_writer_free(w);
    close(fd);
    return t;
}

static double read_once(store *s, const char *hex, uint8_t *buf, size_t size)
{
    double t0 = cpu_s();
    store_blob_reader *r = NULL;
    if (store_blob_open(s, hex, &r, NULL) != MD_OK)
        abort();
    size_t total = 0, got = 1;
    while (got > 0) {
        store_blob_reader_read(r, buf, BLOCK, &got, NULL);
        total += got;
    }
    store_blob_reader_free(r);
    if (total != size)
        abort();
    return cpu_s() - t0;
}

static store *open_store(const char *dir, const store_keyring *kr)
{
    store_opts o = {.data_dir = dir, .keyring = kr};
    store *s = NULL;
    md_err e = {0};
    if (store_open(&o, &s, &e) != MD_OK) {
        fprintf(stderr, "crypt_bench: %s\n", md_err_message(&e));
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: crypt_bench DATA_DIR [MIB]\n"), 2;
    md_log_set_level(MD_LOG_ERROR);
    size_t size = (size_t)(argc > 2 ? atoi(argv[2]) : 64) * BLOCK;
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    store_keyring *kr = NULL;
    store_keyring_new(&kr, NULL);
    store_keyring_add(kr, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 64,
                      "bench", NULL);
    char dplain[4096], denc[4096], path[4200];
    snprintf(dplain, sizeof dplain, "%s/plain", argv[1]);
    snprintf(denc, sizeof denc, "%s/enc", argv[1]);
    store *sp = open_store(dplain, NULL), *se = open_store(denc, kr);
    char hp[STORE_SHA256_HEX], he[STORE_SHA256_HEX];
    if (store_blob_put(sp, buf, size, hp, NULL) != MD_OK || store_blob_put(se, buf, size, he, NULL))
        return 1;
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    uint8_t *rb = malloc(BLOCK);
    for (int r = 0; r < ROUNDS; r++) {
        snprintf(path, sizeof path, "%s/w.bin", argv[1]);
        double t[4] = {write_once(NULL, path, buf, size), write_once(kr, path, buf, size),
                       read_once(sp, hp, rb, size), read_once(se, he, rb, size)};
        for (int i = 0; i < 4; i++)
            best[i] = t[i] < best[i] ? t[i] : best[i];
    }
    double mib = (double)size / BLOCK;
    printf("blob of %.0f MiB, best of %d, CPU time of this process:\n", mib, ROUNDS);
    printf("  write plain      %8.1f MiB/s\n", mib / best[0]);
    printf("  write encrypted  %8.1f MiB/s (x%.1f the CPU of plain)\n", mib / best[1],
           best[1] / best[0]);
    printf("  read  plain      %8.1f MiB/s\n", mib / best[2]);
    printf("  read  decrypted  %8.1f MiB/s (x%.1f the CPU of plain)\n", mib / best[3],
           best[3] / best[2]);
    free(rb);
    free(buf);
    store_unref(sp);
    store_unref(se);
    store_keyring_free(kr);
    return 0;
}
