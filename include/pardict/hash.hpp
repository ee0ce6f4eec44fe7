// pardict::hash — the default hasher of pardict::concurrent_map.
//
// Why not std::hash: libstdc++'s std::hash for integers is the identity, and an open-addressing
// table that takes its group index and its tag from different bit ranges of the hash needs every
// bit to depend on every input bit. Structured keys (consecutive ids, grid coordinates packed into
// integers, doubles that are small integers) would otherwise pile into a few groups. So every
// hash here ends in a bijective 64-bit finaliser.
//
// Floating keys: `-0.0 == 0.0` under std::equal_to, so both must hash alike; the sign of zero is
// normalised away. All NaNs hash alike, but NaN != NaN under std::equal_to, so a NaN key can be
// inserted (repeatedly) and never found — the same as Python's dict with distinct NaN objects.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace pardict {

namespace detail {

// Bijective avalanche finaliser (the murmur3/splitmix64 family of constants).
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

// Order-sensitive: (a, b) and (b, a) must not collide, so the running seed is multiplied (an odd
// multiplier is a bijection) before the next element's hash is added.
constexpr std::uint64_t hash_combine(std::uint64_t seed, std::uint64_t h) noexcept {
  return mix64(seed * 0x9e3779b97f4a7c15ULL + h + 0x632be59bd9b4e019ULL);
}

template <class F>
std::uint64_t float_bits(F x) noexcept {
  if (x == F(0)) return 0;                   // +0.0 and -0.0 are one key
  if (x != x) return 0x7ff8000000000000ULL;  // every NaN alike
  if constexpr (sizeof(F) == 4) return std::bit_cast<std::uint32_t>(x);
  if constexpr (sizeof(F) == 8) return std::bit_cast<std::uint64_t>(x);
  if constexpr (sizeof(F) > 8) {
    // long double: hash the value through double; equal values still hash alike.
    return std::bit_cast<std::uint64_t>(static_cast<double>(x));
  }
}

}  // namespace detail

template <class K, class = void>
struct hash {
  std::uint64_t operator()(const K& k) const noexcept(noexcept(std::hash<K>{}(k))) {
    return detail::mix64(static_cast<std::uint64_t>(std::hash<K>{}(k)));
  }
};

template <class K>
struct hash<K, std::enable_if_t<std::is_integral_v<K> || std::is_enum_v<K>>> {
  std::uint64_t operator()(K k) const noexcept {
    return detail::mix64(static_cast<std::uint64_t>(k));
  }
};

template <class K>
struct hash<K, std::enable_if_t<std::is_floating_point_v<K>>> {
  std::uint64_t operator()(K k) const noexcept { return detail::mix64(detail::float_bits(k)); }
};

template <class K>
struct hash<K*> {
  std::uint64_t operator()(K* p) const noexcept {
    return detail::mix64(reinterpret_cast<std::uintptr_t>(p));
  }
};

template <class C, class T, class A>
struct hash<std::basic_string<C, T, A>> {
  using is_transparent = void;
  std::uint64_t operator()(std::basic_string_view<C, T> s) const noexcept {
    return detail::mix64(std::hash<std::basic_string_view<C, T>>{}(s));
  }
};

template <class C, class T>
struct hash<std::basic_string_view<C, T>> {
  std::uint64_t operator()(std::basic_string_view<C, T> s) const noexcept {
    return detail::mix64(std::hash<std::basic_string_view<C, T>>{}(s));
  }
};

template <class T, std::size_t N>
struct hash<std::array<T, N>> {
  std::uint64_t operator()(const std::array<T, N>& a) const noexcept {
    std::uint64_t h = N;
    for (const auto& x : a) h = detail::hash_combine(h, hash<T>{}(x));
    return h;
  }
};

template <class A, class B>
struct hash<std::pair<A, B>> {
  std::uint64_t operator()(const std::pair<A, B>& p) const noexcept {
    return detail::hash_combine(detail::hash_combine(2, hash<A>{}(p.first)), hash<B>{}(p.second));
  }
};

template <class... Ts>
struct hash<std::tuple<Ts...>> {
  std::uint64_t operator()(const std::tuple<Ts...>& t) const noexcept {
    return std::apply(
        [](const Ts&... xs) {
          std::uint64_t h = sizeof...(Ts);
          ((h = detail::hash_combine(h, hash<Ts>{}(xs))), ...);
          return h;
        },
        t);
  }
};

