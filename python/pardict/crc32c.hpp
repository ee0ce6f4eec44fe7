// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78): the checksum of pardict's pickle wire
// format (python/pardict/_wire.py). The same value as iSCSI, ext4 and Intel's crc32 instruction:
// crc32c("123456789") == 0xE3069283.
//
// Three implementations give the same result, chosen once at run time:
//   * x86-64 with SSE4.2: the crc32 instruction on three interleaved streams. One stream is bound
//     by the instruction's 3-cycle latency (8 bytes per 3 cycles); three independent streams keep
//     its one-per-cycle throughput busy, and are stitched together by multiplying the first two by
//     x^(8 * lane bytes) modulo the polynomial (a table lookup per byte of the 32-bit register).
//   * arm64 when the compiler targets the CRC extension (__ARM_FEATURE_CRC32: Apple silicon, or
//     -march=armv8.1-a and later): its crc32c instructions, one stream.
//   * everywhere else: slicing-by-8 tables (about 1-2 GB/s).
// The function bodies that use the instruction are compiled for SSE4.2 through a target attribute
// (GCC, Clang) or need nothing (MSVC), so the rest of the module keeps the baseline ISA.
#ifndef PARDICT_CRC32C_HPP
#define PARDICT_CRC32C_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define PARDICT_CRC32C_X86 1
#include <nmmintrin.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define PARDICT_CRC32C_TARGET
#else
#include <cpuid.h>
#define PARDICT_CRC32C_TARGET __attribute__((target("sse4.2")))
#endif
#elif (defined(__aarch64__) || defined(_M_ARM64)) && defined(__ARM_FEATURE_CRC32)
#define PARDICT_CRC32C_ARM 1
#include <arm_acle.h>
#endif

