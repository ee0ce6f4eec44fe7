// pardict._ext: the compiled half of the Python package. It carries the C ABI (capi/) and hands
// its entry points' addresses to Python, which registers them with llvmlite so that jitted code
// (including code loaded from numba's cache) links against them by name.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <cstdint>

#include "pardict_capi.h"

namespace nb = nanobind;

// _interp.cpp: tables owned from Python, element operations on scalar keys and values.
void bind_interpreter_path(nb::module_& m);

namespace {

template <class F>
std::uintptr_t addr(F* f) {
  return reinterpret_cast<std::uintptr_t>(f);
}

}  // namespace

// Iterates a snapshot list, raising RuntimeError at the first step after this thread changed the
// dictionary's keys (CPython's rule). In C++ because it runs once per element of every
// interpreter-side loop over a Dict.
class watched_iter {
 public:
  watched_iter(nb::list items, std::uintptr_t watch, nb::object owner)
      : items_(std::move(items)),
        owner_(std::move(owner)),
        watch_(reinterpret_cast<pardict_iter*>(watch)) {}
  ~watched_iter() { close(); }

  nb::object next() {
    if (watch_ != nullptr) {
      void *k, *v;
      if (pardict_iter_next(watch_, &k, &v) == PARDICT_ERR_MUTATED) {
        close();
        throw std::runtime_error("dictionary changed size during iteration");
      }
    }
    if (pos_ >= nb::len(items_)) {
      close();
      throw nb::stop_iteration();
    }
    return items_[pos_++];
  }

 private:
  void close() {
    if (watch_ != nullptr) pardict_iter_free(watch_);
    watch_ = nullptr;
  }
  nb::list items_;
  nb::object owner_;  // keeps the dictionary alive while the watch refers to it
  pardict_iter* watch_;
  std::size_t pos_ = 0;
};

namespace {

// The C ABI's named numbers (pardict_capi.h is their one source), by group, for python/pardict/
// numba/abi.py, which turns each group into an IntEnum and checks the numba layout against the
// installed numba.
nb::dict abi_constants() {
  auto group = [](std::initializer_list<std::pair<const char*, int>> items) {
    nb::dict g;
    for (const auto& [name, value] : items) g[name] = value;
    return g;
  };
  // NAME(X) is {"X", PARDICT_X}: the name Python sees is the header's without its prefix.
  // clang-format off
#define NAME(x) {#x, PARDICT_##x}
#define OP(x) {#x, PARDICT_OP_##x}
#define KIND(x) {#x, PARDICT_KIND_##x}
#define NB(x) {#x, PARDICT_NB_##x}
  // clang-format on
  nb::dict d;
  d["status"] =
      group({NAME(OK), NAME(ERR_NOMEM), NAME(ERR_INVALID), NAME(ERR_REENTRANT), NAME(ERR_MUTATED),
             NAME(ERR_INTERNAL), NAME(ERR_CALLBACK), NAME(ERR_FORKED)});
  d["result"] = group({NAME(ABSENT), NAME(FOUND), NAME(INSERTED), NAME(REPLACED), NAME(NEED_COPY),
                       NAME(NEW_KEY), NAME(OLD_KEY)});
  d["op"] = group({OP(ASSIGN), OP(ADD), OP(MIN), OP(MAX)});
  d["kind"] = group({KIND(I8), KIND(I16), KIND(I32), KIND(I64), KIND(U8), KIND(U16), KIND(U32),
                     KIND(U64), KIND(F32), KIND(F64)});
  d["numba_layout"] =
      group({NB(ARRAY_MEMINFO), NB(ARRAY_NITEMS), NB(ARRAY_ITEMSIZE), NB(ARRAY_DATA),
             NB(ARRAY_SHAPE), NB(UNICODE_DATA), NB(UNICODE_LENGTH), NB(UNICODE_KIND),
             NB(UNICODE_IS_ASCII), NB(UNICODE_HASH), NB(UNICODE_MEMINFO), NB(UNICODE_SIZE)});
#undef NAME
#undef OP
#undef KIND
#undef NB
  return d;
}

}  // namespace

