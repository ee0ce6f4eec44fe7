// pardict C ABI: a concurrent dictionary over fixed-size byte blobs, for JIT callers (numba).
//
// A dictionary is created with the byte sizes of its keys and values and, for keys and values that
// hold references to numba runtime (NRT) objects, bit masks saying which 8-byte words are
// MemInfo pointers (bit i: the word at byte offset 8*i) and which words start a numba unicode
// string struct inside a key (48 bytes: data, length, kind, is_ascii, hash, meminfo, parent).
//
// Keys: the caller passes a buffer of the key's size class (4, 8, 16, 32, 64 or 128 bytes, see
// pardict_key_class) holding the key with every padding byte zero and floats canonical (-0.0 as
// +0.0, one NaN). The dictionary hashes the bytes itself; string fields are hashed and compared by
// code points. Values: buffers of the value's size class (4 ... 256 bytes: powers of two, and 56
// for 49-56 bytes, the size of a 1-d numba array).
//
// Ownership (the refcount-pruning contract of numba's NRT): every function *borrows* its inputs;
// the dictionary increfs what it stores. Functions that hand a value out hand out a *new*
// reference (get, setdefault, pop, popitem, and the old value of a replacing set); the caller
// releases it. The dictionary never releases a reference while it holds one of its own locks.
//
// No C++ exception crosses this interface: failures are negative status codes.
#ifndef PARDICT_CAPI_H
#define PARDICT_CAPI_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define PARDICT_API __declspec(dllexport)
#else
#define PARDICT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum pardict_status {
  PARDICT_OK = 0,
  PARDICT_ERR_NOMEM = -1,      // allocation failed or the requested size is absurd
  PARDICT_ERR_INVALID = -2,    // bad sizes or masks, null handle
  PARDICT_ERR_REENTRANT = -3,  // called from inside this dictionary's own visitor
  PARDICT_ERR_MUTATED = -4,    // iterator: this thread changed the dictionary's keys meanwhile
  PARDICT_ERR_INTERNAL = -5,
  PARDICT_ERR_CALLBACK = -6,  // pardict_update: the callback failed; nothing was changed
  // In a fork() child: the dictionary existed when the process forked while operations on some
  // dictionary were in flight and did not finish in time; it may be half-changed, so it is not
  // touched (freeing it leaks it). Dictionaries made in the child work.
  PARDICT_ERR_FORKED = -7
};

// What a successful element operation reports (non-negative results). Each function below says
// which of these it returns; pardict_unowned_find (a matching copy or none) and
// pardict_iter_next (an element or the end) report FOUND and ABSENT too.
enum pardict_result {
  PARDICT_ABSENT = 0,     // get, contains, pop, popitem, visit, combine_present: no such key
  PARDICT_FOUND = 1,      // ... the key was there
  PARDICT_INSERTED = 0,   // set, set_array: the key was new
  PARDICT_REPLACED = 1,   // set, set_array: the key was there; its value was replaced
  PARDICT_NEED_COPY = 2,  // set_array: no copy of the borrowed array to share; nothing stored
  PARDICT_NEW_KEY = 1,    // insert, setdefault, combine, update: the key was new and is stored
  PARDICT_OLD_KEY = 0     // insert, setdefault: the key was there (nothing changed);
                          // combine, update: the key was there and its value was updated
};

// numba's data model, as the C side reads it: byte offsets inside a numba array struct and a
// numba unicode string struct (numba/core/datamodel/models.py ArrayModel, UnicodeModel). The
// Python package checks these against the installed numba at import.
enum pardict_numba_layout {
  PARDICT_NB_ARRAY_MEMINFO = 0,    // NRT MemInfo*, null for a borrowed view
  PARDICT_NB_ARRAY_NITEMS = 16,    // intp
  PARDICT_NB_ARRAY_ITEMSIZE = 24,  // intp
  PARDICT_NB_ARRAY_DATA = 32,      // element pointer
  PARDICT_NB_ARRAY_SHAPE = 40,     // intp shape[ndim], then intp strides[ndim]
  PARDICT_NB_UNICODE_DATA = 0,     // code units
  PARDICT_NB_UNICODE_LENGTH = 8,   // intp, in code points
  PARDICT_NB_UNICODE_KIND = 16,    // int32: bytes per code point (1, 2 or 4)
  PARDICT_NB_UNICODE_IS_ASCII = 20,
  PARDICT_NB_UNICODE_HASH = 24,  // intp, -1 when not computed
  PARDICT_NB_UNICODE_MEMINFO = 32,
  PARDICT_NB_UNICODE_SIZE = 48  // with `parent`, the last field
};

