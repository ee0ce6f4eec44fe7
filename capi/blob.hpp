// Key and value representations behind the C ABI: fixed-size byte blobs in size classes, with
// hashing and equality that understand numba unicode strings embedded in keys. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "pardict/hash.hpp"

namespace pardict::capi {

// W 64-bit words. Trivially copyable, so the engine can read it optimistically when the blob
// carries no references.
template <std::size_t W>
struct words {
  std::uint64_t w[W];
  friend bool operator==(const words& a, const words& b) noexcept {
    return std::memcmp(a.w, b.w, sizeof a.w) == 0;
  }
};

// numba's unicode struct (numba/core/datamodel/models.py UnicodeModel): data, length, kind,
// is_ascii, hash, meminfo, parent — six words.
inline constexpr unsigned unicode_words = 6;

struct str_view {
  const void* data;
  std::int64_t length;
  std::uint32_t kind;  // bytes per code point: 1, 2 or 4
};

inline str_view str_at(const std::uint64_t* w) noexcept {
  return {reinterpret_cast<const void*>(w[0]), static_cast<std::int64_t>(w[1]),
          static_cast<std::uint32_t>(w[2] & 0xffffffffu)};
}

inline std::uint32_t code_point(const str_view& s, std::int64_t i) noexcept {
  switch (s.kind) {
    case 1:
      return static_cast<const std::uint8_t*>(s.data)[i];
    case 2:
      return static_cast<const std::uint16_t*>(s.data)[i];
    default:
      return static_cast<const std::uint32_t*>(s.data)[i];
  }
}

// Hash by code points, not bytes: numba does not promise the narrowest kind (a slice of a wide
// string stays wide), and equal strings must hash alike whatever their kind.
template <unsigned Kind>
std::uint64_t hash_code_points(const void* data, std::int64_t n, std::uint64_t h) noexcept {
  using unit = std::conditional_t<Kind == 1, std::uint8_t,
                                  std::conditional_t<Kind == 2, std::uint16_t, std::uint32_t>>;
  const unit* p = static_cast<const unit*>(data);
  std::int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const std::uint64_t pair = std::uint64_t{p[i]} | (std::uint64_t{p[i + 1]} << 32);
    h = (h ^ pair) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  if (i < n) h = (h ^ std::uint64_t{p[i]}) * 0x9e3779b97f4a7c15ULL;
  return h;
}

inline std::uint64_t hash_str(const str_view& s) noexcept {
  std::uint64_t h = detail::mix64(static_cast<std::uint64_t>(s.length) + 0x51ed27u);
  switch (s.kind) {
    case 1:
      h = hash_code_points<1>(s.data, s.length, h);
      break;
    case 2:
      h = hash_code_points<2>(s.data, s.length, h);
      break;
    default:
      h = hash_code_points<4>(s.data, s.length, h);
      break;
  }
  return detail::mix64(h);
}

inline bool equal_str(const str_view& a, const str_view& b) noexcept {
  if (a.length != b.length) return false;
  if (a.kind == b.kind) {
    return a.length == 0 ||
           std::memcmp(a.data, b.data, static_cast<std::size_t>(a.length) * a.kind) == 0;
  }
  for (std::int64_t i = 0; i < a.length; ++i)
    if (code_point(a, i) != code_point(b, i)) return false;
  return true;
}

// Which words of a key blob are plain bytes and which start a string (bit i: word i).
struct key_layout {
  std::uint32_t str_mask = 0;
  std::uint32_t plain_mask = ~0u;

  static key_layout make(std::uint32_t str_mask, unsigned nwords) noexcept {
    key_layout l;
    l.str_mask = str_mask;
    l.plain_mask = nwords >= 32 ? ~0u : ((1u << nwords) - 1);
    for (std::uint32_t m = str_mask; m != 0; m &= m - 1) {
      const unsigned i = static_cast<unsigned>(__builtin_ctz(m));
      for (unsigned j = i; j < i + unicode_words && j < 32; ++j) l.plain_mask &= ~(1u << j);
    }
    return l;
  }
};

struct blob_hash {
  key_layout layout;
  template <std::size_t W>
  std::uint64_t operator()(const words<W>& k) const noexcept {
    std::uint64_t h = 0x2545f4914f6cdd1dULL;
    if (layout.str_mask == 0) {
      for (std::size_t i = 0; i < W; ++i) h = detail::hash_combine(h, k.w[i]);
      return h;
    }
    for (std::size_t i = 0; i < W; ++i) {
      if (layout.plain_mask >> i & 1u) {
        h = detail::hash_combine(h, k.w[i]);
      } else if constexpr (W >= unicode_words) {  // a string needs six words
        if (layout.str_mask >> i & 1u) h = detail::hash_combine(h, hash_str(str_at(&k.w[i])));
      }
    }
    return h;
  }
};

struct blob_equal {
  key_layout layout;
  template <std::size_t W>
  bool operator()(const words<W>& a, const words<W>& b) const noexcept {
    if (layout.str_mask == 0) return a == b;
    for (std::size_t i = 0; i < W; ++i) {
      if (layout.plain_mask >> i & 1u) {
        if (a.w[i] != b.w[i]) return false;
      } else if constexpr (W >= unicode_words) {
        if ((layout.str_mask >> i & 1u) && !equal_str(str_at(&a.w[i]), str_at(&b.w[i])))
          return false;
      }
    }
    return true;
  }
};

}  // namespace pardict::capi
