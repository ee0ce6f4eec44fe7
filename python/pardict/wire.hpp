// The C++ half of pardict's pickle wire format and of pardict.dask's input conversion, on raw
// memory (no Python here; python/pardict/_ext.cpp binds it, python/pardict/_wire.py defines the
// format). Everything goes through the public C ABI (capi/pardict_capi.h): a whole-table export is
// one snapshot iterator, an import is one pardict_combine_many.
//
// Blobs: the C ABI stores a key or value of `size` bytes in a blob of its size class; the value
// is in the blob's first `size` bytes (little-endian hosts: x86-64, arm64), the rest is zero.
#ifndef PARDICT_WIRE_HPP
#define PARDICT_WIRE_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "pardict_capi.h"
#include "utf8.hpp"  // utf8_decode

namespace pardict::wire {

using capi::utf8_decode;  // capi/utf8.hpp

// Bytes the caller takes ownership of (handed to NumPy without a copy; released with std::free).
// Not initialised: every byte is written before it is read. On Linux, large buffers are 2 MiB
// aligned and advised as transparent huge pages: writing fresh memory costs a page fault per 4 KiB
// page otherwise, which on virtual machines can cost more than the copy itself.
struct owned_bytes {
  struct release {
    void operator()(unsigned char* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<unsigned char, release> data;
  std::size_t size = 0;

  void allocate(std::size_t n) {
    void* p = nullptr;
#if defined(__linux__)
    constexpr std::size_t huge = std::size_t{2} << 20;
    if (n >= 2 * huge) {
      p = std::aligned_alloc(huge, (n + huge - 1) / huge * huge);
      if (p != nullptr) madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE);
    }
#endif
    if (p == nullptr) p = std::malloc(std::max<std::size_t>(n, 1));
    if (p == nullptr) throw std::bad_alloc();
    data.reset(static_cast<unsigned char*>(p));
    size = n;
  }
  unsigned char* get() const noexcept { return data.get(); }
};

// A snapshot iterator over a table, freed on scope exit (which also releases the references the
// snapshot holds, e.g. to string keys).
class snapshot {
 public:
  explicit snapshot(pardict_dict* d) { it_ = pardict_iter_new(d, nullptr, &status_); }
  ~snapshot() {
    if (it_ != nullptr) pardict_iter_free(it_);
  }
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;
  int32_t status() const noexcept { return it_ == nullptr ? PARDICT_ERR_NOMEM : status_; }
  std::size_t size() const noexcept {
    return it_ == nullptr ? 0 : static_cast<std::size_t>(pardict_iter_len(it_));
  }
  // Calls f(key blob, value blob) for every element; a status < 0 if the walk failed.
  template <class F>
  int32_t each(F&& f) {
    void *k, *v;
    int32_t st;
    while ((st = pardict_iter_next(it_, &k, &v)) == 1)
      f(static_cast<const unsigned char*>(k), static_cast<const unsigned char*>(v));
    return st;
  }

