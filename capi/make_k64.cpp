// Instantiates the engine for 64-byte keys and every value class.
#include "dict_impl.hpp"

namespace pardict::capi {
std::unique_ptr<dict_base> make_dict_k64(const layout& l, std::int64_t n_keys) {
  return make_dict_for_key<words<8>>(l, n_keys);
}
}  // namespace pardict::capi