NB_MODULE(_ext, m) {
  m.def("abi", &abi_constants,
        "The C ABI's named constants by group: status, result, op, kind, numba_layout.");
  nb::class_<watched_iter>(m, "WatchedIter")
      .def(nb::init<nb::list, std::uintptr_t, nb::object>())
      .def("__iter__", [](nb::handle self) { return nb::borrow(self); })
      .def("__next__", &watched_iter::next);

  m.doc() = "pardict's compiled core: the C ABI and its symbol table";
  bind_interpreter_path(m);
  m.attr("__version__") = PARDICT_VERSION;  // CMakeLists.txt's project version

  m.def("symbols", [] {
    nb::dict d;
    d["pardict_key_class"] = addr(&pardict_key_class);
    d["pardict_value_class"] = addr(&pardict_value_class);
    d["pardict_new"] = addr(&pardict_new);
    d["pardict_free"] = addr(&pardict_free);
    d["pardict_meminfo_dtor"] = addr(&pardict_meminfo_dtor);
    d["pardict_len"] = addr(&pardict_len);
    d["pardict_set"] = addr(&pardict_set);
    d["pardict_unowned_find"] = addr(&pardict_unowned_find);
    d["pardict_set_array"] = addr(&pardict_set_array);
    d["pardict_unowned_remember"] = addr(&pardict_unowned_remember);
    d["pardict_get"] = addr(&pardict_get);
    d["pardict_contains"] = addr(&pardict_contains);
    d["pardict_pop"] = addr(&pardict_pop);
    d["pardict_popitem"] = addr(&pardict_popitem);
    d["pardict_setdefault"] = addr(&pardict_setdefault);
    d["pardict_insert"] = addr(&pardict_insert);
    d["pardict_combine"] = addr(&pardict_combine);
    d["pardict_update"] = addr(&pardict_update);
    d["pardict_visit"] = addr(&pardict_visit);
    d["pardict_combine_present"] = addr(&pardict_combine_present);
    d["pardict_get_many"] = addr(&pardict_get_many);
    d["pardict_combine_many"] = addr(&pardict_combine_many);
    d["pardict_combine_many_ucs4"] = addr(&pardict_combine_many_ucs4);
    d["pardict_get_many_ucs4"] = addr(&pardict_get_many_ucs4);
    d["pardict_clear"] = addr(&pardict_clear);
    d["pardict_reserve"] = addr(&pardict_reserve);
    d["pardict_copy"] = addr(&pardict_copy);
    d["pardict_iter_new"] = addr(&pardict_iter_new);
    d["pardict_watch_new"] = addr(&pardict_watch_new);
    d["pardict_iter_next"] = addr(&pardict_iter_next);
    d["pardict_iter_len"] = addr(&pardict_iter_len);
    d["pardict_iter_free"] = addr(&pardict_iter_free);
    d["pardict_iter_meminfo_dtor"] = addr(&pardict_iter_meminfo_dtor);
    d["pardict_take_alloc_failures"] = addr(&pardict_take_alloc_failures);
    return d;
  });

  m.def(
      "set_release",
      [](std::uintptr_t fn) { pardict_set_release(reinterpret_cast<void (*)(void*)>(fn)); },
      "Install numba's NRT_MemInfo_release as the function that drops stored references.");
  m.def("live_dicts", &pardict_live_dicts, "Dictionaries alive in this process.");
  m.def("live_refs", &pardict_live_refs,
        "NRT references held by dictionaries and iterators in this process.");
  m.def(
      "take_alloc_failures",
      [](std::uintptr_t d) {
        return pardict_take_alloc_failures(reinterpret_cast<pardict_dict*>(d));
      },
      "Calls on the dictionary that failed to allocate since the last call (then reset to 0).");
  m.def("key_class", &pardict_key_class);
  m.def("value_class", &pardict_value_class);

  // Interpreter-side loops: a watch reports whether this thread inserted or erased a key since.
  m.def("watch_new", [](std::uintptr_t d) {
    std::int32_t st = 0;
    pardict_iter* w = pardict_watch_new(reinterpret_cast<pardict_dict*>(d), nullptr, &st);
    if (st != PARDICT_OK) throw std::bad_alloc();
    return reinterpret_cast<std::uintptr_t>(w);
  });
  m.def("watch_free",
        [](std::uintptr_t w) { pardict_iter_free(reinterpret_cast<pardict_iter*>(w)); });
}
