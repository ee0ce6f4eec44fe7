// tests/cpp/support/generators.hpp: deterministic keys and values for the typed map tests.
//
// gen<T>::make(id) builds a T from a small integer id; for key types distinct ids give distinct
// keys. For value types gen<T>::id(v) recovers the id, so a test can keep a std::unordered_map<K,
// std::uint64_t> oracle for any V (including move-only ones). Value ids must stay below 2^20 (float
// mantissas hold them exactly).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "support/counting.hpp"

namespace pardict_test {

inline constexpr std::uint64_t max_value_id = std::uint64_t{1} << 20;

template <class T>
struct gen;

template <>
struct gen<std::int64_t> {
  static std::int64_t make(std::uint64_t i) { return static_cast<std::int64_t>(mix64(i)); }
  static std::uint64_t id(std::int64_t v) { return static_cast<std::uint64_t>(v); }
  static std::int64_t value(std::uint64_t id) { return static_cast<std::int64_t>(id); }
};

template <>
struct gen<std::int32_t> {
  // Multiplication by an odd constant is a bijection modulo 2^32.
  static std::int32_t make(std::uint64_t i) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(i) * 2654435761u);
  }
};

template <>
struct gen<float> {
  static float value(std::uint64_t id) { return static_cast<float>(id); }
  static std::uint64_t id(float v) { return static_cast<std::uint64_t>(v); }
};

template <>
struct gen<double> {
  // Distinct for i < 2^50, includes negative keys, never -0.0/0.0 or NaN.
  static double make(std::uint64_t i) {
    return static_cast<double>(static_cast<std::int64_t>(i)) * 0.5 - 4096.25;
  }
};

template <>
struct gen<std::string> {
  // Every fourth key is longer than any small-string buffer.
  static std::string make(std::uint64_t i) {
    std::string s = "key:" + std::to_string(mix64(i));
    if (i % 4 == 0) s += std::string(40, static_cast<char>('a' + i % 26));
    return s;
  }
};

template <>
struct gen<std::array<float, 4>> {
  static std::array<float, 4> value(std::uint64_t id) {
    const float f = static_cast<float>(id);
    return {f, f + 0.5f, -f, 2.0f * f};
  }
  static std::uint64_t id(const std::array<float, 4>& v) {
    return static_cast<std::uint64_t>(v[0]);
  }
};

template <>
struct gen<move_only> {
  static move_only value(std::uint64_t id) { return move_only(static_cast<int>(id)); }
  static std::uint64_t id(const move_only& v) { return static_cast<std::uint64_t>(v.get()); }
};

template <>
struct gen<counted> {
  static counted value(std::uint64_t id) { return counted(static_cast<std::int64_t>(id)); }
  static std::uint64_t id(const counted& v) { return static_cast<std::uint64_t>(v.value()); }
};

}  // namespace pardict_test
