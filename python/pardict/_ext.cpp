// pardict._ext: the compiled half of the Python package. It carries the C ABI (capi/) and hands
// its entry points' addresses to Python, which registers them with llvmlite so that jitted code
// (including code loaded from numba's cache) links against them by name.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "crc32c.hpp"
#include "pardict_capi.h"
#include "wire.hpp"

namespace nb = nanobind;

// _interp.cpp: tables owned from Python, element operations on scalar keys and values; the
// exception for a C ABI error status.
void bind_interpreter_path(nb::module_& m);
[[noreturn]] void raise_status(std::int32_t st);

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

// ---- checksums, the wire format and pardict.dask's conversions (python/pardict/_wire.py) -----
namespace {

// A C-contiguous buffer of any object with the buffer protocol (bytes, bytearray, memoryview,
// PickleBuffer, NumPy arrays), held for the scope.
class buffer_view {
 public:
  buffer_view(nb::handle obj, bool writable) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) != 0)
      throw nb::python_error();
  }
  ~buffer_view() { PyBuffer_Release(&view_); }
  buffer_view(const buffer_view&) = delete;
  buffer_view& operator=(const buffer_view&) = delete;
  const unsigned char* data() const noexcept {
    return static_cast<const unsigned char*>(view_.buf);
  }
  unsigned char* mutable_data() const noexcept { return static_cast<unsigned char*>(view_.buf); }
  std::size_t size() const noexcept { return static_cast<std::size_t>(view_.len); }

 private:
  Py_buffer view_{};
};

using byte_array = nb::ndarray<nb::numpy, std::uint8_t, nb::ndim<1>>;

// Hands owned bytes to NumPy without a copy (the array frees them).
byte_array to_numpy(pardict::wire::owned_bytes&& b) {
  unsigned char* p = b.data.release();
  nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
  return byte_array(p, {b.size}, owner);
}

pardict_dict* table(std::uintptr_t handle) {
  if (handle == 0) throw std::invalid_argument("pardict: null table");
  return reinterpret_cast<pardict_dict*>(handle);
}

void check_status(std::int32_t st) {
  if (st < 0) raise_status(st);
}

