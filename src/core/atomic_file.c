/* Atomic whole-file writes and whole-file reads (atomic_file.h says why and how).
 *
 * Plain POSIX descriptors rather than stdio: write() reports ENOSPC/EIO on the call that failed
 * and there is no library buffer whose flush could fail later, so every error is seen where it
 * happens. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "frugal/io.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void release(fg_atomic_file *af) {
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->fd = -1;
}

void fg_atomic_abort(fg_atomic_file *af) {
    if (!af) return;
    if (af->fd >= 0) close(af->fd);
    if (af->tmp_path) unlink(af->tmp_path);
    release(af);
}

fg_status fg_output_path_check(const char *path) {
    if (!path || !path[0]) return fg_fail(FG_ERR_INVALID, "cannot write a file with an empty path");
    size_t n = strlen(path);
    if (path[n - 1] == '/')
        return fg_fail(FG_ERR_INVALID, "%s: names a directory (ends in '/'), expected a file name", path);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return FG_OK; /* a new file; its directory is the writer's to find */
        return fg_fail(FG_ERR_IO, "%s: cannot check the output file: %s", path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return FG_OK;
    const char *what = S_ISDIR(st.st_mode)   ? "a directory"
                       : S_ISLNK(st.st_mode) ? "a symbolic link"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISFIFO(st.st_mode)                      ? "a pipe"
                                                                   : "not a regular file";
    return fg_fail(FG_ERR_INVALID, "%s is %s, expected a regular file or a new name (an output is written to a "
                   "temporary file and renamed over the name, which would replace the %s itself)%s", path, what,
                   S_ISLNK(st.st_mode) ? "link" : S_ISDIR(st.st_mode) ? "directory" : "device or pipe",
                   S_ISLNK(st.st_mode) ? ": name the file it points to" : "");
}