typedef struct pardict_dict pardict_dict;
typedef struct pardict_iter pardict_iter;

// Size class (bytes) a key or value of `size` bytes is stored in; 0 when too large.
PARDICT_API uint32_t pardict_key_class(uint32_t size);
PARDICT_API uint32_t pardict_value_class(uint32_t size);

// Called to release an NRT MemInfo reference (numba's NRT_MemInfo_release). Set once at import.
PARDICT_API void pardict_set_release(void (*release)(void* meminfo));

PARDICT_API pardict_dict* pardict_new(uint32_t key_size, uint32_t value_size, uint32_t key_ref_mask,
                                      uint32_t key_str_mask, uint32_t value_ref_mask,
                                      int64_t n_keys, int32_t* status);
PARDICT_API void pardict_free(pardict_dict* d);
// NRT destructor for a MemInfo whose payload holds a pardict_dict*.
PARDICT_API void pardict_meminfo_dtor(void* payload, size_t size, void* info);
// NRT destructor for the MemInfo that stands for a 1-D array view in a dictionary of arrays
// (pardict.numba.convert, "Arrays as one word"): its payload is the view's numba array struct,
// whose MemInfo reference it releases.
PARDICT_API void pardict_array_view_dtor(void* payload, size_t size, void* info);

PARDICT_API int64_t pardict_len(const pardict_dict* d);
// 0 inserted, 1 replaced (old value written to old_out, a new reference), < 0 error.
PARDICT_API int32_t pardict_set(pardict_dict* d, const void* key, const void* value, void* old_out);
// 1 found (value written to out, a new reference), 0 absent, < 0 error.
PARDICT_API int32_t pardict_get(const pardict_dict* d, const void* key, void* out);
PARDICT_API int32_t pardict_contains(const pardict_dict* d, const void* key);
// 1 removed (value written to out, a new reference), 0 absent, < 0 error.
PARDICT_API int32_t pardict_pop(pardict_dict* d, const void* key, void* out);
// 1 removed some element (key and value written out, new references), 0 empty, < 0 error.
PARDICT_API int32_t pardict_popitem(pardict_dict* d, void* key_out, void* value_out);
// Atomic: inserts dflt when absent. Writes the stored value to out (a new reference).
// 1 inserted, 0 was present, < 0 error.
PARDICT_API int32_t pardict_setdefault(pardict_dict* d, const void* key, const void* dflt,
                                       void* out);
// 1 inserted, 0 was present (nothing changed), < 0 error.
PARDICT_API int32_t pardict_insert(pardict_dict* d, const void* key, const void* value);

// ---- atomic read-modify-write ----------------------------------------------------------------
// Combining operations and the scalar kinds a value's fields may have.
enum pardict_op {
  PARDICT_OP_ASSIGN = -1,  // bulk operations only: store the value
  PARDICT_OP_ADD = 0,      // integers wrap around (two's complement), floats follow IEEE
  PARDICT_OP_MIN = 1,  // keeps the stored field unless the new one compares less (NaN never does)
  PARDICT_OP_MAX = 2   // keeps the stored field unless the new one compares greater
};
enum pardict_kind {
  PARDICT_KIND_I8 = 1,
  PARDICT_KIND_I16 = 2,
  PARDICT_KIND_I32 = 3,
  PARDICT_KIND_I64 = 4,
  PARDICT_KIND_U8 = 5,
  PARDICT_KIND_U16 = 6,
  PARDICT_KIND_U32 = 7,
  PARDICT_KIND_U64 = 8,
  PARDICT_KIND_F32 = 9,
  PARDICT_KIND_F64 = 10
};
// One atomic step: inserts `value` when `key` is absent, else combines each field of the stored
// value with the same field of `value`. A value is described by n_fields pairs (byte offset,
// kind) in `fields`; bytes outside the fields are left as stored. Writes the resulting stored
// value to out (value class bytes; may be NULL). Only for values without references (a value
// layout with references gives PARDICT_ERR_INVALID, as do bad ops, kinds or offsets).
// 1 inserted, 0 combined, < 0 error.
PARDICT_API int32_t pardict_combine(pardict_dict* d, const void* key, const void* value, int32_t op,
                                    const int32_t* fields, int32_t n_fields, void* out);

