// The interpreter's direct path to the C ABI: what a Python program does with a Dict before any
// jitted code has seen it costs no compilation.
//
// * A table starts owned by a Python object (table_owner). The NRT MemInfo that jitted code needs
//   is made from it only when the dict first crosses into jitted code (Dict._opaque): by then
//   numba's runtime is up, which a fresh process would otherwise pay ~0.2 s for at Dict.empty.
// * Element operations on keys and values that are int64, float64 or bool scalars convert Python
//   int / float / bool objects to and from the C ABI's blobs here. Only exact matches take this
//   path (a Python int into an int64 slot, a float into a float64 slot, a bool into a bool slot),
//   where numba's implicit-cast rules have nothing to do; everything else is reported as
//   `not_here` and the caller runs the jitted helper, so behaviour is the same either way.
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

#include "pardict_capi.h"

namespace nb = nanobind;

namespace {

// The scalar types of the direct path (numba int64, float64, boolean).
enum class scalar { int64, float64, boolean };

// Result of a direct operation that does not apply to its arguments: the caller falls back.
constexpr std::int32_t not_here = std::numeric_limits<std::int32_t>::min();

// numba's NRT_MemInfo_alloc_dtor and NRT_MemInfo_data (set once at import).
using alloc_dtor_fn = void* (*)(std::size_t, void (*)(void*, std::size_t, void*));
using meminfo_data_fn = void* (*)(void*);
alloc_dtor_fn g_alloc_dtor = nullptr;
meminfo_data_fn g_meminfo_data = nullptr;

pardict_dict* table(std::uintptr_t d) { return reinterpret_cast<pardict_dict*>(d); }

const char* const forked_message =
    "pardict: this dictionary was inherited through fork() while operations on pardict "
    "dictionaries were in flight in the parent, and may be half-changed, so the child cannot use "
    "it (dictionaries made in the child work; or fork while no thread uses a dictionary)";

// Inserts that failed for lack of memory where no exception could reach their caller (a prange
// on numba's workqueue layer drops it) are counted on the dictionary: the next interpreter-side
// call raises MemoryError, so that missing entries never go unnoticed. A dictionary spoiled by
// fork() raises RuntimeError. Needs the GIL.
void check_table(std::uintptr_t d) {
  if (d == 0) return;
  const std::int64_t lost = pardict_take_alloc_failures(table(d));
  if (lost == 0) [[likely]]
    return;
  if (lost == PARDICT_ERR_FORKED) throw std::runtime_error(forked_message);
  PyErr_Format(PyExc_MemoryError,
               "pardict: %lld call(s) that insert into this dictionary failed for lack of memory "
               "where the error could not be raised (e.g. inside a prange); their entries are "
               "missing",
               static_cast<long long>(lost));
  throw nb::python_error();
}

}  // namespace

// The exception for a C ABI error status (also used by _ext.cpp).
[[noreturn]] void raise_status(std::int32_t st) {
  if (st == PARDICT_ERR_NOMEM) throw std::bad_alloc();  // callers reset the count first
  if (st == PARDICT_ERR_MUTATED)
    throw std::runtime_error("dictionary changed size during iteration");
  if (st == PARDICT_ERR_FORKED) throw std::runtime_error(forked_message);
  throw std::runtime_error("pardict: C ABI error " + std::to_string(st));
}

namespace {

// raise_status for a call on table d: a NOMEM raised here is not reported again by check_table.
[[noreturn]] void raise_for(std::uintptr_t d, std::int32_t st) {
  if (st == PARDICT_ERR_NOMEM) (void)pardict_take_alloc_failures(table(d));
  raise_status(st);
}

// A blob of one scalar; 8 bytes hold every class the direct path uses (4 for bool, 8 otherwise).
struct blob {
  alignas(8) unsigned char bytes[8] = {};
};

// obj as a blob of type t, or false when obj is not exactly of t's Python type (or does not fit).
// Keys are canonical as the C side wants them (+0.0 for -0.0, one NaN).
bool to_blob(nb::handle obj, scalar t, bool is_key, blob& out) {
  PyObject* o = obj.ptr();
  switch (t) {
    case scalar::int64: {
      if (!PyLong_CheckExact(o)) return false;
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
      if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
      }
      const std::int64_t x = v;
      std::memcpy(out.bytes, &x, sizeof x);
      return true;
    }
    case scalar::float64: {
      if (!PyFloat_CheckExact(o)) return false;
      double x = PyFloat_AS_DOUBLE(o);
      if (is_key) x = std::isnan(x) ? std::numeric_limits<double>::quiet_NaN() : x + 0.0;
      std::memcpy(out.bytes, &x, sizeof x);
      return true;
    }
    case scalar::boolean:
      if (o != Py_True && o != Py_False) return false;
      out.bytes[0] = o == Py_True ? 1 : 0;
      return true;
  }
  return false;
}