// CRC-32C of several buffers, each on its own thread when it is large (the pickled keys and values
// are checked at once).
nb::list crc32c_many(nb::sequence buffers) {
  std::vector<std::unique_ptr<buffer_view>> views;
  for (nb::handle b : buffers) views.push_back(std::make_unique<buffer_view>(b, false));
  std::vector<std::uint32_t> out(views.size(), 0);
  {
    nb::gil_scoped_release unlocked;
    constexpr std::size_t own_thread = std::size_t{1} << 20;
    std::vector<std::thread> workers;
    for (std::size_t i = 0; i < views.size(); ++i) {
      auto work = [&, i] { out[i] = pardict::crc32c::crc(0, views[i]->data(), views[i]->size()); };
      if (i + 1 < views.size() && views[i]->size() >= own_thread) {
        try {
          workers.emplace_back(work);
          continue;
        } catch (const std::system_error&) {  // no thread to spare: do it here
        }
      }
      work();
    }
    for (auto& w : workers) w.join();
  }
  nb::list l;
  for (std::uint32_t c : out) l.append(c);
  return l;
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
    d["pardict_array_view_dtor"] = addr(&pardict_array_view_dtor);
    d["pardict_len"] = addr(&pardict_len);
    d["pardict_set"] = addr(&pardict_set);
    d["pardict_unowned_find"] = addr(&pardict_unowned_find);
    d["pardict_set_array"] = addr(&pardict_set_array);
    d["pardict_unowned_remember"] = addr(&pardict_unowned_remember);
    d["pardict_view_find"] = addr(&pardict_view_find);
    d["pardict_set_view"] = addr(&pardict_set_view);
    d["pardict_view_remember"] = addr(&pardict_view_remember);
    d["pardict_get"] = addr(&pardict_get);
    d["pardict_jit_thread_ctx"] = addr(&pardict_jit_thread_ctx);
    d["pardict_jit_thread_for"] = addr(&pardict_jit_thread_for);
    d["pardict_jit_slot_for"] = addr(&pardict_jit_slot_for);
    d["pardict_jit_domain"] = addr(&pardict_jit_domain);
    d["pardict_jit_grow"] = addr(&pardict_jit_grow);
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
    d["pardict_combine_many_utf8"] = addr(&pardict_combine_many_utf8);
    d["pardict_clear"] = addr(&pardict_clear);
    d["pardict_reserve"] = addr(&pardict_reserve);
    d["pardict_copy"] = addr(&pardict_copy);
    d["pardict_iter_new"] = addr(&pardict_iter_new);
    d["pardict_watch_new"] = addr(&pardict_watch_new);
    d["pardict_iter_next"] = addr(&pardict_iter_next);
    d["pardict_iter_len"] = addr(&pardict_iter_len);
    d["pardict_iter_free"] = addr(&pardict_iter_free);
    d["pardict_iter_meminfo_dtor"] = addr(&pardict_iter_meminfo_dtor);
    d["pardict_group_indices"] = addr(&pardict_group_indices);
    d["pardict_group_indices_ucs4"] = addr(&pardict_group_indices_ucs4);
    d["pardict_export_many"] = addr(&pardict_export_many);
    d["pardict_merge"] = addr(&pardict_merge);
    d["pardict_take_alloc_failures"] = addr(&pardict_take_alloc_failures);
    return d;
  });

  m.def(
      "set_release",
      [](std::uintptr_t fn) { pardict_set_release(reinterpret_cast<void (*)(void*)>(fn)); },
      "Install numba's NRT_MemInfo_release as the function that drops stored references.");
  m.def("jit_fences", &pardict_jit_fences,
        "1 when the numba fast path's light fence is a compiler barrier, 0 a full fence.");
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
    if (st != PARDICT_OK) check_status(st < 0 ? st : PARDICT_ERR_INTERNAL);
    return reinterpret_cast<std::uintptr_t>(w);
  });
  m.def("watch_free",
        [](std::uintptr_t w) { pardict_iter_free(reinterpret_cast<pardict_iter*>(w)); });

  // ---- wire format (python/pardict/_wire.py) and pardict.dask input conversion -----------------
  m.def(
      "crc32c",
      [](nb::handle data, std::uint32_t previous) {
        buffer_view b(data, false);
        nb::gil_scoped_release unlocked;
        return pardict::crc32c::crc(previous, b.data(), b.size());
      },
      nb::arg("data"), nb::arg("previous") = 0,
      "CRC-32C of a buffer, continuing from `previous`; the GIL is released.");
  m.def(
      "crc32c_software",
      [](nb::handle data, std::uint32_t previous) {
        buffer_view b(data, false);
        return pardict::crc32c::crc_software(previous, b.data(), b.size());
      },
      nb::arg("data"), nb::arg("previous") = 0, "crc32c's portable implementation (for tests).");
  m.def("crc32c_many", &crc32c_many, "CRC-32C of each buffer, large ones on their own threads.");
  m.def("crc32c_implementation", &pardict::crc32c::implementation,
        "Which CRC-32C implementation this CPU uses: 'sse4.2', 'armv8-crc' or 'software'.");
  m.def(
      "export_plain",
      [](std::uintptr_t d, std::size_t key_class, std::size_t value_class) {
        pardict::wire::owned_bytes keys, values;
        std::size_t n = 0;
        std::int32_t st;
        {
          nb::gil_scoped_release unlocked;
          st = pardict::wire::export_plain(table(d), key_class, value_class, keys, values, n);
        }
        check_status(st);
        return nb::make_tuple(to_numpy(std::move(keys)), to_numpy(std::move(values)));
      },
      "(key blobs, value blobs) of a table of plain keys and values as byte arrays, in table "
      "order.");
  m.def(
      "export_str",
      [](std::uintptr_t d, std::size_t value_size) {
        pardict::wire::owned_bytes chars, offsets, values;
        std::size_t n = 0;
        int width = 1;
        std::int32_t st;
        {
          nb::gil_scoped_release unlocked;
          st = pardict::wire::export_str(table(d), value_size, chars, offsets, values, width, n);
        }
        check_status(st);
        return nb::make_tuple(to_numpy(std::move(chars)), width, to_numpy(std::move(offsets)),
                              to_numpy(std::move(values)));
      },
      "(chars, width, offsets, values) of a table with one-string keys and plain values.");
  m.def(
      "to_ucs4",
      [](nb::handle chars, int width, nb::handle offsets, nb::handle out, std::size_t out_width) {
        buffer_view c(chars, false), o(offsets, false), u(out, true);
        const std::size_t n = o.size() / 8 - 1;
        if (o.size() < 8 || u.size() < n * out_width * 4)
          throw std::invalid_argument("to_ucs4: buffer sizes do not match");
        nb::gil_scoped_release unlocked;
        pardict::wire::to_ucs4(c.data(), width, reinterpret_cast<const std::int64_t*>(o.data()), n,
                               out_width, reinterpret_cast<std::uint32_t*>(u.mutable_data()));
      },
      "Code points and offsets into a NumPy unicode array's buffer (checked by the caller).");
  m.def(
      "insert_plain",
      [](std::uintptr_t d, nb::handle keys, nb::handle values, std::int64_t n, nb::handle seeds,
         nb::handle groups, std::int32_t threads) {
        buffer_view k(keys, false), v(values, false);
        // Copied out: the buffers may come from anywhere in a pickle stream, unaligned.
        const bool geometry = !seeds.is_none() && !groups.is_none();
        std::array<std::uint32_t, PARDICT_SHARDS> seed{};
        std::array<std::uint64_t, PARDICT_SHARDS> group{};
        if (geometry) {
          buffer_view sv(seeds, false), gv(groups, false);
          if (sv.size() != sizeof seed || gv.size() != sizeof group)
            throw std::invalid_argument("insert_plain: a shard geometry has 64 entries");
          std::memcpy(seed.data(), sv.data(), sizeof seed);
          std::memcpy(group.data(), gv.data(), sizeof group);
        }
        std::int64_t count = 0;
        std::int32_t st;
        {
          nb::gil_scoped_release unlocked;
          st = pardict_load_many(table(d), k.data(), v.data(), n, geometry ? seed.data() : nullptr,
                                 geometry ? group.data() : nullptr, threads, &count);
        }
        check_status(st);
        return count;
      },
      nb::arg("d"), nb::arg("keys"), nb::arg("values"), nb::arg("n"), nb::arg("seeds").none(),
      nb::arg("groups").none(), nb::arg("threads"),
      "pardict_load_many over key and value blob buffers (sizes checked by the caller), with the "
      "exporter's shard geometry (64 uint32 seeds, 64 uint64 group counts) or None; the number of "
      "new keys. The GIL is released.");
  m.def(
      "shard_geometry",
      [](std::uintptr_t d) {
        std::uint32_t seeds[PARDICT_SHARDS];
        std::uint64_t groups[PARDICT_SHARDS];
        check_status(pardict_shard_geometry(table(d), seeds, groups));
        return nb::make_tuple(nb::bytes(reinterpret_cast<const char*>(seeds), sizeof seeds),
                              nb::bytes(reinterpret_cast<const char*>(groups), sizeof groups));
      },
      "(seeds, group counts) of the table's 64 shards as bytes (uint32 / uint64, native order).");
  m.def(
      "combine_many_utf8",
      [](std::uintptr_t d, nb::handle data, nb::handle offsets, int offset_bytes,
         std::int64_t first, std::int64_t n, nb::handle values, std::int64_t value_stride,
         std::int32_t op, std::int32_t kind, std::int32_t threads, std::size_t value_class) {
        buffer_view dv(data, false), ov(offsets, false), vv(values, false);
        if ((offset_bytes != 4 && offset_bytes != 8) || first < 0 || n < 0 ||
            ov.size() < static_cast<std::size_t>(first + n + 1) * offset_bytes ||
            vv.size() <
                (value_stride == 0 ? value_class : static_cast<std::size_t>(n * value_stride)))
          throw std::invalid_argument("combine_many_utf8: buffer sizes do not match");
        // Room for n misses, as the C ABI asks; pages never written are never touched.
        pardict::wire::owned_bytes rows, misses;
        rows.allocate(static_cast<std::size_t>(n) * sizeof(std::int64_t));
        misses.allocate(static_cast<std::size_t>(n) * value_class);
        const std::int32_t fields[2] = {0, kind};
        std::int64_t m = 0;
        std::int32_t st;
        {
          nb::gil_scoped_release unlocked;
          st = pardict_combine_many_utf8(
              table(d), dv.data(), static_cast<std::int64_t>(dv.size()), ov.data(), offset_bytes,
              first, n, vv.data(), value_stride, op, fields, 1, threads,
              reinterpret_cast<std::int64_t*>(rows.get()), misses.get(), &m);
        }
        check_status(st);
        rows.size = static_cast<std::size_t>(m) * sizeof(std::int64_t);
        misses.size = static_cast<std::size_t>(m) * value_class;
        return nb::make_tuple(to_numpy(std::move(rows)), to_numpy(std::move(misses)));
      },
      "pardict_combine_many_utf8 over an Arrow string array's buffers, one scalar value field of "
      "`kind`: (miss rows as int64 bytes, their aggregated value blobs). The GIL is released.");
  m.def(
      "utf8_gather",
      [](nb::handle data, nb::handle offsets, int offset_bytes, std::size_t first, std::size_t n,
         nb::handle rows) {
        buffer_view dv(data, false), ov(offsets, false), rv(rows, false);
        if ((offset_bytes != 4 && offset_bytes != 8) ||
            ov.size() < (first + n + 1) * static_cast<std::size_t>(offset_bytes) ||
            rv.size() % sizeof(std::int64_t) != 0)
          throw std::invalid_argument("utf8_gather: buffer sizes do not match");
        const std::size_t n_rows = rv.size() / sizeof(std::int64_t);
        std::vector<std::int64_t> picked(n_rows);
        if (n_rows != 0) std::memcpy(picked.data(), rv.data(), rv.size());
        pardict::wire::owned_bytes points, offs;
        {
          nb::gil_scoped_release unlocked;
          // Every row inside the array, every string inside the data: then the decode cannot
          // read out of bounds. Room: a code point takes at least one byte.
          std::size_t bytes = 0;
          bool ok = true;
          for (const std::int64_t r : picked) {
            if (r < 0 || static_cast<std::size_t>(r) >= n) {
              ok = false;
              break;
            }
            const std::size_t at = first + static_cast<std::size_t>(r);
            const std::int64_t a = pardict::wire::offset_at(ov.data(), offset_bytes, at);
            const std::int64_t b = pardict::wire::offset_at(ov.data(), offset_bytes, at + 1);
            if (a < 0 || b < a || static_cast<std::size_t>(b) > dv.size()) {
              ok = false;
              break;
            }
            bytes += static_cast<std::size_t>(b - a);
          }
          if (ok) {
            points.allocate(bytes * sizeof(std::uint32_t));
            offs.allocate((n_rows + 1) * sizeof(std::int64_t));
            const std::int64_t got =
                pardict::wire::utf8_gather(dv.data(), ov.data(), offset_bytes, first, picked.data(),
                                           n_rows, reinterpret_cast<std::uint32_t*>(points.get()),
                                           reinterpret_cast<std::int64_t*>(offs.get()));
            points.size = static_cast<std::size_t>(got) * sizeof(std::uint32_t);
          }
        }
        if (offs.get() == nullptr) throw std::invalid_argument("utf8_gather: bad rows or offsets");
        return nb::make_tuple(to_numpy(std::move(points)), to_numpy(std::move(offs)));
      },
      "The UTF-8 strings at `rows` (int64, relative to first) of an Arrow string array, decoded: "
      "(code points as uint32 bytes, n_rows + 1 int64 offsets as bytes). The GIL is released.");
  m.def(
      "utf8_max_length",
      [](nb::handle data, nb::handle offsets, int offset_bytes, std::size_t first, std::size_t n) {
        buffer_view dv(data, false), ov(offsets, false);
        if ((offset_bytes != 4 && offset_bytes != 8) ||
            ov.size() < (first + n + 1) * static_cast<std::size_t>(offset_bytes))
          throw std::invalid_argument("utf8_max_length: bad offsets");
        nb::gil_scoped_release unlocked;
        return pardict::wire::utf8_max_length(dv.data(), dv.size(), ov.data(), offset_bytes, first,
                                              n);
      },
      "Code points of the longest UTF-8 string; -1 for bad offsets.");
  m.def(
      "utf8_to_ucs4",
      [](nb::handle data, nb::handle offsets, int offset_bytes, std::size_t first, std::size_t n,
         nb::handle out, std::size_t out_width) {
        buffer_view dv(data, false), ov(offsets, false), u(out, true);
        if ((offset_bytes != 4 && offset_bytes != 8) ||
            ov.size() < (first + n + 1) * static_cast<std::size_t>(offset_bytes) ||
            u.size() < n * out_width * 4)
          throw std::invalid_argument("utf8_to_ucs4: buffer sizes do not match");
        std::int64_t longest;
        {
          nb::gil_scoped_release unlocked;
          longest = pardict::wire::utf8_max_length(dv.data(), dv.size(), ov.data(), offset_bytes,
                                                   first, n);
          if (longest >= 0 && static_cast<std::size_t>(longest) <= out_width)
            pardict::wire::utf8_to_ucs4(dv.data(), ov.data(), offset_bytes, first, n, out_width,
                                        reinterpret_cast<std::uint32_t*>(u.mutable_data()));
        }
        if (longest < 0) throw std::invalid_argument("utf8_to_ucs4: bad offsets");
        if (static_cast<std::size_t>(longest) > out_width)
          throw std::invalid_argument("utf8_to_ucs4: a string is longer than out_width");
      },
      "Decodes UTF-8 strings (Arrow layout) into a NumPy unicode array's buffer.");
}