// Reads the value at `value` (value class bytes) and writes the new value there. Returns 0, or
// nonzero to abandon the update.
typedef int32_t (*pardict_update_fn)(void* ctx, void* value);
// One atomic step: v = the stored value, or a copy of dflt when key is absent; cb(ctx, &v); v is
// stored. cb runs under the element's lock and must not use d (a call on d from cb gets
// PARDICT_ERR_REENTRANT instead of deadlocking). If cb returns nonzero, nothing changes and the
// result is PARDICT_ERR_CALLBACK. Writes the stored value to out (may be NULL). Only for values
// without references. 1 inserted, 0 updated, < 0 error.
PARDICT_API int32_t pardict_update(pardict_dict* d, const void* key, const void* dflt,
                                   pardict_update_fn cb, void* ctx, void* out);

// Runs cb(ctx, value) on key's stored value under the element's lock. cb may change what the value
// references (an array's elements) but must leave the value's own bytes alone; it must not use d
// (PARDICT_ERR_REENTRANT). 1 found (cb returned 0), 0 absent (cb not called),
// PARDICT_ERR_CALLBACK if cb returned nonzero, < 0 error.
PARDICT_API int32_t pardict_visit(pardict_dict* d, const void* key, pardict_update_fn cb,
                                  void* ctx);

// pardict_combine without the insert: combines into key's stored value if present (out as
// there). The key is only compared, never stored, so it may borrow memory it does not own (a
// string struct without a MemInfo pointing into the caller's buffer). 1 combined, 0 absent.
PARDICT_API int32_t pardict_combine_present(pardict_dict* d, const void* key, const void* value,
                                            int32_t op, const int32_t* fields, int32_t n_fields,
                                            void* out);

// ---- bulk operations -------------------------------------------------------------------------
// n contiguous key blobs of the key class size (values: of the value class size), split over
// `threads` threads (<= 1: the calling thread only; never more than the CPUs the process may run
// on, since extra workers would only time-slice). Each element operation is atomic on its own; the
// batch as a whole is not. Only for layouts without references or string keys (PARDICT_ERR_INVALID
// otherwise). Returns a non-negative status on success; *count_out (may be NULL) gets the number
// found (get_many) or inserted (combine_many). values_out: value blobs of found keys are written,
// others left untouched; found_out: 0/1. get_many with values_out NULL (a membership test)
// accepts values that hold references.
PARDICT_API int32_t pardict_get_many(const pardict_dict* d, const void* keys, int64_t n,
                                     void* values_out, uint8_t* found_out, int32_t threads,
                                     int64_t* count_out);
// op: PARDICT_OP_ASSIGN (store the value) or a combining op with its field descriptors.
PARDICT_API int32_t pardict_combine_many(pardict_dict* d, const void* keys, const void* values,
                                         int64_t n, int32_t op, const int32_t* fields,
                                         int32_t n_fields, int32_t threads, int64_t* count_out);
// Bulk add/min/max into a dictionary whose key is one string, from a NumPy fixed-width unicode
// array: n elements of `width` UCS4 code points each (trailing NULs are padding), and a value
// blob per element every `value_stride` bytes (the value class size, or 0: one value for all).
// Rows are aggregated per word first (per thread; no numba string is built), then each distinct
// word the dictionary holds is combined in one atomic step. The C ABI cannot create strings, so
// words the dictionary lacks are not inserted: for each, the index of a row holding it goes to
// miss_rows and its aggregated value (value class bytes) to miss_values, both with room for n,
// and *n_miss gets their number; the caller inserts them with pardict_combine (a word may be
// reported once per thread). The batch as a whole is not atomic.
PARDICT_API int32_t pardict_combine_many_ucs4(pardict_dict* d, const void* chars, int64_t width,
                                              int64_t n, const void* values, int64_t value_stride,
                                              int32_t op, const int32_t* fields, int32_t n_fields,
                                              int32_t threads, int64_t* miss_rows,
                                              void* miss_values, int64_t* n_miss);