namespace detail {

// ---- The engine's hash: in-order placement of small integers -----------------------------------
//
// A table is bound by memory latency: a key that lands in a random group costs a cache miss
// whatever the hash. Keys that arrive in order (row numbers, counters, ids, `float(i)`) need not:
// CPython's dict, numba's typed.Dict and std::unordered_map place them in consecutive slots, and a
// serial fill then writes memory front to back. The engine does the same for keys that are small
// integers (|k| < 2^37), where it can afford to: the hash it uses for them keeps the key's own
// bits where the engine takes the shard (top 6 bits: k mod 64) and the position in the shard
// (low 32 bits: k / 64), and takes the bits of the tag, the overflow class and the preferred half
// (32..57) from mix64(k). A table that places in order takes the group from the position
// directly (concurrent_table.hpp, "In-order placement"); one that does not multiplies it by an
// odd seed as for any other hash, and patterned keys that would pile up in an in-order table
// (multiples of 2^k, ...) move a shard to such a table. Every other key (and every key of a
// hasher other than pardict::hash) keeps its ordinary, fully mixed hash.
inline constexpr unsigned in_order_shard_bits = 6;

constexpr bool is_small_integer(std::int64_t k) noexcept {
  return static_cast<std::uint64_t>((k >> 37) + 1) <= 1;
}

constexpr std::uint64_t in_order_hash(std::int64_t k) noexcept {
  const auto u = static_cast<std::uint64_t>(k);
  return (u << (64 - in_order_shard_bits)) | (mix64(u) & 0x03ffffff00000000ULL) |
         static_cast<std::uint32_t>(static_cast<std::uint64_t>(k >> in_order_shard_bits));
}

// Whether x is a small integer (is_small_integer), and which: -0.0 is 0, NaN and infinities are
// not.
template <class F>
constexpr bool small_integral_value(F x, std::int64_t& out) noexcept {
  constexpr F bound = F(std::uint64_t{1} << 37);
  if (!(x >= -bound && x < bound)) return false;  // NaN too
  const auto i = static_cast<std::int64_t>(x);
  if (static_cast<F>(i) != x) return false;
  out = i;
  return true;
}

// A hasher opts in to in-order placement with `static constexpr bool places_in_order = true`:
// its hash of a small integer key must then be in_order_hash of that integer.
template <class H>
concept declares_in_order = requires {
  requires H::places_in_order;
};

// The engine's hash of K under hasher H: H's own, except that pardict::hash of an integer or
// floating key (of up to 8 bytes) gives in_order_hash for keys that are small integers. It
// changes where keys go, never which keys are equal: equal keys (0.0 and -0.0) still hash alike.
template <class K, class H, class = void>
struct engine_hash {
  static constexpr bool in_order = declares_in_order<H>;
  template <class Q>
  static std::uint64_t of(const H& h, const Q& k) noexcept(noexcept(h(k))) {
    return static_cast<std::uint64_t>(h(k));
  }
  // Whether k takes the in-order hash (a hasher that places in order says so itself).
  template <class Q>
  static bool in_order_key(const H& h, const Q& k) noexcept {
    if constexpr (requires { h.in_order_key(k); }) {
      return h.in_order_key(k);
    } else {
      return false;
    }
  }
};

template <class K>
struct engine_hash<K, pardict::hash<K>,
                   std::enable_if_t<(std::is_integral_v<K> || std::is_enum_v<K>)&&sizeof(K) <= 8>> {
  static constexpr bool in_order = true;
  static std::uint64_t of(const pardict::hash<K>& h, K k) noexcept {
    const auto i = static_cast<std::int64_t>(k);
    return is_small_integer(i) ? in_order_hash(i) : h(k);
  }
  static bool in_order_key(const pardict::hash<K>&, K k) noexcept {
    return is_small_integer(static_cast<std::int64_t>(k));
  }
};

template <class K>
struct engine_hash<K, pardict::hash<K>,
                   std::enable_if_t<std::is_floating_point_v<K> && sizeof(K) <= 8>> {
  static constexpr bool in_order = true;
  static std::uint64_t of(const pardict::hash<K>& h, K k) noexcept {
    std::int64_t i = 0;
    return small_integral_value(k, i) ? in_order_hash(i) : h(k);
  }
  static bool in_order_key(const pardict::hash<K>&, K k) noexcept {
    std::int64_t i = 0;
    return small_integral_value(k, i);
  }
};

}  // namespace detail

}  // namespace pardict