namespace pardict::crc32c {

inline constexpr std::uint32_t polynomial = 0x82F63B78u;  // reflected

namespace detail {

// All updates below work on the raw register (no pre- or post-inversion); crc() inverts.

inline std::uint32_t step_bits(std::uint32_t r, int bits) noexcept {
  for (int i = 0; i < bits; ++i) r = (r & 1u) ? (r >> 1) ^ polynomial : r >> 1;
  return r;
}

struct sw_tables {
  std::uint32_t t[8][256];
};

inline const sw_tables& tables() noexcept {
  static const sw_tables tab = [] {
    sw_tables s{};
    for (std::uint32_t b = 0; b < 256; ++b) s.t[0][b] = step_bits(b, 8);
    for (int k = 1; k < 8; ++k)
      for (std::uint32_t b = 0; b < 256; ++b)
        s.t[k][b] = (s.t[k - 1][b] >> 8) ^ s.t[0][s.t[k - 1][b] & 0xffu];
    return s;
  }();
  return tab;
}

inline std::uint64_t load64(const unsigned char* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);  // little-endian hosts only (x86-64, arm64)
  return x;
}

// Slicing-by-8: eight table lookups per 8 bytes.
inline std::uint32_t software(std::uint32_t r, const unsigned char* p, std::size_t n) noexcept {
  const sw_tables& s = tables();
  for (; n >= 8; n -= 8, p += 8) {
    const std::uint64_t x = load64(p) ^ r;
    r = s.t[7][x & 0xff] ^ s.t[6][(x >> 8) & 0xff] ^ s.t[5][(x >> 16) & 0xff] ^
        s.t[4][(x >> 24) & 0xff] ^ s.t[3][(x >> 32) & 0xff] ^ s.t[2][(x >> 40) & 0xff] ^
        s.t[1][(x >> 48) & 0xff] ^ s.t[0][x >> 56];
  }
  for (; n > 0; --n, ++p) r = (r >> 8) ^ s.t[0][(r ^ *p) & 0xffu];
  return r;
}

// a * b modulo the polynomial, both in the reflected representation (bit 31 is x^0).
inline std::uint32_t multiply(std::uint32_t a, std::uint32_t b) noexcept {
  std::uint32_t product = 0;
  for (std::uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = (b & 1u) ? (b >> 1) ^ polynomial : b >> 1;
  }
  return product;
}

// Bytes per lane of the three-stream loop, and the operator that moves a register past that many
// zero bytes (multiplication by x^(8 * lane)), as four byte tables.
inline constexpr std::size_t lane = 8192;

struct shift_tables {
  std::uint32_t t[4][256];
};

inline const shift_tables& lane_shift() noexcept {
  static const shift_tables tab = [] {
    // x^(8 * lane): the register x^0 (bit 31) moved past `lane` zero bytes.
    std::uint32_t x = 1u << 31;
    for (std::size_t i = 0; i < lane; ++i) x = step_bits(x, 8);
    shift_tables s{};
    for (int k = 0; k < 4; ++k)
      for (std::uint32_t b = 0; b < 256; ++b) s.t[k][b] = multiply(b << (8 * k), x);
    return s;
  }();
  return tab;
}

inline std::uint32_t shift_lane(const shift_tables& s, std::uint32_t r) noexcept {
  return s.t[0][r & 0xff] ^ s.t[1][(r >> 8) & 0xff] ^ s.t[2][(r >> 16) & 0xff] ^ s.t[3][r >> 24];
}

#if defined(PARDICT_CRC32C_X86)

inline bool cpu_has_sse42() noexcept {
#if defined(_MSC_VER) && !defined(__clang__)
  int info[4];
  __cpuid(info, 1);
  return (info[2] & (1 << 20)) != 0;
#else
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  return (c & bit_SSE4_2) != 0;
#endif
}

PARDICT_CRC32C_TARGET inline std::uint32_t hw_one(std::uint32_t r, const unsigned char* p,
                                                  std::size_t n) noexcept {
  std::uint64_t r64 = r;
  for (; n >= 8; n -= 8, p += 8) r64 = _mm_crc32_u64(r64, load64(p));
  r = static_cast<std::uint32_t>(r64);
  for (; n > 0; --n, ++p) r = _mm_crc32_u8(r, *p);
  return r;
}

PARDICT_CRC32C_TARGET inline std::uint32_t hardware(std::uint32_t r, const unsigned char* p,
                                                    std::size_t n) noexcept {
  if (n >= 3 * lane) {
    const shift_tables& s = lane_shift();
    for (; n >= 3 * lane; n -= 3 * lane, p += 3 * lane) {
      std::uint64_t a = r, b = 0, c = 0;
      for (std::size_t i = 0; i < lane; i += 8) {
        a = _mm_crc32_u64(a, load64(p + i));
        b = _mm_crc32_u64(b, load64(p + lane + i));
        c = _mm_crc32_u64(c, load64(p + 2 * lane + i));
      }
      // crc(A B C) = shift(shift(A) ^ B) ^ C, each shift moving past one lane of bytes.
      r = shift_lane(s,
                     shift_lane(s, static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
          static_cast<std::uint32_t>(c);
    }
  }
  return hw_one(r, p, n);
}

#elif defined(PARDICT_CRC32C_ARM)

inline std::uint32_t hardware(std::uint32_t r, const unsigned char* p, std::size_t n) noexcept {
  for (; n >= 8; n -= 8, p += 8) r = __crc32cd(r, load64(p));
  for (; n > 0; --n, ++p) r = __crc32cb(r, *p);
  return r;
}

#endif

using update_fn = std::uint32_t (*)(std::uint32_t, const unsigned char*, std::size_t) noexcept;

inline update_fn pick() noexcept {
#if defined(PARDICT_CRC32C_X86)
  if (cpu_has_sse42()) return &hardware;
#elif defined(PARDICT_CRC32C_ARM)
  return &hardware;
#endif
  return &software;
}

inline update_fn chosen() noexcept {
  static const update_fn fn = pick();
  return fn;
}

}  // namespace detail

// Which implementation crc() uses on this machine: "sse4.2", "armv8-crc" or "software".
inline const char* implementation() noexcept {
#if defined(PARDICT_CRC32C_X86)
  if (detail::chosen() == &detail::hardware) return "sse4.2";
#elif defined(PARDICT_CRC32C_ARM)
  return "armv8-crc";
#endif
  return "software";
}

// The CRC-32C of n bytes at p, continuing from `previous` (the CRC of the bytes before them;
// 0 to start), so crc(crc(0, a), b) == crc of a followed by b.
inline std::uint32_t crc(std::uint32_t previous, const void* p, std::size_t n) noexcept {
  return ~detail::chosen()(~previous, static_cast<const unsigned char*>(p), n);
}

// The software implementation, for tests that compare it with the hardware one.
inline std::uint32_t crc_software(std::uint32_t previous, const void* p, std::size_t n) noexcept {
  return ~detail::software(~previous, static_cast<const unsigned char*>(p), n);
}

}  // namespace pardict::crc32c

#endif  // PARDICT_CRC32C_HPP