// pardict_combine_many_ucs4 from Arrow strings (utf8 / large_utf8 without nulls): string r
// (r < n) is the UTF-8 bytes data[offsets[first + r] .. offsets[first + r + 1]), the offsets being
// int32 (offset_bytes 4) or int64 (offset_bytes 8), and data holding data_size bytes. Rows are
// aggregated per word by their bytes (no conversion, no numba string), and each distinct word is
// decoded once to combine it into the dictionary. value_stride 0: every row has the value at
// `values` (a count). Misses as in pardict_combine_many_ucs4 (rows 0 .. n - 1, relative to first,
// and aggregated values, room for n of each), except that each distinct byte string is reported
// at most once, however many threads saw it. Malformed UTF-8 decodes to U+FFFD per bad byte;
// offsets out of order or past data_size give PARDICT_ERR_INVALID.
PARDICT_API int32_t pardict_combine_many_utf8(pardict_dict* d, const void* data, int64_t data_size,
                                              const void* offsets, int32_t offset_bytes,
                                              int64_t first, int64_t n, const void* values,
                                              int64_t value_stride, int32_t op,
                                              const int32_t* fields, int32_t n_fields,
                                              int32_t threads, int64_t* miss_rows,
                                              void* miss_values, int64_t* n_miss);
// pardict_get_many for a dictionary whose key is one string, from a NumPy fixed-width unicode
// array (n elements of `width` UCS4 code points, trailing NULs are padding), looked up through
// borrowed views (no numba string is built). values_out needs a value layout without references;
// with values_out null (contains) any value layout is accepted.
PARDICT_API int32_t pardict_get_many_ucs4(const pardict_dict* d, const void* chars, int64_t width,
                                          int64_t n, void* values_out, uint8_t* found_out,
                                          int32_t threads, int64_t* count_out);
// Copies every element of a dictionary without references or string keys (PARDICT_ERR_INVALID
// otherwise): key blobs (key class size) into keys_out and value blobs (value class size) into
// values_out, in the table's order, at most `capacity` of each. *count_out gets the number of
// elements the walk met; more than capacity means the dictionary grew meanwhile and only capacity
// were copied (call again with more room). Weakly consistent, as iteration: every element present
// throughout the walk is copied once.
PARDICT_API int32_t pardict_export_many(const pardict_dict* d, void* keys_out, void* values_out,
                                        int64_t capacity, int64_t* count_out);
// Building a dictionary from another one's export. The key space is split over PARDICT_SHARDS
// shards, and pardict_export_many yields the elements grouped by shard. pardict_load_many stores
// n key and value blobs as pardict_combine_many with PARDICT_OP_ASSIGN does (same result, same
// *count_out: the keys that were new), but each shard that holds nothing yet and whose rows come
// as one contiguous run is built in one pass on a private table, one probe and one store per
// row, then installed; other rows take pardict_combine_many's path. Shards are spread over
// `threads` threads. The dictionary must not be used by other threads during the call.
// seeds/groups (both may be NULL): PARDICT_SHARDS entries each from pardict_shard_geometry of
// the exporting dictionary; with them the rows of a shard are placed as the exporter placed them
// and written front to back. groups are a lower bound on each table's size (a larger export's
// geometry only costs memory); a seed of 0 draws a fresh one.
#define PARDICT_SHARDS 64
PARDICT_API int32_t pardict_load_many(pardict_dict* d, const void* keys, const void* values,
                                      int64_t n, const uint32_t* seeds, const uint64_t* groups,
                                      int32_t threads, int64_t* count_out);
// Each shard's table seed and group count (0 for a shard without a table), PARDICT_SHARDS each.
PARDICT_API int32_t pardict_shard_geometry(const pardict_dict* d, uint32_t* seeds_out,
                                           uint64_t* groups_out);
// Every element of src into d, whose layout must be the same (key and value sizes and masks):
// stored (PARDICT_OP_ASSIGN, any layout) or combined (a combining op and its fields, values
// without references), each as pardict_set / pardict_combine would, on `threads` threads. The
// elements are first copied out of src (weakly consistent, as iteration), so no lock of src is
// held while d is written and src may be d. *count_out (may be NULL) gets the number of keys
// that were new to d. Each element is one atomic step; the merge as a whole is not.
PARDICT_API int32_t pardict_merge(pardict_dict* d, const pardict_dict* src, int32_t op,
                                  const int32_t* fields, int32_t n_fields, int32_t threads,
                                  int64_t* count_out);
