// Tag matching over a group's 8 tag bytes (include/pardict/detail/group.hpp): what the table runs
// (SSE2 on x86-64, the borrow-free SWAR formula elsewhere) against a byte-by-byte model, for every
// byte value in every slot and for words made of the values where a formula could go wrong (0, 1,
// 0x7f, 0x80, 0xff, the tag itself, repeated); and constant evaluation, which always takes the SWAR
// formula, against the same answers.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>

#include "pardict/detail/group.hpp"

namespace {

using pardict::detail::match_empty;
using pardict::detail::match_full;
using pardict::detail::match_tag;
using pardict::detail::with_tag;

// The high bit of every byte of `tags` equal to `tag`.
std::uint64_t model(std::uint64_t tags, std::uint8_t tag) {
  std::uint64_t m = 0;
  for (unsigned i = 0; i < 8; ++i) {
    if (((tags >> (8 * i)) & 0xff) == tag) m |= std::uint64_t{0x80} << (8 * i);
  }
  return m;
}

void expect_all(std::uint64_t tags, std::uint8_t tag) {
  EXPECT_EQ(match_tag(tags, tag), model(tags, tag)) << std::hex << tags << " " << unsigned{tag};
  EXPECT_EQ(match_empty(tags), model(tags, 0)) << std::hex << tags;
  EXPECT_EQ(match_full(tags), model(tags, 0) ^ 0x8080808080808080ULL) << std::hex << tags;
}

TEST(TagMatch, EveryByteValueInEverySlot) {
  std::mt19937_64 rng(7);
  for (unsigned slot = 0; slot < 8; ++slot) {
    for (unsigned b = 0; b < 256; ++b) {
      const auto byte = static_cast<std::uint8_t>(b);
      const std::uint64_t tags = with_tag(rng(), slot, byte);
      for (const unsigned t : {0u, 1u, 0x7fu, 0x80u, 0xffu, b, (b + 1) & 0xffu, b ^ 0x80u}) {
        expect_all(tags, static_cast<std::uint8_t>(t));
      }
    }
  }
}

TEST(TagMatch, WordsOfAwkwardBytes) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 20000; ++round) {
    const auto tag = static_cast<std::uint8_t>(rng());
    const std::array<std::uint8_t, 6> alphabet{0, 1, 0x7f, 0x80, 0xff, tag};
    std::uint64_t tags = 0;
    for (unsigned i = 0; i < 8; ++i) {
      tags |= std::uint64_t{alphabet[rng() % alphabet.size()]} << (8 * i);
    }
    expect_all(tags, tag);
  }
}

// Constant evaluation takes the SWAR formula on every target.
static_assert(match_tag(0x0001020304050607ULL, 3) == 0x0000008000000000ULL);
static_assert(match_tag(0x0303030303030303ULL, 3) == 0x8080808080808080ULL);
static_assert(match_tag(0x0102030405060708ULL, 9) == 0);
static_assert(match_empty(0x0001020304050607ULL) == 0x8000000000000000ULL);
static_assert(match_empty(0x8080808080808080ULL) == 0);

TEST(TagMatch, RunTimeAgreesWithConstantEvaluation) {
  volatile std::uint64_t tags = 0x0001020304050607ULL;  // not a constant expression
  EXPECT_EQ(match_tag(tags, 3), 0x0000008000000000ULL);
  EXPECT_EQ(match_empty(tags), 0x8000000000000000ULL);
}

}  // namespace
