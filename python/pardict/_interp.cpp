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
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "blob.hpp"  // write_unicode_struct
#include "pardict_capi.h"

namespace nb = nanobind;

namespace {

// The scalar types of the direct path (numba int64, float64, boolean).
enum class scalar { int64, float64, boolean };

// Result of a direct operation that does not apply to its arguments: the caller falls back.
constexpr std::int32_t not_here = std::numeric_limits<std::int32_t>::min();

// numba's NRT_MemInfo_alloc_dtor and NRT_MemInfo_data (set once at import).
using alloc_dtor_fn = void* (*)(std::size_t, void (*)(void*, std::size_t, void*));
using alloc_fn = void* (*)(std::size_t);
using meminfo_data_fn = void* (*)(void*);
using release_fn = void (*)(void*);
alloc_dtor_fn g_alloc_dtor = nullptr;
alloc_fn g_alloc = nullptr;  // what numba's own strings are made with (_malloc_string)
meminfo_data_fn g_meminfo_data = nullptr;
release_fn g_release = nullptr;

// A new numba string of code points cp[0..n) (each < 0x110000), made as numba makes one: the
// narrowest kind that holds every code point, a NUL after the last, hash -1 (not computed yet),
// no parent. Written into `blob` (a key of the one-string class, zero past the struct); the
// caller owns its one reference.
template <class T>
void make_numba_string(const T* cp, std::int64_t n, unsigned char* blob) {
  std::uint32_t top = 0;
  for (std::int64_t i = 0; i < n; ++i) top = std::max<std::uint32_t>(top, cp[i]);
  const std::int32_t kind = top < 256 ? 1 : (top < 65536 ? 2 : 4);
  const std::int32_t ascii = top < 128;
  void* mi = g_alloc(static_cast<std::size_t>(n + 1) * static_cast<std::size_t>(kind));
  if (mi == nullptr) throw std::bad_alloc();
  void* data = g_meminfo_data(mi);
  auto fill = [&](auto* out) {
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = static_cast<std::remove_pointer_t<decltype(out)>>(cp[i]);
    out[n] = 0;
  };
  if (kind == 1) {
    fill(static_cast<std::uint8_t*>(data));
  } else if (kind == 2) {
    fill(static_cast<std::uint16_t*>(data));
  } else {
    fill(static_cast<std::uint32_t*>(data));
  }
  pardict::capi::write_unicode_struct(blob, data, n, kind, ascii, mi);
}

// Key i as a new numba string from code points points[starts[i] .. starts[i + 1]) (width bytes
// each), stored with value blob i of vc bytes: op PARDICT_OP_ASSIGN inserts it only when the key
// is absent (pardict_insert), a combining op combines it into the stored value
// (pardict_combine, one field of `kind`). Returns how many keys were new, or a C ABI status.
// The offsets and code points were checked by the caller.
template <class T>
std::int64_t insert_new_strings(pardict_dict* d, const T* points, const std::int64_t* starts,
                                std::int64_t n, const unsigned char* values, std::size_t vc,
                                std::int32_t op, std::int32_t kind) {
  // The key class of one string is 64 bytes; the words past the struct are compared as plain
  // bytes, so they stay zero.
  alignas(8) unsigned char blob[64] = {};
  const std::int32_t fields[2] = {0, kind};
  std::int64_t added = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    make_numba_string(points + starts[i], starts[i + 1] - starts[i], blob);
    const unsigned char* v = values + static_cast<std::size_t>(i) * vc;
    const std::int32_t st = op == PARDICT_OP_ASSIGN
                                ? pardict_insert(d, blob, v)
                                : pardict_combine(d, blob, v, op, fields, 1, nullptr);
    void* mi;
    std::memcpy(&mi, blob + PARDICT_NB_UNICODE_MEMINFO, sizeof mi);
    g_release(mi);  // the dictionary holds its own reference to a key it stored
    if (st < 0) return st;
    added += st == PARDICT_NEW_KEY;
  }
  return added;
}

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
      [](std::uintptr_t alloc_dtor, std::uintptr_t alloc, std::uintptr_t meminfo_data,
         std::uintptr_t release) {
        g_alloc_dtor = reinterpret_cast<alloc_dtor_fn>(alloc_dtor);
        g_alloc = reinterpret_cast<alloc_fn>(alloc);
        g_meminfo_data = reinterpret_cast<meminfo_data_fn>(meminfo_data);
        g_release = reinterpret_cast<release_fn>(release);
      },
      "Install numba's NRT_MemInfo_alloc_dtor, NRT_MemInfo_alloc (as numba's own strings use it), "
      "NRT_MemInfo_data and NRT_MemInfo_release.");

  m.def(
      "insert_new_strings",
      [](std::uintptr_t d, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> points,
         nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> starts,
         nb::ndarray<const std::uint8_t, nb::c_contig, nb::device::cpu> values,
         std::size_t value_class, std::int32_t op, std::int32_t kind) {
        check_table(d);
        if (g_alloc == nullptr || g_release == nullptr)
          throw std::runtime_error("pardict: numba's runtime is not set");
        const std::size_t width = points.itemsize();
        const std::int64_t n = static_cast<std::int64_t>(starts.shape(0)) - 1;
        const auto n_points = static_cast<std::int64_t>(points.size());
        const std::int64_t* st = starts.data();
        bool ok =
            (width == 1 || width == 2 || width == 4) && n >= 0 && value_class > 0 &&
            values.size() >= static_cast<std::size_t>(std::max<std::int64_t>(n, 0)) * value_class &&
            st[0] >= 0 && st[n] <= n_points;
        for (std::int64_t i = 0; ok && i < n; ++i) ok = st[i] <= st[i + 1];
        if (ok && width == 4) {
          const auto* cp = static_cast<const std::uint32_t*>(points.data());
          for (std::int64_t i = st[0]; ok && i < st[n]; ++i) ok = cp[i] < 0x110000;
        }
        if (!ok) throw std::invalid_argument("insert_new_strings: bad code points or offsets");
        std::int64_t r;
        {
          nb::gil_scoped_release unlocked;
          const void* p = points.data();
          const auto* v = values.data();
          r = width == 1 ? insert_new_strings(table(d), static_cast<const std::uint8_t*>(p), st, n,
                                              v, value_class, op, kind)
              : width == 2 ? insert_new_strings(table(d), static_cast<const std::uint16_t*>(p), st,
                                                n, v, value_class, op, kind)
                           : insert_new_strings(table(d), static_cast<const std::uint32_t*>(p), st,
                                                n, v, value_class, op, kind);
        }
        if (r < 0) {
          check_table(d);
          raise_status(static_cast<std::int32_t>(r));
        }
        return r;
      },
      nb::arg("d"), nb::arg("points").noconvert(), nb::arg("starts").noconvert(),
      nb::arg("values").noconvert(), nb::arg("value_class"), nb::arg("op"), nb::arg("kind"),
      "Key i as a new numba string of code points points[starts[i]:starts[i + 1]] with value "
      "blob i (value_class bytes each): op -1 (assign) inserts it when absent, a combining op "
      "(pardict_op, value field of pardict_kind `kind`) combines it. How many keys were new. The "
      "GIL is released.");

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