nb::object from_blob(const void* p, scalar t) {
  switch (t) {
    case scalar::int64: {
      std::int64_t x;
      std::memcpy(&x, p, sizeof x);
      return nb::int_(x);
    }
    case scalar::float64: {
      double x;
      std::memcpy(&x, p, sizeof x);
      return nb::float_(x);
    }
    case scalar::boolean:
      return nb::bool_(*static_cast<const unsigned char*>(p) != 0);
  }
  return nb::none();
}

// Owns a table until ownership moves to an NRT MemInfo (or the owner dies).
class table_owner {
 public:
  explicit table_owner(pardict_dict* d) : d_(d) {}
  table_owner(const table_owner&) = delete;
  table_owner& operator=(const table_owner&) = delete;
  ~table_owner() {
    if (d_ != nullptr) pardict_free(d_);
  }
  std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(d_); }

  // An NRT MemInfo (one reference, for numba's _MemInfo object to take) whose destructor frees
  // the table; this owner lets go of it.
  std::uintptr_t to_meminfo() {
    if (d_ == nullptr) throw std::runtime_error("pardict: the table was already handed over");
    if (g_alloc_dtor == nullptr) throw std::runtime_error("pardict: numba's runtime is not set");
    void* mi = g_alloc_dtor(sizeof(void*), &pardict_meminfo_dtor);
    if (mi == nullptr) throw std::bad_alloc();
    std::memcpy(g_meminfo_data(mi), &d_, sizeof d_);
    d_ = nullptr;
    return reinterpret_cast<std::uintptr_t>(mi);
  }

 private:
  pardict_dict* d_;
};

table_owner* own(pardict_dict* d, std::int32_t st) {
  if (d == nullptr) {
    if (st == PARDICT_ERR_INVALID) throw std::invalid_argument("pardict: invalid table layout");
    raise_status(st);
  }
  return new table_owner(d);
}

}  // namespace

