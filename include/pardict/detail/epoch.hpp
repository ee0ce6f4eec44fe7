// Epoch-based reclamation for retired tables.
//
// A table that has been migrated away from may still be read by a thread that loaded its pointer
// just before the switch. It is freed only after every thread that was inside a map operation at
// the time of the switch has left it. The scheme is the classic three-epoch one:
//
//   * one process-wide domain with a global epoch counter and a fixed array of per-thread slots,
//     each on its own cache line, so entering an operation writes only the caller's own line;
//   * a thread takes a slot on its first operation (thread_local, released by the thread_local's
//     destructor at thread exit), so callers never register — numba, TBB and OpenMP workers just
//     call in;
//   * entering announces `epoch << 1 | 1`; the announcement must be ordered before every later
//     load of a table pointer (StoreLoad). A seq_cst store does that, but on x86 it is a full
//     fence, which also stops the CPU from overlapping the cache misses of consecutive lookups
//     on a DRAM-sized table. So where the OS has a process-wide barrier the fence is made
//     asymmetric: the reader's store is a plain store plus a compiler barrier, and the rare
//     epoch scan first runs platform::process_fence() (Linux membarrier PRIVATE_EXPEDITED,
//     Windows FlushProcessWriteBuffers; platform.hpp), which executes a full barrier on every
//     running thread of the process. Either the scan then sees the announcement, or the
//     reader's later loads see everything the scanner's thread did before (the unlink of the
//     retired table). Without it (macOS, a kernel or sandbox that refuses membarrier,
//     PARDICT_SYMMETRIC_FENCES=1), both sides use seq_cst fences;
//   * leaving stores 0 (release);
//   * retire() stamps the object with the global epoch E. The epoch advances only when every
//     active slot has announced the current epoch; an object stamped E is freed once the global
//     epoch reaches E + 2, at which point no thread can still hold a pointer loaded before the
//     unlink.
//
// Guards nest (a visitor may call into a second map): only the outermost one announces. More than
// `max_slots` simultaneous threads fall back to a shared counter that blocks advancement while
// non-zero — correct, merely slower to reclaim.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "pardict/detail/config.hpp"
#include "pardict/detail/platform.hpp"

namespace pardict::detail {

class epoch_domain {
 public:
  static constexpr std::size_t max_slots = 1024;

  // Inlined: every operation reaches it (the guard, and unlock through light_fence), and an
  // out-of-line call costs more than the initialisation check it wraps.
  PARDICT_ALWAYS_INLINE static epoch_domain& instance() noexcept {
    static epoch_domain domain;
    return domain;
  }

  // Defer `deleter(p)` until no thread can still hold `p`.
  void retire(void* p, void (*deleter)(void*)) {
    std::vector<retired> ready;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      pending_.push_back({p, deleter, global_.load(std::memory_order_seq_cst)});
      collect(ready);
    }
    for (auto& r : ready) r.deleter(r.ptr);
  }

