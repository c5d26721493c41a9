// safetensors.h — read and write checkpoints in the safetensors layout (ARCHITECTURE.md §5).
// Format: https://github.com/huggingface/safetensors — u64 LE header length N, N bytes of JSON
// {name: {"dtype","shape","data_offsets":[begin,end)}, "__metadata__": {str: str}}, then the data.
//
// attnlab writes and reads F32 only, little-endian on disk whatever the host. Writes are atomic
// (temp file beside the target, fsync, rename, fsync the directory); reads validate everything and
// fail with one line naming the file and the problem, never a crash. Functions that can fail return
// 0 on success and -1 with the message in (err, errlen) (check.h convention).
#ifndef ATTNLAB_SAFETENSORS_H
#define ATTNLAB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// Writing

// One tensor to write. shape[0..ndim) in PyTorch order (row-major, last index fastest); ndim 0
// is a scalar (one element). data holds prod(shape) floats; it may be NULL only if that is 0.
typedef struct {
    const char *name;
    int ndim;          // 0..4
    int64_t shape[4];  // each >= 0
    const float *data;
} st_tensor_t;

// One "__metadata__" entry; both strings are UTF-8 (any content: JSON escaping is done here).
typedef struct {
    const char *key;
    const char *value;
} st_meta_t;

// Write tensors (in the order given, contiguous, data 8-byte aligned in the file) and metadata
// (omitted from the header when n_meta is 0) to `path`, atomically: the data goes to
// "<path>.tmp-<pid>" beside it, is flushed and fsynced, then renamed over `path`, and the
// directory is fsynced (a symlink at `path` is replaced, not followed). On any failure the temp
// file is removed, an existing file at `path` is left untouched, and -1 is returned with e.g.
//   "cannot write checkpoint 'ckpt.st': No space left on device; the previous file is kept".
// Invalid arguments (bad ndim or dim, duplicate or non-UTF-8 names, NULL data) are reported the
// same way before anything is written.
int st_write(const char *path, const st_tensor_t *tensors, int n_tensors, const st_meta_t *meta,
             int n_meta, char *err, size_t errlen);

// ---------------------------------------------------------------------------------------------
// Reading

// One tensor read back. data is 64-byte aligned and holds numel floats (numel is 1 for ndim 0;
// data is valid but unused when numel is 0). Owned by the st_file_t.
typedef struct {
    char *name;
    int ndim;          // 0..8
    int64_t shape[8];
    size_t numel;
    float *data;
} st_entry_t;

// A whole file in memory. tensors are in the order of the JSON header; meta in the order of
// "__metadata__". Everything is owned by the struct and released by st_free().
typedef struct {
    st_entry_t *tensors;
    int n_tensors;
    st_meta_t *meta;
    int n_meta;
    void *priv;      // the one buffer all tensors' data live in
    int *by_name;    // tensor indices sorted by name: st_find is a binary search
} st_file_t;

// Read and validate the whole file: header length against the file size, JSON syntax and types,
// dtype F32, non-negative integer dims, shape product * 4 == end - begin, offsets inside the
// data region and not overlapping (gaps are allowed), duplicate names, "__metadata__" an object
// of strings. On failure *out is zeroed (st_free on it is harmless) and -1 is returned with one
// line naming the path, e.g. "checkpoint 'x.st': tensor 'wte' has dtype F16; attnlab
// checkpoints are F32".
int st_read(const char *path, st_file_t *out, char *err, size_t errlen);

// The tensor called `name`, or NULL (O(log n_tensors)).
const st_entry_t *st_find(const st_file_t *f, const char *name);
// The metadata value for `key`, or NULL.
const char *st_meta_get(const st_file_t *f, const char *key);
// Free everything st_read allocated and zero *f. Safe on a zeroed struct and when called twice.
void st_free(st_file_t *f);

#endif
