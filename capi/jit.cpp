// Compiled only to LLVM bitcode (CMakeLists.txt: pardict_jit_bitcode), never into _ext: the
// numba fast path's entry points, linked into jitted modules and inlined there (see jit.hpp).
// Each takes its C call's arguments and, last, the `fences` it was compiled for (jit_usable).
// One function per (key class, value class) of the layouts it serves: reference-free keys that
// hash as integers (4 and 8 bytes: ints, floats, bools) and reference-free values up to 16 bytes;
// and stores of 1-D arrays kept as one word, per key class.
#include "jit.hpp"

using pardict::capi::words;

// always_inline: LLVM's cost model would otherwise keep a call (the body is a whole lookup).
#define PARDICT_JIT_ENTRIES(KC, VC, K, V)                                                         \
  extern "C" PARDICT_ALWAYS_INLINE std::int32_t pardict_jit_get_k##KC##_v##VC(                    \
      const pardict_dict* d, const void* k, void* out, std::int32_t fences) {                     \
    return pardict::capi::jit_get<K, V>(d, k, out, fences);                                       \
  }                                                                                               \
  extern "C" PARDICT_ALWAYS_INLINE std::int32_t pardict_jit_contains_k##KC##_v##VC(               \
      const pardict_dict* d, const void* k, std::int32_t fences) {                                \
    return pardict::capi::jit_contains<K, V>(d, k, fences);                                       \
  }                                                                                               \
  extern "C" PARDICT_ALWAYS_INLINE std::int32_t pardict_jit_set_k##KC##_v##VC(                    \
      pardict_dict* d, const void* k, const void* v, void* old_out, std::int32_t fences) {        \
    return pardict::capi::jit_set<K, V>(d, k, v, old_out, fences);                                \
  }                                                                                               \
  extern "C" PARDICT_ALWAYS_INLINE std::int32_t pardict_jit_combine_k##KC##_v##VC(                \
      pardict_dict* d, const void* k, const void* v, std::int32_t op, const std::int32_t* fields, \
      std::int32_t n_fields, void* out, std::int32_t fences) {                                    \
    return pardict::capi::jit_combine<K, V>(d, k, v, op, fields, n_fields, out, fences);          \
  }

PARDICT_JIT_ENTRIES(4, 4, std::uint32_t, std::uint32_t)
PARDICT_JIT_ENTRIES(4, 8, std::uint32_t, std::uint64_t)
PARDICT_JIT_ENTRIES(4, 16, std::uint32_t, words<2>)
PARDICT_JIT_ENTRIES(8, 4, std::uint64_t, std::uint32_t)
PARDICT_JIT_ENTRIES(8, 8, std::uint64_t, std::uint64_t)
PARDICT_JIT_ENTRIES(8, 16, std::uint64_t, words<2>)

#define PARDICT_JIT_ARRAY_ENTRIES(KC, K)                                                    \
  extern "C" PARDICT_ALWAYS_INLINE std::int32_t pardict_jit_set_array_k##KC(                \
      pardict_dict* d, const void* k, const void* a, void* old_out, std::int32_t described, \
      std::int32_t fences) {                                                                \
    return pardict::capi::jit_set_array<K>(d, k, a, old_out, described != 0, fences);       \
  }

PARDICT_JIT_ARRAY_ENTRIES(4, std::uint32_t)
PARDICT_JIT_ARRAY_ENTRIES(8, std::uint64_t)
