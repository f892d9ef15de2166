/* commit_probe: the disk's ceiling for acked writes, the figure Parley's
 * acked publish rate is divided by (bench/compare.sh --all). It appends
 * records to a file and makes them durable with fdatasync in batches, as a
 * group commit does, with nothing else: no database, no index, no network.
 * For each batch size it prints one JSON line: records/s and the latency of
 * a batch (write plus fdatasync), p50 and p99.
 *
 *   commit_probe [--dir DIR] [--record BYTES] [--duration S] [--batches 1,16,64,256]
 *
 * --dir must be on the disk whose ceiling is wanted (the data dir's); the
 * probe's file is created there and removed at the end. */

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 20)

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One run of `batch` records per fdatasync for `secs` seconds. */
static int run(const char *path, size_t record, long batch, double secs, int64_t *lat)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    size_t chunk = record * (size_t)batch;
    char *buf = malloc(chunk);
    if (!buf) return -1;
    memset(buf, 'r', chunk);
    long n = 0, records = 0;
    int64_t start = now_us(), end = start + (int64_t)(secs * 1e6);
    while (now_us() < end && n < MAX_SAMPLES) {
        int64_t t0 = now_us();
        if (write(fd, buf, chunk) != (ssize_t)chunk || fdatasync(fd)) {
            perror("write/fdatasync");
            break;
        }
        lat[n++] = now_us() - t0;
        records += batch;
    }
    double elapsed = (double)(now_us() - start) / 1e6;
    qsort(lat, (size_t)n, sizeof(*lat), cmp64);
    printf("{\"probe\":\"commit\",\"record\":%zu,\"batch\":%ld,\"records_per_s\":%.0f,"
           "\"syncs_per_s\":%.0f,\"batch_p50_us\":%lld,\"batch_p99_us\":%lld}\n",
           record, batch, records / elapsed, n / elapsed, n ? (long long)lat[n / 2] : 0,
           n ? (long long)lat[(n * 99) / 100] : 0);
    fflush(stdout);
    free(buf);
    close(fd);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = ".", *batches = "1,16,64,256";
    size_t record = 256;
    double secs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--record"))
            record = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches"))
            batches = argv[i + 1];
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/commit_probe.%ld", dir, (long)getpid());
    int64_t *lat = malloc(MAX_SAMPLES * sizeof(*lat));
    if (!lat || !record) return 2;
    for (const char *p = batches; *p;) {
        long b = strtol(p, (char **)&p, 10);
        if (b > 0 && run(path, record, b, secs, lat)) return 1;
        if (*p == ',')
            p++;
        else if (*p)
            return 2;
    }
    free(lat);
    return 0;
}
