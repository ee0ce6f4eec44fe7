// Build-wide switches of the engine.
#pragma once

// Forces inlining where the compiler's heuristics keep a call on the hot path (see the design
// essay in concurrent_table.hpp for what it saves). Only in optimised builds with NDEBUG: debug
// and sanitizer builds keep the compiler's own choices, which compile much faster there and
// check the same code.
#if defined(NDEBUG) && (defined(__GNUC__) || defined(__clang__))
#define PARDICT_ALWAYS_INLINE [[gnu::always_inline]]
// The same for a lambda's call operator, in GNU syntax: the standard one cannot name it before
// C++23.
#define PARDICT_INLINE_LAMBDA __attribute__((always_inline))
#else
#define PARDICT_ALWAYS_INLINE
#define PARDICT_INLINE_LAMBDA
#endif