fg_status fg_atomic_open(fg_atomic_file *af, const char *path) {
    FG_ASSERT(af && path);
    memset(af, 0, sizeof *af);
    af->fd = -1;
    FG_TRY(fg_output_path_check(path));
    size_t n = strlen(path) + 32;
    af->path = dup_str(path);
    af->tmp_path = malloc(n);
    if (!af->path || !af->tmp_path) {
        release(af);
        return fg_fail(FG_ERR_OOM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    /* O_NOFOLLOW: never write through a symlink planted under the temporary name. A stale file
     * of ours (same pid, earlier crash in a recycled pid) is simply truncated. */
    af->fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (af->fd < 0) {
        int e = errno;
        fg_status s = fg_fail(FG_ERR_IO, "cannot create %s (temporary file for %s): %s", af->tmp_path, path, strerror(e));
        release(af); /* nothing was created */
        return s;
    }
    return FG_OK;
}

fg_status fg_atomic_write(fg_atomic_file *af, const void *data, size_t n) {
    FG_ASSERT(af && af->fd >= 0 && (data || n == 0));
    const unsigned char *p = data;
    while (n > 0) {
        /* Linux writes at most 0x7ffff000 bytes per call; ask for no more than 1 GiB at a time */
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(af->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            fg_status s = fg_fail(FG_ERR_IO, "writing %s failed after %zu bytes: %s (temporary %s removed)", af->path,
                                  af->written, strerror(e), af->tmp_path);
            fg_atomic_abort(af);
            return s;
        }
        if (w == 0) { /* should not happen for regular files; avoid spinning */
            fg_status s = fg_fail(FG_ERR_IO, "writing %s made no progress after %zu bytes (temporary %s removed)",
                                  af->path, af->written, af->tmp_path);
            fg_atomic_abort(af);
            return s;
        }
        p += w;
        n -= (size_t)w;
        af->written += (size_t)w;
    }
    return FG_OK;
}

/* The directory part of path ("." when there is none). */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return dup_str(".");
    if (slash == path) return dup_str("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

fg_status fg_atomic_commit(fg_atomic_file *af) {
    FG_ASSERT(af && af->fd >= 0);
    fg_status s;
    if (fsync(af->fd) != 0) {
        int e = errno;
        s = fg_fail(FG_ERR_IO, "fsync of %s failed: %s (temporary %s removed)", af->path, strerror(e), af->tmp_path);
        fg_atomic_abort(af);
        return s;
    }
    int fd = af->fd;
    af->fd = -1;
    if (close(fd) != 0) {
        int e = errno;
        s = fg_fail(FG_ERR_IO, "closing %s failed: %s (temporary %s removed)", af->path, strerror(e), af->tmp_path);
        fg_atomic_abort(af);
        return s;
    }
    if (rename(af->tmp_path, af->path) != 0) {
        int e = errno;
        s = fg_fail(FG_ERR_IO, "renaming %s to %s failed: %s (temporary removed)", af->tmp_path, af->path, strerror(e));
        fg_atomic_abort(af);
        return s;
    }
    /* Make the rename durable. Some file systems cannot fsync a directory (EINVAL): nothing more
     * can be done there, and the data itself is already synced. */
    s = FG_OK;
    char *dir = dir_of(af->path);
    if (!dir) {
        s = fg_fail(FG_ERR_OOM, "%s: out of memory", af->path);
    } else {
        int dfd = open(dir, O_RDONLY | O_CLOEXEC);
        if (dfd < 0) {
            int e = errno;
            s = fg_fail(FG_ERR_IO, "%s was written but its directory %s cannot be opened to sync it: %s", af->path, dir,
                        strerror(e));
        } else {
            if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
                int e = errno;
                s = fg_fail(FG_ERR_IO, "%s was written but fsync of its directory %s failed: %s", af->path, dir,
                            strerror(e));
            }
            close(dfd);
        }
        free(dir);
    }
    release(af);
    return s;
}

fg_status fg_file_open_read(const char *path, int *fd_out, uint64_t *size) {
    FG_ASSERT(path && fd_out && size);
    *fd_out = -1;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fg_fail(FG_ERR_IO, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fg_fail(FG_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fg_fail(FG_ERR_IO, "%s is not a regular file", path);
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return FG_OK;
}

fg_status fg_file_pread_all(int fd, const char *path, uint64_t offset, void *dst, size_t n) {
    FG_ASSERT(fd >= 0 && path && (dst || n == 0));
    unsigned char *p = dst;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t r = pread(fd, p + done, want, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            return fg_fail(FG_ERR_IO, "reading %s at byte %llu failed: %s", path,
                           (unsigned long long)(offset + done), strerror(e));
        }
        if (r == 0)
            return fg_fail(FG_ERR_IO, "%s ended at byte %llu, expected %zu bytes from byte %llu (changed while read?)",
                           path, (unsigned long long)(offset + done), n, (unsigned long long)offset);
        done += (size_t)r;
    }
    return FG_OK;
}

fg_status fg_file_read_all(const char *path, unsigned char **out, size_t *len) {
    FG_ASSERT(path && out && len);
    *out = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    FG_TRY(fg_file_open_read(path, &fd, &size));
    if ((uintmax_t)size >= (uintmax_t)SIZE_MAX) {
        close(fd);
        return fg_fail(FG_ERR_OOM, "%s is too large to read into memory (%llu bytes)", path, (unsigned long long)size);
    }
    /* Read to end of file rather than trusting st_size, so a file that changes size while we
     * read is still read consistently; grow the buffer when it does. */
    size_t cap = (size_t)size + 1, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return fg_fail(FG_ERR_OOM, "cannot allocate %zu bytes to read %s", cap, path);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap < SIZE_MAX / 2 ? cap * 2 : SIZE_MAX;
            unsigned char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                free(buf);
                close(fd);
                return fg_fail(FG_ERR_OOM, "cannot allocate memory to read %s (grew past %zu bytes)", path, cap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - n;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t r = read(fd, buf + n, want);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return fg_fail(FG_ERR_IO, "reading %s failed after %zu bytes: %s", path, n, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n == cap) { /* room for the terminating NUL */
        unsigned char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            return fg_fail(FG_ERR_OOM, "cannot allocate memory to read %s", path);
        }
        buf = nb;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return FG_OK;
}