 private:
  pardict_iter* it_ = nullptr;
  int32_t status_ = PARDICT_OK;
};

// Every element of a table whose keys and values are plain bytes (numbers, bools): key blobs and
// value blobs of their class sizes, in the table's order (pardict_export_many). Returns a C ABI
// status; n gets the element count.
inline int32_t export_plain(pardict_dict* d, std::size_t key_class, std::size_t value_class,
                            owned_bytes& keys, owned_bytes& values, std::size_t& n) {
  std::int64_t room = pardict_len(d);
  for (;;) {
    room += room / 16 + 16;  // other threads may insert meanwhile
    keys.allocate(static_cast<std::size_t>(room) * key_class);
    values.allocate(static_cast<std::size_t>(room) * value_class);
    std::int64_t met = 0;
    const int32_t st = pardict_export_many(d, keys.get(), values.get(), room, &met);
    if (st < 0) return st;
    if (met <= room) {
      n = static_cast<std::size_t>(met);
      keys.size = n * key_class;
      values.size = n * value_class;
      return PARDICT_OK;
    }
    room = met;
  }
}

// numba's unicode struct, as the C ABI describes it.
struct str_view {
  const unsigned char* data;
  std::int64_t length;  // code points
  std::int32_t kind;    // bytes per code point: 1, 2 or 4
};

inline str_view read_str(const unsigned char* blob) noexcept {
  str_view s;
  std::uintptr_t data;
  std::memcpy(&data, blob + PARDICT_NB_UNICODE_DATA, sizeof data);
  std::memcpy(&s.length, blob + PARDICT_NB_UNICODE_LENGTH, sizeof s.length);
  std::memcpy(&s.kind, blob + PARDICT_NB_UNICODE_KIND, sizeof s.kind);
  s.data = reinterpret_cast<const unsigned char*>(data);
  return s;
}

inline std::uint32_t code_point(const unsigned char* data, std::int32_t kind, std::int64_t i) {
  switch (kind) {
    case 1:
      return data[i];
    case 2: {
      std::uint16_t c;
      std::memcpy(&c, data + 2 * i, 2);
      return c;
    }
    default: {
      std::uint32_t c;
      std::memcpy(&c, data + 4 * i, 4);
      return c;
    }
  }
}

// Writes code point c as `width` bytes (little-endian).
inline void put_code_point(unsigned char* out, int width, std::uint32_t c) noexcept {
  if (width == 1) {
    *out = static_cast<unsigned char>(c);
  } else if (width == 2) {
    const auto c16 = static_cast<std::uint16_t>(c);
    std::memcpy(out, &c16, 2);
  } else {
    std::memcpy(out, &c, 4);
  }
}

// Every element of a table whose key is one string and whose values are plain bytes: the keys'
// code points concatenated into chars, `width` bytes each (the widest kind among the keys, so
// ASCII and Latin-1 keys take one byte per character), offsets[i] .. offsets[i + 1] (int64, n + 1
// of them) delimiting key i, and value_size bytes of each value. Returns a C ABI status.
inline int32_t export_str(pardict_dict* d, std::size_t value_size, owned_bytes& chars,
                          owned_bytes& offsets, owned_bytes& values, int& width, std::size_t& n) {
  snapshot s(d);
  if (s.status() != PARDICT_OK) return s.status();
  // The snapshot's elements stay where they are until it is freed: one pass collects them and
  // sizes the output, a second writes it.
  std::unique_ptr<const unsigned char*[]> keys(new const unsigned char*[s.size() + 1]);
  n = 0;
  width = 1;
  std::size_t total = 0;
  values.allocate(s.size() * value_size);
  unsigned char* vp = values.get();
  const int32_t st = s.each([&](const unsigned char* k, const unsigned char* v) {
    const str_view sv = read_str(k);
    total += static_cast<std::size_t>(sv.length);
    width = std::max<int>(width, sv.kind);
    keys[n] = k;
    std::memcpy(vp + n * value_size, v, value_size);
    ++n;
  });
  if (st < 0) return st;
  chars.allocate(total * static_cast<std::size_t>(width));
  offsets.allocate((n + 1) * sizeof(std::int64_t));
  unsigned char* cp = chars.get();
  std::int64_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::memcpy(offsets.get() + i * sizeof at, &at, sizeof at);
    const str_view sv = read_str(keys[i]);
    unsigned char* out = cp + static_cast<std::size_t>(at) * static_cast<std::size_t>(width);
    if (sv.kind == width) {
      std::memcpy(out, sv.data,
                  static_cast<std::size_t>(sv.length) * static_cast<std::size_t>(width));
    } else {
      for (std::int64_t j = 0; j < sv.length; ++j)
        put_code_point(out + j * width, width, code_point(sv.data, sv.kind, j));
    }
    at += sv.length;
  }
  std::memcpy(offsets.get() + n * sizeof at, &at, sizeof at);
  return PARDICT_OK;
}

// Code points (`width` bytes each) delimited by int64 offsets, as n fixed-width UCS4 strings of
// `out_width` code points (a NumPy unicode array; shorter strings are NUL-padded). The caller
// checked the offsets and that no string is longer than out_width.
inline void to_ucs4(const unsigned char* chars, int width, const std::int64_t* offsets,
                    std::size_t n, std::size_t out_width, std::uint32_t* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t* row = out + i * out_width;
    const std::int64_t a = offsets[i], len = offsets[i + 1] - a;
    std::int64_t j = 0;
    if (width == 4) {
      std::memcpy(row, chars + 4 * a, static_cast<std::size_t>(len) * 4);
      j = len;
    }
    for (; j < len; ++j) row[j] = code_point(chars + a * width, width, j);
    std::fill(row + len, row + out_width, 0u);
  }
}

