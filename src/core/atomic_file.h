/* Whole-file reads and atomic whole-file writes, private to the library (io.h's loaders and
 * writers share them).
 *
 * An atomic write goes to "<path>.tmp.<pid>" in the same directory (so the rename cannot cross
 * file systems), checks every write, fsyncs the file, closes it, renames it over <path> and
 * fsyncs the directory so the rename itself is durable. Any failure before the rename removes
 * the temporary file and returns FG_ERR_IO with strerror's reason ("No space left on device"),
 * so a crash or a full disk never leaves a half-written file under the real name. */
#ifndef FG_ATOMIC_FILE_H
#define FG_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "frugal/core.h"

typedef struct fg_atomic_file {
    int fd;          /* -1 once closed */
    char *path;      /* final name */
    char *tmp_path;  /* "<path>.tmp.<pid>" */
    size_t written;  /* bytes written so far, for messages */
} fg_atomic_file;

/* Creates the temporary file. FG_ERR_IO (naming the temporary path and the reason) on failure. */
fg_status fg_atomic_open(fg_atomic_file *af, const char *path);
/* Writes n bytes (retrying short writes and EINTR). On failure the file is aborted (temporary
 * removed) and FG_ERR_IO returned; later calls on af are then not allowed. */
fg_status fg_atomic_write(fg_atomic_file *af, const void *data, size_t n);
/* fsync, close, rename over the final path, fsync the directory. On failure before the rename
 * the temporary file is removed. Releases af in every case. */
fg_status fg_atomic_commit(fg_atomic_file *af);
/* Closes and removes the temporary file (safe after a failed write or on a released af). */
void fg_atomic_abort(fg_atomic_file *af);

/* Reads a whole regular file into a malloc'd buffer (*out, *len; the buffer has one extra NUL
 * byte after the data). FG_ERR_IO naming the path and the reason on failure; FG_ERR_OOM when the
 * buffer cannot be allocated. */
fg_status fg_file_read_all(const char *path, unsigned char **out, size_t *len);
/* Opens a regular file for reading: its descriptor (the caller closes it) and size. FG_ERR_IO
 * naming the path and the reason when it cannot be opened or is not a regular file. */
fg_status fg_file_open_read(const char *path, int *fd, uint64_t *size);
/* Reads exactly n bytes at offset (retrying short reads and EINTR); FG_ERR_IO naming the path and
 * the byte when the read fails or the file ends first. */
fg_status fg_file_pread_all(int fd, const char *path, uint64_t offset, void *dst, size_t n);

#endif
