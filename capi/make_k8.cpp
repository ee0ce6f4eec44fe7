// Instantiates the engine for 8-byte keys and every value class.
#include "dict_impl.hpp"

namespace pardict::capi {
std::unique_ptr<dict_base> make_dict_k8(const layout& l, std::int64_t n_keys) {
  return make_dict_for_key<std::uint64_t>(l, n_keys);
}
}  // namespace pardict::capi
