/* The host and disk tiers under the device.
 *
 * Host tier: ONE arena, allocated once when the policy is planned and reused by every iteration
 * (vDNN's pinned cudaMallocHost buffer). Every offloaded storage root gets a fixed offset in it,
 * decided at plan time: in one iteration every offload happens (forward) before any prefetch
 * (backward), so all offloaded tensors are on the host at once and a bump allocation is exact.
 * Allocating per tensor per iteration is the known failure of PyTorch's save_on_cpu, and what
 * this avoids.
 *
 * Disk tier: beyond the host capacity, a root gets its own spill file under the spill directory
 * (created if missing, not its parents), created (empty) at plan time, written with pwrite by the link's copy threads and read back with
 * pread, removed when the policy is destroyed. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmem/vmem_impl.h"

static size_t round64(size_t x) { return (x + 63) / 64 * 64; }

/* Spill files of every policy in the process get distinct names: two graphs of one model share
 * storage ids and names, and with one spill directory they wrote and read each other's file. */
static atomic_ulong spill_seq;

static fg_status open_spill(fg_vmem_tiers *t, fg_vmem_slot *s, const char *name) {
    char safe[FG_NAME_MAX];
    size_t k = 0;
    for (const char *c = name; *c && k + 1 < sizeof safe; c++) safe[k++] = (isalnum((unsigned char)*c) || *c == '.' || *c == '-') ? *c : '_';
    safe[k] = 0;
    size_t n = strlen(t->spill_dir) + strlen(safe) + 64;
    s->path = malloc(n);
    if (!s->path) return fg_fail(FG_ERR_OOM, "disk tier: out of host memory");
    snprintf(s->path, n, "%s/fg-spill-%ld-%lu-%d-%s.bin", t->spill_dir, (long)getpid(),
             (unsigned long)atomic_fetch_add(&spill_seq, 1), (int)s->root, safe);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->fd < 0 && errno == EEXIST) { /* left by a killed process that had this pid: ours to reuse */
        unlink(s->path);
        s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (s->fd < 0) {
        fg_status st = fg_fail(FG_ERR_IO, "disk tier: cannot create spill file '%s' for '%s': %s", s->path, name,
                               strerror(errno));
        free(s->path);
        s->path = NULL;
        return st;
    }
    return FG_OK;
}

fg_status fg_vmem_tiers_place(fg_vmem_tiers *t, fg_vmem_slot *slots, int n, size_t host_capacity) {
    size_t host = 0, need = 0;
    for (int i = 0; i < n; i++) need += round64(slots[i].bytes);
    for (int i = 0; i < n; i++) {
        fg_vmem_slot *s = &slots[i];
        s->fd = -1;
        s->path = NULL;
        s->valid = 0;
        size_t b = round64(s->bytes);
        if (host_capacity == 0 || host + b <= host_capacity) {
            s->on_disk = 0;
            s->host_off = host;
            host += b;
        } else {
            s->on_disk = 1;
        }
    }
    int n_disk = 0;
    for (int i = 0; i < n; i++) n_disk += slots[i].on_disk;
    if (n_disk && !t->spill_dir) {
        char a[32], b[32];
        return fg_fail(FG_ERR_OOM,
                       "host tier: %s of offloaded tensors do not fit the host capacity of %s and there is no "
                       "spill directory for the disk tier",
                       fg_bytes_str(a, sizeof a, (double)need), fg_bytes_str(b, sizeof b, (double)host_capacity));
    }
    /* the spill directory is created when missing (its parent must exist), like a cache dir */
    if (n_disk && mkdir(t->spill_dir, 0700) != 0 && errno != EEXIST)
        return fg_fail(FG_ERR_IO, "disk tier: cannot create the spill directory '%s': %s", t->spill_dir, strerror(errno));
    t->host_bytes = host;
    if (host) {
        void *p = NULL;
        if (posix_memalign(&p, 64, host) != 0) {
            char a[32];
            return fg_fail(FG_ERR_OOM, "host tier: cannot allocate the %s arena", fg_bytes_str(a, sizeof a, (double)host));
        }
        t->host = p;
    }
    t->disk_bytes = 0;
    t->n_disk = 0;
    for (int i = 0; i < n; i++)
        if (slots[i].on_disk) {
            FG_TRY(open_spill(t, &slots[i], slots[i].name));
            t->disk_bytes += slots[i].bytes;
            t->n_disk++;
        }
    return FG_OK;
}

void fg_vmem_tiers_free(fg_vmem_tiers *t, fg_vmem_slot *slots, int n) {
    for (int i = 0; i < n; i++) {
        if (slots[i].fd >= 0) close(slots[i].fd);
        if (slots[i].path) unlink(slots[i].path);
        free(slots[i].path);
        slots[i].fd = -1;
        slots[i].path = NULL;
    }
    free(t->host);
    t->host = NULL;
    t->host_bytes = 0;
}
