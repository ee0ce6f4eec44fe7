// UTF-8 to code points, shared by the C ABI's Arrow word count (utf8_bulk.hpp) and the Python
// module's Arrow conversions (python/pardict/wire.hpp). Internal.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pardict::capi {

// Decodes the UTF-8 bytes data[j .. end) into at most `room` code points at out; returns how many.
// Malformed UTF-8 (Arrow validates its strings, so only a foreign buffer has it) decodes to U+FFFD
// rather than reading past the string's end.
inline std::size_t utf8_decode(const unsigned char* data, std::int64_t j, std::int64_t end,
                               std::uint32_t* out, std::size_t room) noexcept {
  std::size_t k = 0;
  while (j < end && k < room) {
    const unsigned char b = data[j];
    std::uint32_t c;
    int extra;
    if (b < 0x80) {
      c = b;
      extra = 0;
    } else if ((b & 0xE0) == 0xC0) {
      c = b & 0x1Fu;
      extra = 1;
    } else if ((b & 0xF0) == 0xE0) {
      c = b & 0x0Fu;
      extra = 2;
    } else if ((b & 0xF8) == 0xF0) {
      c = b & 0x07u;
      extra = 3;
    } else {
      c = 0xFFFD;
      extra = 0;
    }
    ++j;
    for (int e = 0; e < extra; ++e, ++j) {
      if (j >= end || (data[j] & 0xC0) != 0x80) {
        c = 0xFFFD;
        break;
      }
      c = (c << 6) | (data[j] & 0x3Fu);
    }
    out[k++] = c;
  }
  return k;
}

}  // namespace pardict::capi
