// Same-thread key changes during iteration (pardict_iter_next's PARDICT_ERR_MUTATED). Internal.
//
// CPython raises when a loop changes the dictionary it iterates. Here a dictionary is shared by
// many threads, and only the thread that steps an iterator can be said to change the dictionary
// "during" its own loop, so an iterator reports MUTATED when the thread that advances it has
// inserted or erased a key since the iterator was made (wherever the iterator was made).
//
// A key change must cost O(1) whatever the number of live iterators. So nothing walks the
// iterators: each dictionary has a clock that counts the iterators made on it, and one cell per
// thread (indexed by the thread's epoch slot, unique among live threads) holding the clock's value
// at that thread's last key change. An iterator made at clock value c asks the advancing thread's
// cell whether it holds a value >= c. While no iterator is alive a key change costs one relaxed
// load; while some are, a load of the clock and of the thread's own cell, and a store only when the
// clock has moved since the thread's last change (so threads rarely write the cache line they
// share with three other threads' cells).
//
// Exactness. A change made after the iterator (in happens-before order: on the same thread, or on
// a thread that received the iterator after it was made) reads a clock value >= c; a change made
// before it reads one < c. A cell remembers which thread wrote it (a serial number the epoch
// domain gives every thread), because a slot passes to a new thread when its owner exits: a new
// thread never inherits an old thread's changes. Threads without an epoch slot (more than
// epoch_domain::max_slots alive at once) share one cell under a lock, which remembers only the
// last of them to change a key: such a thread may miss (never falsely report) a change.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#include "pardict/detail/config.hpp"
#include "pardict/detail/epoch.hpp"

namespace pardict::capi {

class key_change_log {
 public:
  key_change_log() = default;
  key_change_log(const key_change_log&) = delete;
  key_change_log& operator=(const key_change_log&) = delete;
  ~key_change_log() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }

  // A new iterator: returns its stamp, the clock value key changes are compared with.
  std::uint64_t open() noexcept {
    live_.fetch_add(1, std::memory_order_relaxed);
    return clock_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  // The iterator made by open() is gone.
  void close() noexcept { live_.fetch_sub(1, std::memory_order_relaxed); }

  // The calling thread inserted or erased a key (after the operation, outside every engine lock).
  PARDICT_ALWAYS_INLINE void note() noexcept {
    if (live_.load(std::memory_order_relaxed) != 0) [[unlikely]]
      record();
  }

  // No iterator is alive: a key change need not be noted (for code that cannot call note()'s
  // record(), the numba fast path, which checks this before it changes anything).
  PARDICT_ALWAYS_INLINE bool quiet() const noexcept {
    return live_.load(std::memory_order_relaxed) == 0;
  }

  // Whether the calling thread inserted or erased a key since the iterator with this stamp was
  // made.
  bool changed_since(std::uint64_t stamp) noexcept {
    const std::uint64_t me = detail::epoch_domain::thread_serial();
    if (me == 0) return false;  // this thread never ran an operation
    const std::size_t i = detail::epoch_domain::thread_index();
    const cell* ch =
        i < max_slots ? chunks_[i / chunk_cells].load(std::memory_order_acquire) : nullptr;
    if (ch != nullptr) {
      const cell& c = ch[i % chunk_cells];
      if (c.thread.load(std::memory_order_relaxed) == me &&
          c.stamp.load(std::memory_order_relaxed) >= stamp)
        return true;
    }
    if (!shared_used_.load(std::memory_order_acquire)) return false;
    std::lock_guard<std::mutex> lk(shared_mutex_);
    return shared_thread_ == me && shared_stamp_ >= stamp;
  }

 private:
  static constexpr std::size_t max_slots = detail::epoch_domain::max_slots;
  static constexpr std::size_t chunk_cells = 64;  // cells are allocated 64 at a time
  static constexpr std::size_t n_chunks = (max_slots + chunk_cells - 1) / chunk_cells;

  // Written and read only by the thread that owns the slot (a slot's next owner takes it over
  // after the epoch domain's release/acquire hand-over); atomics only so that a dictionary's
  // cells can share cache lines without data races.
  struct cell {
    std::atomic<std::uint64_t> thread{0};
    std::atomic<std::uint64_t> stamp{0};
  };

  PARDICT_NOINLINE void record() noexcept {
    const std::uint64_t now = clock_.load(std::memory_order_relaxed);
    const std::uint64_t me = detail::epoch_domain::thread_serial();
    const std::size_t i = detail::epoch_domain::thread_index();
    cell* ch = i < max_slots ? chunk(i / chunk_cells) : nullptr;
    if (ch == nullptr) {  // no slot, or no memory for a chunk of cells: the shared cell
      std::lock_guard<std::mutex> lk(shared_mutex_);
      shared_thread_ = me;
      shared_stamp_ = now;
      shared_used_.store(true, std::memory_order_release);
      return;
    }
    cell& c = ch[i % chunk_cells];
    if (c.thread.load(std::memory_order_relaxed) != me) {
      c.thread.store(me, std::memory_order_relaxed);
    } else if (c.stamp.load(std::memory_order_relaxed) == now) {
      return;
    }
    c.stamp.store(now, std::memory_order_relaxed);
  }

  cell* chunk(std::size_t j) noexcept {
    cell* ch = chunks_[j].load(std::memory_order_acquire);
    if (ch != nullptr) return ch;
    cell* fresh = new (std::nothrow) cell[chunk_cells];
    if (fresh == nullptr) return nullptr;
    if (chunks_[j].compare_exchange_strong(ch, fresh, std::memory_order_acq_rel)) return fresh;
    delete[] fresh;
    return ch;
  }

  std::atomic<std::int64_t> live_{0};    // iterators alive
  std::atomic<std::uint64_t> clock_{0};  // iterators made
  std::atomic<cell*> chunks_[n_chunks] = {};
  std::atomic<bool> shared_used_{false};
  std::mutex shared_mutex_;
  std::uint64_t shared_thread_ = 0, shared_stamp_ = 0;
};

}  // namespace pardict::capi