// ---- UTF-8 (Arrow string columns) -> NumPy unicode ----------------------------------------------
// Arrow's string arrays are UTF-8 bytes delimited by int32 (string) or int64 (large_string)
// offsets. Decoding them to fixed-width UCS4 in one pass lets a pandas/Dask str column reach the
// C++ word-count path without a Python object per row.

template <class Off>
std::int64_t offset_at(const void* offsets, std::size_t i) noexcept {
  Off o;
  std::memcpy(&o, static_cast<const unsigned char*>(offsets) + i * sizeof(Off), sizeof o);
  return static_cast<std::int64_t>(o);
}

inline std::int64_t offset_at(const void* offsets, int offset_bytes, std::size_t i) noexcept {
  return offset_bytes == 4 ? offset_at<std::int32_t>(offsets, i)
                           : offset_at<std::int64_t>(offsets, i);
}

// Code points of the longest of strings first .. first + n - 1 (each a run of UTF-8 bytes: every
// byte that is not a continuation byte starts a code point); -1 if the offsets are not
// non-decreasing within [0, data_size].
inline std::int64_t utf8_max_length(const unsigned char* data, std::size_t data_size,
                                    const void* offsets, int offset_bytes, std::size_t first,
                                    std::size_t n) noexcept {
  std::int64_t longest = 0;
  for (std::size_t i = first; i < first + n; ++i) {
    const std::int64_t a = offset_at(offsets, offset_bytes, i);
    const std::int64_t b = offset_at(offsets, offset_bytes, i + 1);
    if (a < 0 || b < a || static_cast<std::size_t>(b) > data_size) return -1;
    std::int64_t len = 0;
    for (std::int64_t j = a; j < b; ++j) len += (data[j] & 0xC0) != 0x80;
    longest = std::max(longest, len);
  }
  return longest;
}

// Decodes strings first .. first + n - 1 into n rows of out_width UCS4 code points (NUL-padded).
// The offsets were checked by utf8_max_length.
inline void utf8_to_ucs4(const unsigned char* data, const void* offsets, int offset_bytes,
                         std::size_t first, std::size_t n, std::size_t out_width,
                         std::uint32_t* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t* row = out + i * out_width;
    const std::size_t k =
        utf8_decode(data, offset_at(offsets, offset_bytes, first + i),
                    offset_at(offsets, offset_bytes, first + i + 1), row, out_width);
    std::fill(row + k, row + out_width, 0u);
  }
}

// The strings first + rows[i] (i < n_rows) decoded into code points, one after another:
// points_out gets them (room for every byte of those strings: a code point takes at least one),
// offsets_out[i] .. offsets_out[i + 1] delimits string i. The caller checked the offsets and that
// every row is below the array's length. Returns the number of code points.
inline std::int64_t utf8_gather(const unsigned char* data, const void* offsets, int offset_bytes,
                                std::size_t first, const std::int64_t* rows, std::size_t n_rows,
                                std::uint32_t* points_out, std::int64_t* offsets_out) noexcept {
  std::int64_t at = 0;
  offsets_out[0] = 0;
  for (std::size_t i = 0; i < n_rows; ++i) {
    const std::size_t r = first + static_cast<std::size_t>(rows[i]);
    const std::int64_t a = offset_at(offsets, offset_bytes, r);
    const std::int64_t b = offset_at(offsets, offset_bytes, r + 1);
    at += static_cast<std::int64_t>(
        utf8_decode(data, a, b, points_out + at, static_cast<std::size_t>(b - a)));
    offsets_out[i + 1] = at;
  }
  return at;
}

}  // namespace pardict::wire

#endif  // PARDICT_WIRE_HPP