  // Free whatever can be freed now (used by map destructors and tests).
  void reclaim() {
    std::vector<retired> ready;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      collect(ready);
    }
    for (auto& r : ready) r.deleter(r.ptr);
  }

  // A small per-thread index (the epoch slot), for spreading per-thread counters. Valid inside
  // an operation (after enter()); threads without a slot share max_slots.
  static std::size_t thread_index() noexcept { return tls_.index; }

  // enter() and leave() run twice per map operation, so they are kept to a few instructions:
  // the thread's state is a trivially destructible thread_local (one %fs-relative access, no
  // initialisation guard), and the rare cases (first use, slot overflow) are out of line.
  PARDICT_ALWAYS_INLINE void enter() noexcept {
    thread_state& ts = tls_;
    if (ts.depth++ != 0) [[unlikely]]  // a guard inside a visitor's guard
      return;
    slot* const sl = ts.my_slot;
    if (sl == nullptr) [[unlikely]] {
      enter_without_slot(ts);
      return;
    }
    announce(sl);
  }

  PARDICT_ALWAYS_INLINE void leave() noexcept {
    thread_state& ts = tls_;
    if (--ts.depth != 0) [[unlikely]]
      return;
    if (ts.my_slot != nullptr) [[likely]] {
      ts.my_slot->announced.store(0, std::memory_order_release);
    } else {
      overflow_active_.fetch_sub(1, std::memory_order_release);
    }
  }

  // The two halves of the asymmetric fence (see the comment at the top): a light_fence on one
  // thread and a heavy_fence on another order each side's earlier stores before its later loads
  // as a pair of seq_cst fences would. Also used by the group lock (group.hpp).
  PARDICT_ALWAYS_INLINE static void light_fence() noexcept {
    if (instance().asymmetric_) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }

  void heavy_fence() noexcept {
    if (asymmetric_) {
      platform::process_fence();
      return;
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  ~epoch_domain() {
    for (auto& r : pending_) r.deleter(r.ptr);
  }

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> announced{0};
    std::atomic<bool> owned{false};
  };
  struct retired {
    void* ptr;
    void (*deleter)(void*);
    std::uint64_t epoch;
  };
  struct thread_state {
    slot* my_slot;
    unsigned depth;
    bool exiting;       // the slot was given back at thread exit; do not take another
    std::size_t index;  // my_slot's index, max_slots without a slot
  };
  // Gives the thread's slot back at thread exit. A separate thread_local with a destructor, so
  // that only the cold path that takes a slot pays for registering it. Where thread_local is
  // emulated (GCC's emutls: mingw-w64), the thread's emulated variables may be torn down before
  // this runs, so tls_ reads as new and the slot is not given back: later threads then share
  // the overflow counter (correct, slower to reclaim). MSVC and ELF targets have native TLS.
  struct slot_releaser {
    ~slot_releaser() {
      thread_state& ts = tls_;
      if (ts.my_slot != nullptr) {
        ts.my_slot->announced.store(0, std::memory_order_release);
        ts.my_slot->owned.store(false, std::memory_order_release);
      }
      ts.my_slot = nullptr;
      ts.index = max_slots;
      ts.exiting = true;
    }
  };
  static inline thread_local constinit thread_state tls_{nullptr, 0, false, max_slots};

  epoch_domain() : asymmetric_(platform::process_fence_available()) {}

  // Announce an epoch that is still current after the announcement is visible; otherwise a scan
  // that ran in between could already have let the epoch move two steps on.
  PARDICT_ALWAYS_INLINE void announce(slot* sl) noexcept {
    std::uint64_t e = global_.load(std::memory_order_relaxed);
    for (;;) {
      // Symmetric: a seq_cst fence, not a seq_cst store. The store alone would order the
      // announcement before the seq_cst load of global_ below but, in the C++ model, not before
      // the acquire loads of table pointers that follow; fence against fence (heavy_fence in
      // try_advance) is the pairing the model guarantees on every CPU.
      sl->announced.store((e << 1) | 1, std::memory_order_relaxed);
      if (asymmetric_) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
      } else {
        std::atomic_thread_fence(std::memory_order_seq_cst);
      }
      const std::uint64_t now = global_.load(std::memory_order_seq_cst);
      if (now == e) break;
      e = now;
    }
  }

  // First operation of a thread, or a thread that found no free slot (or is exiting).
  PARDICT_NOINLINE void enter_without_slot(thread_state& ts) noexcept {
    if (!ts.exiting) {
      static thread_local slot_releaser releaser;
      (void)&releaser;  // odr-use: constructs it (registering its destructor) on first use
      ts.my_slot = acquire_slot();
    }
    if (ts.my_slot != nullptr) {
      ts.index = static_cast<std::size_t>(ts.my_slot - slots_);
      announce(ts.my_slot);
    } else {
      overflow_active_.fetch_add(1, std::memory_order_seq_cst);
      light_fence();  // pairs with try_advance's heavy_fence, as announce() does
    }
  }

  slot* acquire_slot() noexcept {
    for (std::size_t i = 0; i < max_slots; ++i) {
      bool expected = false;
      if (slots_[i].owned.load(std::memory_order_relaxed) ||
          !slots_[i].owned.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
        continue;
      }
      // Publish the slot to scanners before it is ever announced in.
      std::size_t hw = high_water_.load(std::memory_order_seq_cst);
      while (hw < i + 1 &&
             !high_water_.compare_exchange_weak(hw, i + 1, std::memory_order_seq_cst)) {
      }
      return &slots_[i];
    }
    return nullptr;
  }

  // Under mutex_: try to advance the epoch (up to twice) and move freeable objects to `ready`.
  void collect(std::vector<retired>& ready) {
    for (int round = 0; round < 2; ++round) {
      if (!try_advance()) break;
    }
    const std::uint64_t g = global_.load(std::memory_order_seq_cst);
    std::size_t keep = 0;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (pending_[i].epoch + 2 <= g) {
        ready.push_back(pending_[i]);
      } else {
        pending_[keep++] = pending_[i];
      }
    }
    pending_.resize(keep);
  }

  bool try_advance() noexcept {
    const std::uint64_t g = global_.load(std::memory_order_seq_cst);
    heavy_fence();  // before every load of the readers' state, the overflow count included
    if (overflow_active_.load(std::memory_order_seq_cst) != 0) return false;
    const std::size_t hw = high_water_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < hw; ++i) {
      const std::uint64_t a = slots_[i].announced.load(std::memory_order_seq_cst);
      if ((a & 1) != 0 && (a >> 1) != g) return false;
    }
    std::uint64_t expected = g;
    return global_.compare_exchange_strong(expected, g + 1, std::memory_order_seq_cst);
  }

  const bool asymmetric_;
  std::atomic<std::uint64_t> global_{1};
  std::atomic<std::size_t> high_water_{0};
  std::atomic<std::int64_t> overflow_active_{0};
  std::mutex mutex_;
  std::vector<retired> pending_;
  slot slots_[max_slots];
};

// RAII: the calling thread is inside a map operation while this lives.
class epoch_guard {
 public:
  PARDICT_ALWAYS_INLINE epoch_guard() noexcept : d_(epoch_domain::instance()) { d_.enter(); }
  PARDICT_ALWAYS_INLINE ~epoch_guard() { d_.leave(); }
  epoch_guard(const epoch_guard&) = delete;
  epoch_guard& operator=(const epoch_guard&) = delete;

 private:
  epoch_domain& d_;
};

}  // namespace pardict::detail
