// What the engine needs from the operating system and the compiler, in one place: the
// process-wide half of the asymmetric fence, sleeping on and waking an address, and the few
// compiler-specific spellings (attributes, relaxed word access through may_alias types, pause,
// prefetch). Everything else in the engine is standard C++20.
//
//                 process_fence()                 wait_on / wake_all
//   Linux         membarrier(PRIVATE_EXPEDITED)   std::atomic::wait (futex)
//   Windows       FlushProcessWriteBuffers        WaitOnAddress / WakeByAddressAll
//   macOS, other  none: both sides use seq_cst    std::atomic::wait (libc++: __ulock on macOS)
//
// process_fence_available() decides at run time, once: membarrier is used only when the kernel
// lists and registers it (qemu-user, old kernels and seccomp sandboxes may refuse), and
// PARDICT_SYMMETRIC_FENCES=1 in the environment turns the asymmetric fence off everywhere (the
// tests run both paths this way).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#if defined(_MSC_VER)
#pragma comment(lib, "synchronization.lib")  // WaitOnAddress; CMake links it for mingw-w64
#endif
#elif defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

// ---- compiler spellings ------------------------------------------------------------------------
#if defined(__GNUC__) || defined(__clang__)
#define PARDICT_NOINLINE __attribute__((noinline))
#define PARDICT_COLD __attribute__((cold))
#define PARDICT_MAY_ALIAS __attribute__((__may_alias__))
#elif defined(_MSC_VER)
#define PARDICT_NOINLINE __declspec(noinline)
#define PARDICT_COLD
#define PARDICT_MAY_ALIAS  // MSVC does no type-based alias analysis
#else
#define PARDICT_NOINLINE
#define PARDICT_COLD
#define PARDICT_MAY_ALIAS
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#define PARDICT_PAUSE() _mm_pause()
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define PARDICT_PAUSE() asm volatile("yield" ::: "memory")
#elif defined(_M_ARM64)
#define PARDICT_PAUSE() __yield()
#else
#define PARDICT_PAUSE() ((void)0)
#endif

namespace pardict::detail::platform {

// ---- relaxed atomic access to words of plain memory (the seqlock's racy copies) ----------------
// GCC and clang: the __atomic builtins, which accept any suitably aligned integer object. They are
// macros, not functions, so that the access keeps the may_alias type of the caller's pointer (a
// template parameter would drop the attribute). MSVC: its "ISO volatile" loads and stores, which
// are plain (relaxed, not acquire/release) accesses on x64 and ARM64 alike, as MSVC's own
// std::atomic uses them; MSVC does no type-based alias analysis.
#if defined(__GNUC__) || defined(__clang__)
#define PARDICT_RELAXED_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define PARDICT_RELAXED_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#elif defined(_MSC_VER)
#define PARDICT_RELAXED_LOAD(p) ::pardict::detail::platform::msvc_relaxed_load(p)
#define PARDICT_RELAXED_STORE(p, v) ::pardict::detail::platform::msvc_relaxed_store((p), (v))
template <class W>
inline W msvc_relaxed_load(const W* p) noexcept {
  static_assert(sizeof(W) == 1 || sizeof(W) == 2 || sizeof(W) == 4 || sizeof(W) == 8);
  if constexpr (sizeof(W) == 1) {
    return static_cast<W>(__iso_volatile_load8(reinterpret_cast<const volatile __int8*>(p)));
  } else if constexpr (sizeof(W) == 2) {
    return static_cast<W>(__iso_volatile_load16(reinterpret_cast<const volatile __int16*>(p)));
  } else if constexpr (sizeof(W) == 4) {
    return static_cast<W>(__iso_volatile_load32(reinterpret_cast<const volatile __int32*>(p)));
  } else {
    return static_cast<W>(__iso_volatile_load64(reinterpret_cast<const volatile __int64*>(p)));
  }
}
template <class W>
inline void msvc_relaxed_store(W* p, W v) noexcept {
  if constexpr (sizeof(W) == 1) {
    __iso_volatile_store8(reinterpret_cast<volatile __int8*>(p), static_cast<__int8>(v));
  } else if constexpr (sizeof(W) == 2) {
    __iso_volatile_store16(reinterpret_cast<volatile __int16*>(p), static_cast<__int16>(v));
  } else if constexpr (sizeof(W) == 4) {
    __iso_volatile_store32(reinterpret_cast<volatile __int32*>(p), static_cast<__int32>(v));
  } else {
    __iso_volatile_store64(reinterpret_cast<volatile __int64*>(p), static_cast<__int64>(v));
  }
}
#else
#error "pardict: relaxed word access needs GCC, clang or MSVC"
#endif

// ---- environment -------------------------------------------------------------------------------

// True when the variable is set to something other than "" or "0".
// The high 64 bits of the 128-bit product a * b.
inline std::uint64_t mul_high(std::uint64_t a, std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
#elif defined(_MSC_VER) && defined(_M_X64)
  return __umulh(a, b);
#else
  const std::uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
  const std::uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const std::uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
  return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

inline bool env_flag(const char* name) noexcept {
#if defined(_MSC_VER)
  char* v = nullptr;
  std::size_t n = 0;
  if (_dupenv_s(&v, &n, name) != 0 || v == nullptr) return false;
  const bool on = v[0] != '\0' && std::strcmp(v, "0") != 0;
  std::free(v);
  return on;
#else
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
#endif
}

// ---- the process-wide half of the asymmetric fence ---------------------------------------------

// Called once (epoch_domain's constructor, and again in a fork child). True when process_fence()
// acts as a full barrier on every running thread of the process, so that the other side may use a
// compiler barrier only.
inline bool process_fence_available() noexcept {
  if (env_flag("PARDICT_SYMMETRIC_FENCES")) return false;
#if defined(_WIN32)
  return true;  // FlushProcessWriteBuffers: every Windows since Vista, x64 and ARM64
#elif defined(__linux__) && defined(__NR_membarrier) && !defined(PARDICT_NO_MEMBARRIER)
  const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;  // macOS and the rest: no such call; both sides use seq_cst fences
#endif
}

// Only after process_fence_available() returned true.
inline void process_fence() noexcept {
#if defined(_WIN32)
  FlushProcessWriteBuffers();
#elif defined(__linux__) && defined(__NR_membarrier) && !defined(PARDICT_NO_MEMBARRIER)
  // Registered, so it cannot fail; if it ever did, the light side's compiler barrier would not
  // be enough, and carrying on could free a table that a reader still uses.
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) std::abort();
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// ---- sleeping on an address --------------------------------------------------------------------

// Returns when *a may no longer equal `old` (spurious returns allowed: callers re-check).
inline void wait_on(std::atomic<std::uint32_t>& a, std::uint32_t old) noexcept {
#if defined(_WIN32)
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  WaitOnAddress(static_cast<volatile void*>(&a), &old, sizeof old, INFINITE);
#else
  a.wait(old, std::memory_order_acquire);
#endif
}

inline void wake_all(std::atomic<std::uint32_t>& a) noexcept {
#if defined(_WIN32)
  WakeByAddressAll(static_cast<void*>(&a));
#else
  a.notify_all();
#endif
}

}  // namespace pardict::detail::platform
