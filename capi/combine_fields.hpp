// Field-wise combination of value blobs (pardict_combine, pardict_combine_present, the bulk
// paths). Internal.
//
// The caller describes a value as n_fields pairs (byte offset, pardict_kind); each field is
// combined with pardict::detail::combine_scalar, the arithmetic concurrent_map::upsert_many uses,
// on the C type of its kind. Bytes outside the fields keep the stored value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

#include "blob.hpp"
#include "pardict/combine.hpp"
#include "pardict/detail/config.hpp"
#include "pardict_capi.h"

namespace pardict::capi {

// The C type of each pardict_kind, in the enum's order from PARDICT_KIND_I8.
using kind_types = std::tuple<std::int8_t, std::int16_t, std::int32_t, std::int64_t, std::uint8_t,
                              std::uint16_t, std::uint32_t, std::uint64_t, float, double>;
static_assert(std::tuple_size_v<kind_types> == PARDICT_KIND_F64 - PARDICT_KIND_I8 + 1);

// A `pick` for with_element_where: the C type of a pardict_kind.
inline auto of_kind(std::int32_t kind) noexcept {
  return [kind]<class T>(std::size_t i, std::type_identity<T>) {
    return kind == PARDICT_KIND_I8 + static_cast<std::int32_t>(i);
  };
}

// Bytes of a field of `kind`; 0 for a number that is not a pardict_kind.
inline std::uint32_t kind_size(std::int32_t kind) noexcept {
  std::uint32_t size = 0;
  with_element_where<kind_types>(of_kind(kind),
                                 [&]<class T>(std::type_identity<T>) { size = sizeof(T); });
  return size;
}

// pardict_op and combine_op list the ops in the same order.
constexpr combine_op to_combine_op(std::int32_t op) noexcept {
  return static_cast<combine_op>(op - PARDICT_OP_ASSIGN);
}
static_assert(to_combine_op(PARDICT_OP_ASSIGN) == combine_op::assign &&
              to_combine_op(PARDICT_OP_ADD) == combine_op::add &&
              to_combine_op(PARDICT_OP_MIN) == combine_op::min &&
              to_combine_op(PARDICT_OP_MAX) == combine_op::max);

// How a call combines a value into a stored one: the op and the (validated) fields.
struct field_combine {
  combine_op op;
  const std::int32_t* fields;  // n_fields pairs (byte offset, pardict_kind)
  int n_fields;

  // stored = stored op x, field by field.
  void operator()(void* stored, const void* x) const noexcept { apply<false>(stored, x); }

  // One field of `kind` at offset 0 (a scalar value): stored = stored op x. Straight-line code
  // once op and kind are constants (the numba fast path, capi/jit.hpp).
  // A switch rather than with_element_where: clang left the latter's lambda a call in the bitcode.
  PARDICT_ALWAYS_INLINE static void one_field(void* stored, const void* x, combine_op o,
                                              std::int32_t kind) noexcept {
    auto* s = static_cast<unsigned char*>(stored);
    const auto* v = static_cast<const unsigned char*>(x);
    switch (kind) {
      case PARDICT_KIND_I8:
        return combine_field<std::int8_t, false>(s, v, o);
      case PARDICT_KIND_I16:
        return combine_field<std::int16_t, false>(s, v, o);
      case PARDICT_KIND_I32:
        return combine_field<std::int32_t, false>(s, v, o);
      case PARDICT_KIND_I64:
        return combine_field<std::int64_t, false>(s, v, o);
      case PARDICT_KIND_U8:
        return combine_field<std::uint8_t, false>(s, v, o);
      case PARDICT_KIND_U16:
        return combine_field<std::uint16_t, false>(s, v, o);
      case PARDICT_KIND_U32:
        return combine_field<std::uint32_t, false>(s, v, o);
      case PARDICT_KIND_U64:
        return combine_field<std::uint64_t, false>(s, v, o);
      case PARDICT_KIND_F32:
        return combine_field<float, false>(s, v, o);
      case PARDICT_KIND_F64:
        return combine_field<double, false>(s, v, o);
      default:
        return;  // the caller validated the kind
    }
  }

  // The same for a partial aggregate that meets a stored value later (bulk pre-aggregation):
  // under min and max a NaN it holds gives way to x, since a NaN that came first must not hide
  // the rows after it when the stored value it will meet is not NaN.
  void partial(void* stored, const void* x) const noexcept { apply<true>(stored, x); }

 private:
  template <bool NanYields>
  void apply(void* stored, const void* x) const noexcept {
    // Copies in locals: the stores through `stored` could otherwise alias *this for the compiler.
    const combine_op o = op;
    const std::int32_t* const f = fields;
    const int n = n_fields;
    auto* s = static_cast<unsigned char*>(stored);
    const auto* v = static_cast<const unsigned char*>(x);
    for (int i = 0; i < n; ++i) {
      const std::int32_t off = f[2 * i];
      with_element_where<kind_types>(of_kind(f[2 * i + 1]), [&]<class T>(std::type_identity<T>) {
        combine_field<T, NanYields>(s + off, v + off, o);
      });
    }
  }

  template <class T, bool NanYields>
  PARDICT_ALWAYS_INLINE static void combine_field(unsigned char* stored, const unsigned char* x,
                                                  combine_op o) noexcept {
    T a, b;
    std::memcpy(&a, stored, sizeof(T));
    std::memcpy(&b, x, sizeof(T));
    if constexpr (NanYields && std::is_floating_point_v<T>) {
      if (o != combine_op::add && a != a) {
        std::memcpy(stored, &b, sizeof(T));
        return;
      }
    }
    detail::combine_scalar(a, b, o);
    std::memcpy(stored, &a, sizeof(T));
  }
};

}  // namespace pardict::capi
