// Instantiates the engine for 16-byte keys and every value class.
#include "dict_impl.hpp"

namespace pardict::capi {
template dict_ptr make_dict_for_key<words<2>>(const layout&, std::int64_t);
}  // namespace pardict::capi
