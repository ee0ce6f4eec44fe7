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
//   * one word, `state_`, holds the global epoch (bits 1..63) and the fork gate (bit 0, see
//     below), so that the load that checks an announcement also checks the gate;
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
// Guards nest (a visitor may call into a second map): only the outermost one announces, and a
// guard that finds its thread's slot already announcing an odd value knows it is nested. More than
// `max_slots` simultaneous threads fall back to a shared counter that blocks advancement while
// non-zero — correct, merely slower to reclaim.
//
// fork(): the child has one thread, a copy of the forking one, and every lock, slot and
// half-done operation of the others as they were. So a pthread_atfork prepare handler closes a
// gate that operations check right after announcing themselves (the same store-then-load
// handshake as the epoch scan: either the handler sees the announcement, or the entering thread
// sees the gate, steps out again and waits in the parent until the fork is over), and waits, up to
// fork_drain_timeout, for the operations already in flight to leave. With none in flight no group
// lock or resize mutex is held and every migration has been finished (all chunks of a migration
// are claimed and done before the operation that started it returns), so the child may use every
// map; its handler gives the dead threads' slots back and re-registers membarrier. If the wait
// times out (an operation blocked, e.g. a visitor waiting for a lock the forking thread holds),
// the child records that objects made before the fork may be half-changed: fork_spoiled(serial)
// is then true for every object_serial() handed out before the fork, and the C ABI refuses to
// touch those dictionaries (PARDICT_ERR_FORKED). The forking thread's own operation, if it forks
// from inside a visitor, is not waited for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>
#if defined(__linux__) || defined(__APPLE__)
#include <pthread.h>
#endif
#include <cstdint>
#include <mutex>
#include <new>
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
      pending_.push_back({p, deleter, epoch_of(state_.load(std::memory_order_seq_cst))});
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
  // an operation (after enter()), and after it until the thread exits; threads without a slot
  // share max_slots. Unique among live threads; a slot passes to a new thread only after its
  // owner has exited.
  static std::size_t thread_index() noexcept { return tls_.index; }
  // A number no other thread of the process has: 0 before the thread's first operation, then
  // fixed for the thread's life. With thread_index(), it tells a slot's owner from the slot's
  // earlier owners.
  static std::uint64_t thread_serial() noexcept { return tls_.serial; }

  // fork (see the comment at the top). An object (a C-ABI dictionary) takes a serial when it is
  // made; in a child whose fork found operations still in flight, fork_spoiled() is true for the
  // serials of objects made before the fork.
  std::uint64_t object_serial() noexcept {
    return objects_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  // Static, so that the C ABI's check on every call is one load of a constant-initialised global
  // (instance() would add its initialisation guard).
  static bool fork_spoiled(std::uint64_t serial) noexcept {
    return serial < spoiled_below_.load(std::memory_order_relaxed);
  }
  // How long a fork waits for operations in flight before giving up on the maps it copies.
  static constexpr std::chrono::milliseconds fork_drain_timeout{2000};

  struct alignas(64) slot {
    std::atomic<std::uint64_t> announced{0};
    std::atomic<bool> owned{false};
  };
  // A thread's state (one thread_local per thread, tls_).
  struct thread_state {
    slot* my_slot;
    // Guards that went through enter_slow and are still alive: nested guards of a thread with a
    // slot (whose outermost guard is told by its own announcement, see enter()), every guard of
    // a thread without one.
    unsigned depth;
    bool exiting;          // the slot was given back at thread exit; do not take another
    std::size_t index;     // my_slot's index, max_slots without a slot
    std::uint64_t serial;  // thread_serial()
  };
  // The calling thread's state, for code that cannot reach thread_locals and is handed it
  // instead (the numba fast path: capi/jit.hpp).
  static thread_state& this_thread() noexcept { return tls_; }
  // Whether the thread owning sl is inside an operation: a slot announces odd values exactly
  // while its thread is (see enter()).
  PARDICT_ALWAYS_INLINE static bool inside(const slot* sl) noexcept {
    return (sl->announced.load(std::memory_order_relaxed) & 1) != 0;
  }
  // Whether the calling thread is inside an operation, and whether it is counted in the shared
  // counter of threads without a slot (fork handlers, tests).
  static bool this_thread_inside() noexcept {
    const thread_state& me = tls_;
    return me.my_slot != nullptr ? inside(me.my_slot) : me.depth != 0;
  }
  static bool this_thread_overflowing() noexcept {
    return tls_.my_slot == nullptr && tls_.depth != 0;
  }
  // Threads without a slot that are inside an operation (tests).
  std::int64_t threads_without_slot_inside() const noexcept {
    return overflow_active_.load(std::memory_order_acquire);
  }
  static const std::atomic<std::uint64_t>* spoiled_below() noexcept { return &spoiled_below_; }

  // state_'s two fields, and the announcement made from it: `epoch << 1 | 1`, which is the word
  // with bit 0 set whatever the gate. An announcement is confirmed by a later load of state_ that
  // reads the same epoch with the gate open: the word one below it.
  static constexpr std::uint64_t gate_bit = 1;
  static constexpr std::uint64_t epoch_one = 2;
  static constexpr std::uint64_t epoch_of(std::uint64_t w) noexcept { return w >> 1; }
  static constexpr bool gate_closed(std::uint64_t w) noexcept { return (w & gate_bit) != 0; }
  static constexpr std::uint64_t announcement_of(std::uint64_t w) noexcept { return w | 1; }
  static constexpr bool confirms(std::uint64_t w, std::uint64_t a) noexcept { return w == a - 1; }

  // announce()'s first round, for enter() (try_enter_detached() has its own): true when one load
  // after the fence confirms both that the epoch has not moved and that the gate is open (seq_cst:
  // a plain load on x86; pairs with try_advance's and prepare_fork's heavy_fence).
  PARDICT_ALWAYS_INLINE bool announce_once(slot* sl) noexcept {
    const std::uint64_t a = announcement_of(state_.load(std::memory_order_relaxed));
    sl->announced.store(a, std::memory_order_relaxed);
    light_fence_here();
    return confirms(state_.load(std::memory_order_seq_cst), a);
  }

  // What code compiled apart from the library (the numba fast path) is handed of the calling
  // thread instead of reaching its thread_local: the thread's slot (nullptr: it has none, and
  // nothing is decided detached), the slot's index, which names the thread's cells in per-thread
  // arrays, and which light fence to use (asymmetric(), as it was when the caller asked: the
  // jitted caller compiles it in as a constant, and the library serves it only while the domain
  // still agrees). All are fixed for the thread's life once the slot is taken (a slot is given
  // back only at thread exit), so the jitted caller computes them once per loop (capi/jit.hpp).
  struct detached_thread {
    slot* sl;
    std::size_t index;
    bool asymmetric;
  };
  detached_thread detached(const thread_state& ts) const noexcept {
    return {ts.my_slot, ts.index, asymmetric_};
  }
  // Whether light_fence() is a compiler barrier (the heavy side runs membarrier), else a full
  // fence.
  bool asymmetric() const noexcept { return asymmetric_; }
  // light_fence() as `asymmetric` (a value asymmetric() had) says, for code that is handed it.
  PARDICT_ALWAYS_INLINE static void light_fence_as(bool asymmetric) noexcept {
    if (asymmetric) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
  }
  // The index of one of this domain's slots (pointer arithmetic only: the jitted caller hoists it).
  PARDICT_ALWAYS_INLINE std::size_t index_of(const slot* sl) const noexcept {
    return static_cast<std::size_t>(sl - slots_);
  }

  // enter() and leave() for a detached_thread's holder: only the common case, a thread that has
  // its slot and is not inside another operation, and the gate open. True when it entered (leave
  // with leave_detached(sl)); false when that is not the case, having entered nothing (the caller
  // then takes the ordinary path, which handles every case). Straight-line code, no retry loop
  // (announce() has one): numba's reference-count pruning, which runs on the jitted caller after
  // this is inlined there, gives up on code with loops.
  PARDICT_ALWAYS_INLINE bool try_enter_detached(const detached_thread& me) noexcept {
    slot* const sl = me.sl;
    if (sl == nullptr || inside(sl)) [[unlikely]]
      return false;
    // announce_once with the caller's fence, where the load after the fence confirms only that
    // the fork gate is open: the announcement may name an epoch older than V, the one that load
    // reads (the epoch moved in between), and that is safe without announce()'s retry. Take an
    // object retired in epoch E (freed once the epoch reaches E + 2):
    // * E < V: retire() stamps under mutex_, under which try_advance() makes every advance, so
    //   the object's unlink happened before the advance out of E, hence before V was written;
    //   the load that reads V (seq_cst, so acquire) makes the thread's later loads see the
    //   unlink: they cannot reach the object.
    // * E >= V: freeing it needs the advance out of E + 1, whose scan loads the epoch E + 1
    //   (after the unlink, as above), runs the heavy fence, then reads the slots: either it sees
    //   this announcement, older than E + 1, and refuses to advance (every active slot must
    //   announce the current epoch), or the thread's later loads see the unlink (the asymmetric
    //   pairing at the top).
    // The C path's announce() keeps the exact epoch; this saves the straight path two
    // instructions (numba's inlined lookups and stores).
    const std::uint64_t a = announcement_of(state_.load(std::memory_order_relaxed));
    sl->announced.store(a, std::memory_order_relaxed);
    light_fence_as(me.asymmetric);
    if (gate_closed(state_.load(std::memory_order_seq_cst))) [[unlikely]] {
      leave_detached(sl);
      return false;
    }
    return true;
  }
  PARDICT_ALWAYS_INLINE static void leave_detached(slot* sl) noexcept {
    sl->announced.store(0, std::memory_order_release);
  }

  // enter() and leave() run twice per map operation, so they are kept to a few instructions:
  // the thread's state is a trivially destructible thread_local (one %fs-relative access, no
  // initialisation guard); the domain is reached through a plain pointer (self_), not through
  // instance() and its initialisation guard; and the common case, the outermost guard of a
  // thread that has its slot, keeps no count: a slot announces odd values exactly while its
  // thread is inside an operation, so an odd announcement tells a nested guard. Everything else
  // (first use, nesting, no slot) is out of line. enter() returns the slot leave() clears, or
  // nullptr when leave_slow() has to undo what enter_slow() did.
  PARDICT_ALWAYS_INLINE static slot* enter() noexcept {
    thread_state& ts = tls_;
    slot* const sl = ts.my_slot;
    if (sl == nullptr || inside(sl)) [[unlikely]]
      return instance().enter_slow(ts);
    // ts.my_slot is set only by enter_slow, after instance() has set self_.
    // Anything but a confirmed first announcement is out of line.
    epoch_domain& d = *self_;
    if (!d.announce_once(sl)) [[unlikely]]
      d.announce_again(ts);
    return sl;
  }

  PARDICT_ALWAYS_INLINE static void leave(slot* sl) noexcept {
    if (sl != nullptr) [[likely]] {
      sl->announced.store(0, std::memory_order_release);
    } else {
      self_->leave_slow(tls_);
    }
  }

  // The two halves of the asymmetric fence (see the comment at the top): a light_fence on one
  // thread and a heavy_fence on another order each side's earlier stores before its later loads
  // as a pair of seq_cst fences would. Also used by the group lock (group.hpp).
  // Reads a copy of asymmetric_ that needs no instance(): false (a full fence) until the domain
  // has registered for membarrier, which is always correct on this side.
  PARDICT_ALWAYS_INLINE static void light_fence() noexcept {
    light_fence_as(asymmetric_copy_.load(std::memory_order_relaxed));
  }
  // light_fence() for code that is handed the domain.
  PARDICT_ALWAYS_INLINE void light_fence_here() const noexcept { light_fence_as(asymmetric_); }

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
  struct retired {
    void* ptr;
    void (*deleter)(void*);
    std::uint64_t epoch;
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
  static inline thread_local constinit thread_state tls_{nullptr, 0, false, max_slots, 0};

  epoch_domain() : asymmetric_(platform::process_fence_available()) {
    asymmetric_copy_.store(asymmetric_, std::memory_order_relaxed);
    self_ = this;
#if defined(__linux__) || defined(__APPLE__)
    pthread_atfork([] { instance().prepare_fork(); }, [] { instance().after_fork_parent(); },
                   [] { instance().after_fork_child(); });
#endif
  }

  // An operation that entered while a fork is being prepared steps out and waits for the parent's
  // side of the fork to finish (in the child this thread does not exist).
  PARDICT_NOINLINE void wait_at_gate(thread_state& ts) noexcept {
    for (;;) {
      if (ts.my_slot != nullptr) {
        ts.my_slot->announced.store(0, std::memory_order_release);
      } else {
        overflow_active_.fetch_sub(1, std::memory_order_release);
      }
      while (gate_closed(state_.load(std::memory_order_acquire))) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      if (ts.my_slot != nullptr) {
        announce(ts.my_slot);
      } else {
        overflow_active_.fetch_add(1, std::memory_order_seq_cst);
        light_fence();  // pairs with try_advance's heavy_fence, as announce() does
      }
      if (!gate_closed(state_.load(std::memory_order_seq_cst))) return;
    }
  }

  // pthread_atfork handlers. prepare_fork runs in the forking thread before fork(); the others
  // after it, in the parent and in the child.
  void prepare_fork() noexcept {
    state_.fetch_or(gate_bit, std::memory_order_seq_cst);
    heavy_fence();
    // Our own operation is not waited for.
    const slot* mine = this_thread_inside() ? tls_.my_slot : nullptr;
    const std::int64_t own_overflow = this_thread_overflowing() ? 1 : 0;
    const auto deadline = std::chrono::steady_clock::now() + fork_drain_timeout;
    bool drained = true;
    const std::size_t hw = high_water_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < hw && drained; ++i) {
      if (&slots_[i] == mine) continue;
      while ((slots_[i].announced.load(std::memory_order_seq_cst) & 1) != 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          drained = false;
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    }
    while (drained && overflow_active_.load(std::memory_order_seq_cst) != own_overflow) {
      if (std::chrono::steady_clock::now() > deadline) drained = false;
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    fork_drained_ = drained;
    // Outside operations only retire()'s callers and reclaim() take it, briefly.
    if (drained) mutex_.lock();
  }

  void after_fork_parent() noexcept {
    if (fork_drained_) mutex_.unlock();
    state_.fetch_and(~gate_bit, std::memory_order_release);
  }

  void after_fork_child() noexcept {
    // One thread now: give back the slots of the threads that did not come along.
    thread_state& me = tls_;
    for (std::size_t i = 0; i < max_slots; ++i) {
      if (&slots_[i] == me.my_slot) continue;
      slots_[i].announced.store(0, std::memory_order_relaxed);
      slots_[i].owned.store(false, std::memory_order_relaxed);
    }
    overflow_active_.store(this_thread_overflowing() ? 1 : 0, std::memory_order_relaxed);
    if (fork_drained_) {
      mutex_.unlock();
    } else {
      // mutex_ may be held by a thread that is gone, and the maps half-changed.
      new (&mutex_) std::mutex();
      spoiled_below_.store(objects_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    // The registration is the process's; make sure the child has one before relying on it.
    if (asymmetric_ && !platform::process_fence_available()) {
      asymmetric_ = false;
      asymmetric_copy_.store(false, std::memory_order_relaxed);
    }
    state_.fetch_and(~gate_bit, std::memory_order_release);
  }

  // Announce an epoch that is still current after the announcement is visible; otherwise a scan
  // that ran in between could already have let the epoch move two steps on.
  PARDICT_ALWAYS_INLINE void announce(slot* sl) noexcept {
    std::uint64_t w = state_.load(std::memory_order_relaxed);
    for (;;) {
      // Symmetric: a seq_cst fence, not a seq_cst store. The store alone would order the
      // announcement before the seq_cst load of state_ below but, in the C++ model, not before
      // the acquire loads of table pointers that follow; fence against fence (heavy_fence in
      // try_advance) is the pairing the model guarantees on every CPU.
      sl->announced.store(announcement_of(w), std::memory_order_relaxed);
      light_fence_here();
      const std::uint64_t now = state_.load(std::memory_order_seq_cst);
      if (epoch_of(now) == epoch_of(w)) break;
      w = now;
    }
  }

  // enter() after its announcement was not confirmed: the epoch moved, or the gate is closed.
  PARDICT_NOINLINE void announce_again(thread_state& ts) noexcept {
    announce(ts.my_slot);
    if (gate_closed(state_.load(std::memory_order_seq_cst))) wait_at_gate(ts);
  }

  // enter() for everything but the outermost guard of a thread with a slot: a nested guard
  // (counted in depth, nothing announced), a thread's first operation (takes a slot), a thread
  // that found no free slot or is exiting (counted in overflow_active_ by its outermost guard).
  PARDICT_NOINLINE slot* enter_slow(thread_state& ts) noexcept {
    if (ts.my_slot != nullptr || ts.depth != 0) {  // nested (a thread with a slot, or without)
      ++ts.depth;
      return nullptr;
    }
    if (ts.serial == 0) ts.serial = serials_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!ts.exiting) {
      static thread_local slot_releaser releaser;
      (void)&releaser;  // odr-use: constructs it (registering its destructor) on first use
      ts.my_slot = acquire_slot();
    }
    if (ts.my_slot != nullptr) {
      ts.index = static_cast<std::size_t>(ts.my_slot - slots_);
      announce(ts.my_slot);
    } else {
      ts.depth = 1;
      overflow_active_.fetch_add(1, std::memory_order_seq_cst);
      light_fence();  // pairs with try_advance's heavy_fence, as announce() does
    }
    if (gate_closed(state_.load(std::memory_order_seq_cst))) wait_at_gate(ts);
    return ts.my_slot;
  }

  // leave() for a guard whose enter() returned nullptr.
  PARDICT_NOINLINE void leave_slow(thread_state& ts) noexcept {
    if (--ts.depth == 0 && ts.my_slot == nullptr)
      overflow_active_.fetch_sub(1, std::memory_order_release);
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
    const std::uint64_t g = epoch_of(state_.load(std::memory_order_seq_cst));
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
    const std::uint64_t w = state_.load(std::memory_order_seq_cst);
    const std::uint64_t g = epoch_of(w);
    heavy_fence();  // before every load of the readers' state, the overflow count included
    if (overflow_active_.load(std::memory_order_seq_cst) != 0) return false;
    const std::size_t hw = high_water_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < hw; ++i) {
      const std::uint64_t a = slots_[i].announced.load(std::memory_order_seq_cst);
      if ((a & 1) != 0 && (a >> 1) != g) return false;
    }
    // Fails, harmlessly, if the gate moved meanwhile; keeps it as it is otherwise.
    std::uint64_t expected = w;
    return state_.compare_exchange_strong(expected, w + epoch_one, std::memory_order_seq_cst);
  }

  bool asymmetric_;  // changed only by the fork child handler, with no other thread left
  static inline constinit std::atomic<bool> asymmetric_copy_{false};  // for light_fence()
  static inline constinit epoch_domain* self_ = nullptr;              // &instance(), once made
  bool fork_drained_ = true;               // the last prepare_fork saw no operation in flight
  std::atomic<std::uint64_t> objects_{0};  // object_serial()s given out
  static inline constinit std::atomic<std::uint64_t> spoiled_below_{0};  // see fork_spoiled()
  // The global epoch (bits 1..63) and the gate (bit 0: a fork is being prepared, operations wait
  // before entering). Epoch 1 to start with.
  std::atomic<std::uint64_t> state_{epoch_one};
  std::atomic<std::size_t> high_water_{0};
  std::atomic<std::int64_t> overflow_active_{0};
  std::atomic<std::uint64_t> serials_{0};  // thread_serial()s given out
  std::mutex mutex_;
  std::vector<retired> pending_;
  slot slots_[max_slots];
};

// RAII: the calling thread is inside a map operation while this lives.
class epoch_guard {
 public:
  PARDICT_ALWAYS_INLINE epoch_guard() noexcept : slot_(epoch_domain::enter()) {}
  PARDICT_ALWAYS_INLINE ~epoch_guard() { epoch_domain::leave(slot_); }
  epoch_guard(const epoch_guard&) = delete;
  epoch_guard& operator=(const epoch_guard&) = delete;

 private:
  epoch_domain::slot* slot_;
};

}  // namespace pardict::detail