// Also drops the copies pardict_unowned_remember kept.
PARDICT_API int32_t pardict_clear(pardict_dict* d);
PARDICT_API int32_t pardict_reserve(pardict_dict* d, int64_t n);
// Arrays without an owner (a prange body's views of outer arrays) are stored as copies. For a
// dictionary whose value is one numba array struct of `ndim` dimensions (value_size == 8 * (5 + 2 *
// ndim), value_ref_mask == 1), or whose value is the one-word form of a 1-D array (value_size
// == 8, value_ref_mask == 1: the MemInfo alone, the struct's first word), and a C-contiguous
// `array` of that layout (always the whole struct): pardict_unowned_find
// returns 1 and writes a new reference to the calling thread's last copy of the same source (same
// data pointer) into `out` if that copy has the same shape and the same bytes, else 0;
// pardict_unowned_remember makes `copy`, a fresh C-contiguous copy of `array`, that copy (the
// dictionary keeps a reference until it is cleared or freed). PARDICT_ERR_INVALID for any other
// layout.
PARDICT_API int32_t pardict_unowned_find(pardict_dict* d, const void* array, int32_t ndim,
                                         void* out);
// d[key] = array (its first value class bytes) for a dictionary of such arrays (in the one-word
// form, an `array` with a MemInfo must be one the MemInfo alone describes), releasing a replaced
// value itself, so the caller has no reference to drop. An `array` without a MemInfo (a borrowed
// view) is stored as this thread's matching copy of it (see pardict_unowned_find); when there is
// none, nothing is stored and the result is PARDICT_NEED_COPY: the caller copies the array,
// remembers the copy and stores it. 0 inserted, 1 replaced, PARDICT_NEED_COPY, < 0 error
// (PARDICT_ERR_INVALID for layouts as above).
PARDICT_API int32_t pardict_set_array(pardict_dict* d, const void* key, const void* array,
                                      int32_t ndim);
// For a dictionary of 1-D arrays in the one-word form: pardict_view_find writes a new reference
// to the view MemInfo the calling thread last remembered for an array struct equal to `array` (56
// bytes, every word) into *out and returns 1, else 0; pardict_view_remember makes `view` (a view
// MemInfo just made for `array`, see pardict_array_view_dtor) that view (the dictionary keeps a
// reference until it is cleared or freed). PARDICT_ERR_INVALID for any other layout.
// pardict_set_view: d[key] = the calling thread's view for `array` (as pardict_view_find finds
// it), releasing a replaced value itself; PARDICT_NEED_COPY when there is none (nothing stored).
PARDICT_API int32_t pardict_view_find(pardict_dict* d, const void* array, void** out);
PARDICT_API int32_t pardict_set_view(pardict_dict* d, const void* key, const void* array);
PARDICT_API int32_t pardict_view_remember(pardict_dict* d, const void* array, void* view);
PARDICT_API int32_t pardict_unowned_remember(pardict_dict* d, const void* array, int32_t ndim,
                                             const void* copy);
// A new dictionary with the same layout and elements.
PARDICT_API pardict_dict* pardict_copy(const pardict_dict* d, int32_t* status);

// Iteration over a snapshot taken element by element under the elements' locks: every element
// present for the whole walk appears exactly once; elements inserted or erased by other threads
// meanwhile may or may not appear. When the thread that calls pardict_iter_next has inserted or
// erased a key of d since the iterator was made (on this thread or another), it reports
// PARDICT_ERR_MUTATED (as CPython raises), and from then on at every call. The check costs a key
// change O(1) whatever the number of live iterators.
// dict_meminfo (may be null): the NRT MemInfo owning d; the iterator holds a reference to it.
PARDICT_API pardict_iter* pardict_iter_new(pardict_dict* d, void* dict_meminfo, int32_t* status);
// An iterator over nothing that only watches for key changes by this thread (interpreter loops).
PARDICT_API pardict_iter* pardict_watch_new(pardict_dict* d, void* dict_meminfo, int32_t* status);
// 1 and pointers to the next key and value blobs (owned by the iterator), 0 at the end, < 0 error.
PARDICT_API int32_t pardict_iter_next(pardict_iter* it, void** key, void** value);
PARDICT_API int64_t pardict_iter_len(const pardict_iter* it);
PARDICT_API void pardict_iter_free(pardict_iter* it);
PARDICT_API void pardict_iter_meminfo_dtor(void* payload, size_t size, void* info);

