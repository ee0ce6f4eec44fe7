// pardict::combine_op and the arithmetic behind it: what upsert_many does to a key's stored value
// when the key is already present, and what the C ABI does to each field of a stored value
// (capi/combine_fields.hpp). The engine itself knows no arithmetic: it hands an element to a
// visitor, and these functions are such visitors' bodies.
//
// Integers add with wrap-around (two's complement), computed in the unsigned type so that an
// overflow is defined; floats follow IEEE. min and max keep the stored value unless the new one
// compares less (greater), so a NaN on either side never replaces a number nor is replaced by
// one. For bool, add and max are "or", min is "and".
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <type_traits>

namespace pardict {

enum class combine_op { assign, add, min, max };

namespace detail {

template <class T>
struct is_arithmetic_array : std::false_type {};
template <class T, std::size_t N>
struct is_arithmetic_array<std::array<T, N>> : std::is_arithmetic<T> {};

// stored + x, wrapping around for integers.
template <class T>
constexpr T combine_add(T stored, T x) noexcept {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(stored) + static_cast<U>(x)));
  } else {
    return static_cast<T>(stored + x);
  }
}

// One arithmetic scalar.
template <class T>
constexpr void combine_scalar(T& stored, const T& x, combine_op op) noexcept {
  static_assert(std::is_arithmetic_v<T>);
  if constexpr (std::is_same_v<T, bool>) {
    switch (op) {
      case combine_op::assign:
        stored = x;
        break;
      case combine_op::add:
      case combine_op::max:
        stored = stored || x;
        break;
      case combine_op::min:
        stored = stored && x;
        break;
    }
  } else {
    switch (op) {
      case combine_op::assign:
        stored = x;
        break;
      case combine_op::add:
        stored = combine_add(stored, x);
        break;
      case combine_op::min:
        if (x < stored) stored = x;
        break;
      case combine_op::max:
        if (stored < x) stored = x;
        break;
    }
  }
}

// A mapped value: an arithmetic scalar, a std::array of them (lane by lane), or, for assign
// only, anything assignable.
template <class V>
void combine(V& stored, const V& x, combine_op op) {
  if constexpr (std::is_arithmetic_v<V>) {
    combine_scalar(stored, x, op);
  } else if constexpr (is_arithmetic_array<V>::value) {
    for (std::size_t i = 0; i < stored.size(); ++i) combine_scalar(stored[i], x[i], op);
  } else {
    if (op != combine_op::assign)
      throw std::invalid_argument("pardict: combine op needs arithmetic values");
    stored = x;
  }
}

}  // namespace detail
}  // namespace pardict