void bind_interpreter_path(nb::module_& m) {
  nb::enum_<scalar>(m, "Scalar")
      .value("int64", scalar::int64)
      .value("float64", scalar::float64)
      .value("boolean", scalar::boolean);
  m.attr("NOT_HERE") = not_here;
  m.def("check_table", &check_table,
        "Raise what the C ABI noted on the table since the last call: MemoryError for inserts "
        "that failed where no exception could be raised, RuntimeError if fork() spoiled it.");

  m.def(
      "set_nrt",
      [](std::uintptr_t alloc_dtor, std::uintptr_t meminfo_data) {
        g_alloc_dtor = reinterpret_cast<alloc_dtor_fn>(alloc_dtor);
        g_meminfo_data = reinterpret_cast<meminfo_data_fn>(meminfo_data);
      },
      "Install numba's NRT_MemInfo_alloc_dtor and NRT_MemInfo_data.");

  nb::class_<table_owner>(m, "TableOwner")
      .def_prop_ro("address", &table_owner::address)
      .def("to_meminfo", &table_owner::to_meminfo);

  m.def(
      "new_table",
      [](std::uint32_t key_size, std::uint32_t value_size, std::uint32_t key_refs,
         std::uint32_t key_strs, std::uint32_t value_refs, std::int64_t n_keys) {
        std::int32_t st = PARDICT_OK;
        pardict_dict* d =
            pardict_new(key_size, value_size, key_refs, key_strs, value_refs, n_keys, &st);
        return own(d, st);
      },
      nb::rv_policy::take_ownership);
  m.def(
      "copy_table",
      [](std::uintptr_t d) {
        std::int32_t st = PARDICT_OK;
        pardict_dict* c;
        {
          nb::gil_scoped_release nogil;
          c = pardict_copy(table(d), &st);
        }
        return own(c, st);
      },
      nb::rv_policy::take_ownership);

  m.def("length", [](std::uintptr_t d) {
    check_table(d);
    return pardict_len(table(d));
  });
  m.def("clear", [](std::uintptr_t d) {
    check_table(d);
    std::int32_t st;
    {
      nb::gil_scoped_release nogil;
      st = pardict_clear(table(d));
    }
    if (st < 0) raise_for(d, st);
  });
  m.def("reserve", [](std::uintptr_t d, std::int64_t n) {
    check_table(d);
    const std::int32_t st = pardict_reserve(table(d), n);
    if (st < 0) raise_for(d, st);
  });

  // d[key] = value: INSERTED, REPLACED, or not_here.
  m.def(
      "set",
      [](std::uintptr_t d, scalar kt, scalar vt, nb::handle key, nb::handle value) {
        check_table(d);
        blob k, v, old;
        if (!to_blob(key, kt, true, k) || !to_blob(value, vt, false, v)) return not_here;
        const std::int32_t st = pardict_set(table(d), k.bytes, v.bytes, old.bytes);
        if (st < 0) raise_for(d, st);
        return st;
      },
      nb::arg("d"), nb::arg("kt"), nb::arg("vt"), nb::arg("key").none(), nb::arg("value").none());
  // d[key] for get/pop/contains: (FOUND or ABSENT, value or None); (not_here, None).
  auto lookup = [](auto cfn) {
    return [cfn](std::uintptr_t d, scalar kt, scalar vt, nb::handle key) {
      check_table(d);
      blob k, out;
      if (!to_blob(key, kt, true, k)) return std::make_pair(not_here, nb::object(nb::none()));
      const std::int32_t st = cfn(table(d), k.bytes, out.bytes);
      if (st < 0) raise_for(d, st);
      return std::make_pair(st, st == PARDICT_FOUND ? from_blob(out.bytes, vt) : nb::none());
    };
  };
  // None (and any other object) must reach to_blob, which reports it as not_here.
  m.def("get",
        lookup([](pardict_dict* d, const void* k, void* out) { return pardict_get(d, k, out); }),
        nb::arg("d"), nb::arg("kt"), nb::arg("vt"), nb::arg("key").none());
  m.def("pop",
        lookup([](pardict_dict* d, const void* k, void* out) { return pardict_pop(d, k, out); }),
        nb::arg("d"), nb::arg("kt"), nb::arg("vt"), nb::arg("key").none());
  m.def(
      "contains",
      [](std::uintptr_t d, scalar kt, nb::handle key) {
        check_table(d);
        blob k;
        if (!to_blob(key, kt, true, k)) return not_here;
        const std::int32_t st = pardict_contains(table(d), k.bytes);
        if (st < 0) raise_for(d, st);
        return st;
      },
      nb::arg("d"), nb::arg("kt"), nb::arg("key").none());

  // A snapshot of every element as a list: keys, values, or (key, value) tuples.
  m.def("snapshot", [](std::uintptr_t d, scalar kt, scalar vt, bool keys, bool values) {
    check_table(d);
    std::int32_t st = PARDICT_OK;
    pardict_iter* it;
    {
      nb::gil_scoped_release nogil;
      it = pardict_iter_new(table(d), nullptr, &st);
    }
    if (it == nullptr) raise_for(d, st);
    struct closer {
      pardict_iter* it;
      ~closer() { pardict_iter_free(it); }
    } c{it};
    nb::list out;
    void *kp, *vp;
    while ((st = pardict_iter_next(it, &kp, &vp)) == PARDICT_FOUND) {
      if (keys && values) {
        out.append(nb::make_tuple(from_blob(kp, kt), from_blob(vp, vt)));
      } else {
        out.append(keys ? from_blob(kp, kt) : from_blob(vp, vt));
      }
    }
    if (st < 0) raise_for(d, st);
    return out;
  });
}