// Out of memory. Every call that may insert (set, setdefault, insert, combine, update,
// set_array, combine_many, combine_many_ucs4) and fails with PARDICT_ERR_NOMEM also counts the
// failure on the dictionary, so that a caller that loses statuses (a parallel loop whose
// exceptions are dropped) can still find out that inserts are missing. Returns the count since the
// previous call and resets it (a failed bulk call counts once).
PARDICT_API int64_t pardict_take_alloc_failures(pardict_dict* d);

// For the numba fast path only (capi/jit.hpp): the calling thread's handles into this process's
// engine, for code that LLVM links into jitted modules. Valid for the thread's lifetime.
typedef struct pardict_jit_thread pardict_jit_thread;
PARDICT_API const pardict_jit_thread* pardict_jit_thread_ctx(void);
// The same block when `abi_id` is the loaded library's and no fork has left dictionaries suspect
// (so that the inlined code checks neither per operation), else NULL: take the C call. Inlined
// code compiled by an older pardict calls pardict_jit_thread_ctx and checks the id itself.
PARDICT_API const pardict_jit_thread* pardict_jit_thread_for(uint64_t abi_id);
// Which light fence the inlined code must compile in: 1, a compiler barrier (the epoch scans
// run a process-wide barrier, membarrier or FlushProcessWriteBuffers); 0, a full fence.
PARDICT_API int32_t pardict_jit_fences(void);
// The calling thread's epoch slot (taken now if it has none yet) when `abi_id` is the loaded
// library's id for code compiled with pardict_jit_fences()'s answer and no fork has left
// dictionaries suspect, else NULL (also when no slot is free); and the process's epoch domain.
// Each fixed for the thread's life, so that jitted loops ask once.
PARDICT_API void* pardict_jit_slot_for(uint64_t abi_id);
PARDICT_API void* pardict_jit_domain(void);
// For the same path: an insert it made spent the last of its table's budget; starts the growth an
// ordinary insert of `key` would have started.
PARDICT_API void pardict_jit_grow(pardict_dict* d, const void* key);

// Process-wide counts for leak checks: dictionaries alive, NRT references held by dictionaries
// and iterators.
PARDICT_API int64_t pardict_live_dicts(void);
PARDICT_API int64_t pardict_live_refs(void);

// ---- grouping rows by key (no dictionary) -------------------------------------------------------
// The rows of an array grouped by key, in CSR form: group g's rows are
// indices[offsets[g] .. offsets[g + 1]), ascending, and groups are numbered in order of first
// occurrence (first_rows[g] < first_rows[g + 1]). The caller provides room for n first_rows, n + 1
// offsets and n indices; *n_groups gets the number of groups G, first_rows[0 .. G) the first row
// of each group, offsets[0 .. G] the group boundaries (offsets[0] = 0, offsets[G] = n) and indices
// a permutation of 0 .. n - 1. Work is split over `threads` worker threads as in the bulk
// operations (<= 1: the calling thread only; never more than the CPUs the process may run on);
// the result does not depend on their number. Keys are read in place and not kept.
// pardict_group_indices: n contiguous scalars of `kind` (pardict_kind); integers group by value,
// floats canonically (-0.0 with 0.0, every NaN in one group). Bool keys are PARDICT_KIND_U8.
PARDICT_API int32_t pardict_group_indices(const void* keys, int64_t n, int32_t kind,
                                          int32_t threads, int64_t* first_rows, int64_t* offsets,
                                          int64_t* indices, int64_t* n_groups);
// The same for a NumPy fixed-width unicode array: n elements of `width` UCS4 code points each
// (trailing NULs are padding), grouped by string.
PARDICT_API int32_t pardict_group_indices_ucs4(const void* chars, int64_t width, int64_t n,
                                               int32_t threads, int64_t* first_rows,
                                               int64_t* offsets, int64_t* indices,
                                               int64_t* n_groups);

#ifdef __cplusplus
}
#endif
#endif
