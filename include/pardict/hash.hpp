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

}  // namespace pardict
