// The engine behind pardict::concurrent_map.
//
// ================================================================================================
// Design
// ================================================================================================
//
// Goal: a hash map that any number of threads may insert into, look up, update and erase from
// while it grows, that never touches freed memory, never loses or duplicates an entry, and gets as
// close as it can to the memory system's limits on a small machine (2 cores, tables far larger than
// the cache). The choices below follow from three properties of such a machine: a table larger
// than the cache is bound by DRAM latency, so lines per operation and overlapped misses matter
// more than instructions; a cache line that two cores both write costs as much as a DRAM miss;
// and with more threads than cores, a waiting thread must sleep, or it steals the quantum of the
// thread it waits for. The measurements behind these statements and the choices below are in
// bench/README.md ("Measurements behind the design").
//
// Layout
// ------
// The key space is split over S = 64 shards by the top 6 bits of the 64-bit hash. Each shard owns
// one open-addressing table (`table`), reached through an atomic pointer. A table is an array of
// groups of 8 slots:
//
//     metadata array, 16 B per group           slot array, 8 slots per group
//     +--------+----------+----------------+   +--------------------------------------------+
//     | seq 4B | overflow | tags: 8 x 1 B  |   | pair<const K, V> x 8, stored inline          |
//     +--------+----------+----------------+   +--------------------------------------------+
//
// The metadata is 2 bytes per slot, so a lookup of an absent key usually touches only the
// metadata line, and the metadata of even a 10M-entry table mostly lives in L3. A key's position
// on the table's circle is its low 32 hash bits times the table's seed, an odd 32-bit number,
// mod 2^32; the group index is `(position * n_groups) >> 32` (any group count, so reserve() sizes
// tables exactly and growth need not waste memory on powers of two; in-order tables, below, take
// it from the low 32 bits without the seed); the tag is hash bits 32..39
// (0 means empty); the overflow class is bits 40..42. Probing is linear over groups. There are no
// tombstones: when an insert passes a full group it sets that group's overflow bit for the key's
// class, and a lookup stops at the first group whose bit for its class is clear (the
// boost.unordered scheme). Erased slots are reused at once; overflow bits are cleared only by
// building a new table, which the budget below triggers when erasures from overflowed groups
// accumulate.
//
// Why the seed: iteration walks the groups in order, so keys leave a map sorted by position. A map
// that used the same positions and grew while fed in that order would get, while small, keys from
// the first stretch of the circle only, which all land in its first groups: an ever longer run
// that every insert walks, quadratic in time (merging per-partition dicts, copying one into a
// fresh one, refilling a cleared map from its old items). An odd multiplier is a bijection mod
// 2^32, and under two unrelated multipliers one map's sorted order is a scrambled order for the
// other. So every table that starts empty (a shard's first table, the one clear() installs) draws
// a fresh seed from a process-wide counter (through a bijective mix, started from a per-process
// value so that maps of two processes differ too), and a migration's new table keeps its old
// table's seed: positions do not change with the table size, so a chunk of old groups still moves
// to consecutive new groups. The cost is one 32-bit multiply per operation, and iteration order
// differs between runs.
//
// In-order placement
// ------------------
// A table larger than the cache pays a memory round trip for every key it places at random.
// Keys that arrive in order (row numbers, counters, `d[float(i)] = v` in a loop) need not pay it:
// CPython's dict, numba's typed.Dict and std::unordered_map give consecutive keys consecutive
// slots, so a serial fill writes memory front to back, where pardict scattered every key (the
// seed program's fill at 10M keys on one thread: typed.Dict 1.1x pardict's speed). So for keys
// that are small integers (|k| < 2^37, of an integer or floating type, under pardict::hash or a
// hasher that declares places_in_order) the engine's hash is in_order_hash (hash.hpp): shard
// k mod 64, position k / 64 in the low 32 bits. A shard's first table is then an in-order table,
// marked by an even seed (every multiplier seed is odd): its home group is (position / 8) mod
// ngroups (a fastmod, two multiplies), so keys 64 apart share a shard and each group holds 8
// consecutive ones of them. Keys in order then fill each shard front to back, one element per
// slot and none outside its home group; every other key (large, fractional, strings) carries
// mixed low bits and lands anywhere, as in a seeded table. Growth keeps the in-order seed; the
// positions of keys below the table's size do not change with it, so a migration still moves
// chunks of old groups to consecutive new ones.
//
// The cost is robustness, which the fallback restores. Patterned keys (a stride that shares
// factors with the group count, several threads whose ranges wrap onto each other while a table
// is small, keys made to collide) can pile up in a stretch of groups. An insert into an in-order
// table that walks past more than in_order_max_walk (8) full groups moves its shard, at once, to
// a seeded table of the same size (migration::remix): positions become multiplier positions,
// which spread any such pattern as they spread any other hash (a bijection of the 32-bit
// position, then scaled). Inserts never walk farther than that in an in-order table without
// starting the fallback, so no input makes inserts quadratic, and a seeded shard stays seeded
// until clear(). A table that grows decides again: if fewer than half of 64 sampled elements are
// small integers (random ids in an integer map), the new table is seeded, whose migration moves
// chunks of old groups to consecutive new ones where an in-order table would scatter them (a
// random-key fill from empty was 6-10% slower while its tables stayed in order).
// Keys from another map's iteration order do not pile up in an in-order table:
// positions are taken mod the table's size, not scaled to it, so the first keys of a sorted
// stretch spread over a small table instead of crowding its first groups ("Why the seed").
//
// Lock and memory-ordering protocol
// ---------------------------------
// `seq` is a lock + seqlock word: bit 0 locked, bit 1 unused, bit 2 moved
// (migrated to the next table), bits 3.. a version that every unlock increments. While a group is
// locked only its holder writes `seq`.
//
// * Writers (insert, assign, erase, visit) lock the key's home group for the whole operation, so
//   two inserts of one key are serialised there and can never both succeed. Other groups on the
//   probe path are locked one at a time with a bounded spin; if that fails the writer releases
//   everything and starts over, so no thread ever waits while holding a lock it could be asked
//   for (no deadlock, even when a probe wraps around a small table). Locks are acquired with an
//   acquire CAS and released with a release store that bumps the version: a plain store, because
//   a locked instruction (an exchange) makes the core wait until the element just written has
//   reached the cache, often a line still coming from DRAM, where a store lets the next
//   operation's misses start. For the same reason an insert's count goes to a cell its thread
//   owns with a plain store, so that the home group's CAS is an insert's only locked instruction.
// * The instruction count between two operations' cache misses matters more than the locked
//   instructions. A DRAM-sized table costs one memory round trip per operation, and the core
//   overlaps the round trips of consecutive operations only while the instructions between them
//   fit in its reorder window; past that, each operation pays its miss alone. The general write
//   path (locate, upsert_general) is too long for that, so operations first try the home-group
//   fast paths (read_home, upsert_home): straight-line code for the case the home group decides,
//   which hands every other case to the general path before changing anything (a small share of
//   the inserts that fill a presized table to its maximum load fall through). The batch
//   operations take the same fast paths after prefetching ahead. The fast path is one inlined
//   body: unlock, the insert count and the epoch lookup are forced inline (PARDICT_ALWAYS_INLINE,
//   in NDEBUG builds) and everything rare (the general path, growth, waking sleepers) is out of
//   line, because GCC's heuristics otherwise keep calls there.
// * Readers of trivially copyable keys and values write no shared memory: load seq (acquire),
//   copy tags and candidate slots with relaxed atomic word loads, fence(acquire), reload seq; equal
//   and unlocked means the copy is a consistent snapshot. Writers therefore store into slots with
//   relaxed atomic word stores too, and `visit` runs the caller's function on a private copy that
//   is stored back as a whole: a visitor that throws leaves the element unchanged. Hot keys do not
//   make lookups ping-pong their cache line.
//   read_detached is this read for code compiled apart from the library (the numba fast path:
//   LLVM bitcode inlined into jitted loops, capi/jit.hpp), which cannot reach thread_locals: the
//   thread's epoch state is passed in, and only the home-group case is decided, in straight-line
//   code (read_home_straight); anything else is left to the ordinary path. upsert_detached is
//   the same for a store (d[k] = v, upsert_home_straight): an insert whose charge exhausts the
//   table's budget is reported to the caller, which starts the growth through the library
//   (grow_after_detached_insert), and its unlock wakes sleepers through a function the compiled
//   library hands it. A lookup whose key's probe passed a full home group also looks in the
//   next group, once.
// * Other key/value types (std::string, move-only, ...) cannot be copied while being written, so
//   their readers lock each group they inspect.
// * Waiting: spin with pause, then yield, then count itself as a sleeper in the group's
//   `overflow` word and futex-wait on seq (std::atomic::wait); unlock reads the count after its
//   store and calls notify_all only when it is not zero. That store-then-load against the
//   sleeper's add-then-load needs a StoreLoad fence on both sides; it is asymmetric (a compiler
//   barrier in unlock, membarrier() in the rare sleeper), as in epoch.hpp (see group.hpp).
//
// Growth
// ------
// Each table has a budget: its capacity times the maximum load (0.8) minus the elements it holds.
// Inserts charge the budget through per-thread counters that are flushed in batches (a shared
// counter bumped by every insert would move one cache line between cores per insert). When the
// budget runs out, or an insert finds no free slot at all, the shard migrates to a new table of
// twice the live size:
//
// 1. Under the shard's mutex (taken only to start a migration, never by ordinary operations),
//    one thread allocates the new table and publishes it in `old->next`.
// 2. The old table is cut into chunks of 128 groups. Every thread that needs the shard — the
//    starter, and any writer that meets a moved group — claims chunks with fetch_add and migrates
//    them: lock the old group, copy its elements into the new table (locking the target groups
//    there, since several migrators write it), unlock it with the moved bit set. Consecutive old
//    groups land on consecutive new ones (one seed, a monotonic index), so a migrator keeps its
//    last target group locked, with the group's tags word in a register, across elements and
//    stores the word once, just before that unlock.
// 3. The thread that completes the last chunk installs the new table in the shard, wakes the
//    threads sleeping on the old table's `done` word, and retires the old table.
//
// Writers never modify the new table until it is installed, and never add to a table whose
// `next` is set: one that meets a moved group, cannot lock its home group because it moved, or
// would insert into a migrating table, helps, sleeps until the migration is done, and retries. So
// the elements to move are at most those present when `next` was published, and a new table at
// least as large as the old one always has room. A shrinking rehash first publishes a "freezing"
// marker, counts the old table exactly under each group's lock, and sizes the new table from that.
//
// Readers never wait for a migration: they search the old table, skipping moved groups, and if they
// met any moved group and did not find the key, they search `next` the same way. A key is copied
// into the new table before its old group is marked moved, and nothing else writes the new table
// meanwhile, so a key present throughout a lookup is always found. Migrating one shard at a time
// bounds the transient memory of growth to about 1/64 of the map.
//
// Reclamation
// -----------
// Retired tables go to the epoch-based reclamation domain of epoch.hpp: every operation runs
// inside an epoch guard (a store to the calling thread's own cache line on entry and on exit; the
// StoreLoad fence it needs is made asymmetric with membarrier, so a lookup executes no fence
// instruction at all), and a table is freed only after every thread that could have loaded its
// pointer has left. Element objects are destroyed as they are moved out, so retired tables hold
// only raw memory.
//
// fork() rides on the same entry point. A pthread_atfork prepare handler closes a gate that an
// operation checks right after announcing itself, then waits (bounded) until no operation is in
// flight. That state is consistent for every map at once: group locks and resize mutexes are
// held only inside operations, and a migration's chunks are all claimed and moved before the
// operation that started it returns, so no table is half-migrated. The child then frees the
// slots of the threads that did not come along. Why not reset locks in the child instead: a
// group lock held by a dead thread guards a half-written group, which no reset can repair. When
// the wait times out, the epoch domain records that objects made before the fork are suspect and
// the C ABI refuses to touch those dictionaries in the child (epoch.hpp, "fork").
//
// Loading
// -------
// A map that no other thread can reach yet (unpickling, pardict_load_many) can be built shard by
// shard with load_shard: a private table sized for the shard's rows is filled without locks,
// version bumps, per-thread charges or overflow-bit RMWs, then installed with one release store
// (and the count added to the loading thread's cell). The first group with a free slot ends each
// walk, since nothing is erased during the load. The input that makes it fast is another map's
// iteration: it comes grouped by shard, and in position order within a shard, so with the
// exporter's seed (shard_geometry) the private table is written front to back, at about the
// speed of a copy, where inserting the same rows into a table with its own seed hits a random
// place in it for every row. Sharing a seed with the exporter is harmless: the quadratic case of
// "Why the seed" needs a small table that grows while fed in another table's order, and a loaded
// table is built at its full size; both maps keep it through later growth, and a map that
// starts empty again (clear) draws a fresh one. A shard that already holds an element, or a row
// of another shard, makes load_shard return having changed nothing (the private table is
// destroyed), and the caller uses the ordinary insert.
//
// Counting
// --------
// size() sums per-thread cells (one cache line per cell, 32 cells, threads mapped to cells by
// their epoch slot). Each cell holds the net insert count and per-shard pending budget charges;
// a charge is flushed to the table's budget every few inserts. size() is exact whenever no
// operation is in flight.
//
// Memory ordering on weakly-ordered CPUs (arm64)
// ----------------------------------------------
// x86 keeps stores in order and loads in order (TSO); arm64 and POWER reorder both, so every
// ordering the protocol needs must come from the C++ orderings themselves. The aarch64 stage of
// scripts/test.sh runs the suites under qemu-user, which executes the guest's threads on x86
// cores and so cannot show a reordering: what follows is the review behind "no x86-only
// assumption", access by access.
// * Optimistic read (read_optimistic, the batch reader): seq (acquire), tags and slot words
//   (relaxed), fence(acquire), seq (relaxed) compared. The acquire load keeps the copy after the
//   first seq load; the acquire fence keeps it before the second. The writer side needs its
//   stores to the slots and tags ordered after the store that set the lock bit. The lock CAS is
//   acquire, which orders later accesses after its load, not after its store: on arm64 a later
//   plain store may become visible first, and a reader could copy half-written bytes and read
//   the old seq twice. x86 hid this. Fixed: fence_after_lock() (group.hpp), a release fence after
//   every successful lock CAS (lock_group, upsert_home). Paired with the reader's acquire fence,
//   any holder store the copy saw makes the second seq load see the lock bit. It is a compiler
//   barrier on x86 and one dmb on arm64, per write.
// * Unlock: seq.store(release) publishes the slot and tag stores to a reader or locker whose
//   acquire load or CAS reads that seq (or a later one: the versions form one modification order).
// * Sleeping on a group (wait_unlocked / unlock_group) and epoch entry (epoch.hpp) are both
//   "store, then load the other side's variable" on each side, which no acquire/release pairing
//   orders (StoreLoad). Each side has a fence: asymmetric, a compiler barrier on the hot side and
//   a process-wide barrier on the rare side (membarrier on Linux, which runs a full barrier on
//   every CPU running the process, arm64 included; FlushProcessWriteBuffers on Windows), or
//   symmetric, seq_cst fences on both sides (macOS, no membarrier, PARDICT_SYMMETRIC_FENCES=1).
//   Two seq_cst fences are totally ordered, so either the scanner/sleeper sees the announcement/
//   unlock, or the reader/unlocker sees the unlink/sleeper count. The symmetric announcement was
//   a seq_cst store; in the C++ model a seq_cst store orders nothing before a later acquire load
//   of another variable (arm64's stlr happens to, via the ldar of the epoch word after it). It is
//   now a relaxed store plus a seq_cst fence, and the overflow path (more than max_slots threads)
//   also fences after its increment, with try_advance's heavy_fence moved before its overflow
//   check.
// * Leaving an epoch: announced.store(0, release) orders the operation's table reads before it;
//   the scanner's loads that see 0 (seq_cst) acquire them, so freeing comes after them.
// * Migration: copies into the new table are made under its group locks; the old group is then
//   unlocked with the moved bit (release). A reader that sees moved (acquire) and loads `next`
//   (acquire; published with a release store) sees the copies. chunks_done is an acq_rel RMW, so
//   the thread completing the last chunk sees every migrator's writes and its relaxed
//   moved_elements additions (sequenced before their fetch_add) before installing the table with
//   cur.store(release), which the acquire loads of `cur` pair with; `done` is release/acquire.
// * Counters (live cells, pending budget charges, table budget) are relaxed: they decide when to
//   grow and what size() reports while operations run, never which memory is safe to touch. An
//   insert that finds no free slot migrates regardless of the budget.
// * Spinning uses `yield` on arm64 (PARDICT_PAUSE); sleeping uses futex / WaitOnAddress /
//   libc++'s __ulock, all of which re-check the value in the kernel.
//
// Invariants
// ----------
// * A key occurs at most once in the union of a shard's current table and the groups of its
//   migrating table that are not yet moved.
// * Every element stored in a group other than its home group is reachable: each group between
//   its home and its slot has the overflow bit of its class set.
// * A slot's bytes change only while its group is locked, and every unlock bumps the version.
// * A moved group is never written again; a table is freed only through the epoch domain.
// ================================================================================================
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "pardict/detail/config.hpp"
#include "pardict/detail/epoch.hpp"
#include "pardict/detail/group.hpp"
#include "pardict/hash.hpp"

#ifndef PARDICT_REENTRANCY_CHECK
#ifdef NDEBUG
#define PARDICT_REENTRANCY_CHECK 0
#else
#define PARDICT_REENTRANCY_CHECK 1
#endif
#endif

namespace pardict {

// Thrown (in builds with PARDICT_REENTRANCY_CHECK) when a visitor calls back into the map that is
// visiting it, which would otherwise deadlock on the element's group lock.
struct reentrancy_error : std::logic_error {
  using std::logic_error::logic_error;
};

// Where the elements sit relative to their home groups (concurrent_map::probe_statistics): a
// lookup of an element visits its home group and every group up to the element's, so
// total_groups / elements is the mean number of groups a successful lookup reads, and
// max_groups the longest such walk.
struct probe_stats {
  std::size_t elements = 0;
  std::size_t max_groups = 0;
  std::size_t total_groups = 0;
};

namespace detail {

// The "found" callback of operations that leave an existing element alone (insert, try_emplace).
struct no_visit {
  template <class T>
  void operator()(T&&) const noexcept {}
};

// How a visitor may use the element it is given, as a type (as boost.unordered's group_shared /
// group_exclusive), so that each entry point compiles only its own path:
//   mutating_tag  it gets value_type& and may change the mapped value; an element of plain bytes
//                 is visited as a private copy that is stored back whole afterwards;
//   const_tag     it gets const value_type& and nothing is stored back.
struct mutating_tag {};
struct const_tag {};

// What a write found. `undecided` only comes from the home-group fast path (upsert_home): the
// general path must look.
enum class write_outcome { undecided = -1, found, inserted, absent };

// Passed to the write path in place of `make`: an absent key stays absent (a visit, not an
// upsert), and no code that constructs an element is instantiated.
struct visit_only {};

#if PARDICT_REENTRANCY_CHECK
// The maps whose callbacks the current thread is running, as a stack of scopes linked through the
// caller's own frames. Every operation checks it on entry, so it must cost next to nothing there:
// the thread_local is a plain pointer (no TLS init call on access, unlike a std::vector), an empty
// stack is one load and a predicted branch, and pushing allocates nothing. (A thread_local
// std::vector here made every lookup measurably slower.)
struct visiting_scope;
inline thread_local const visiting_scope* visiting_top = nullptr;
struct visiting_scope {
  explicit visiting_scope(const void* m) noexcept : map(m), prev(visiting_top) {
    visiting_top = this;
  }
  ~visiting_scope() { visiting_top = prev; }
  visiting_scope(const visiting_scope&) = delete;
  visiting_scope& operator=(const visiting_scope&) = delete;
  const void* const map;
  const visiting_scope* const prev;
};
PARDICT_NOINLINE inline void check_visiting_stack(const void* m) {
  for (const visiting_scope* v = visiting_top; v != nullptr; v = v->prev) {
    if (v->map == m)
      throw reentrancy_error("pardict: a visitor called back into the map it visits");
  }
}
// Inlined into every operation: the common case, no visitor running, is a load and a branch.
PARDICT_ALWAYS_INLINE inline void check_not_reentering(const void* m) {
  if (visiting_top != nullptr) [[unlikely]]
    check_visiting_stack(m);
}
#else
struct visiting_scope {
  explicit visiting_scope(const void*) noexcept {}
};
inline void check_not_reentering(const void*) noexcept {}
#endif

// A callback that calls no map function (a copy in or out, a reference count): running it needs
// no entry on the visiting stack, whose push and pop (two thread_local accesses) were a tenth of
// a C-ABI lookup's instructions. The C ABI marks its own callbacks so; a caller's callback
// is never marked, and a marked one that did call back would deadlock instead of throwing.
template <class F>
struct leaf_fn {
  F f;
  template <class... A>
  PARDICT_ALWAYS_INLINE decltype(auto) operator()(A&&... a) const {
    return f(std::forward<A>(a)...);
  }
};
template <class F>
leaf_fn(F) -> leaf_fn<F>;
template <class F>
inline constexpr bool is_leaf_fn = false;
template <class F>
inline constexpr bool is_leaf_fn<leaf_fn<F>> = true;
struct no_visiting_scope {
  explicit no_visiting_scope(const void*) noexcept {}
};
// The scope to open around a call of F.
template <class F>
using visiting_scope_for =
    std::conditional_t<is_leaf_fn<std::remove_cvref_t<F>>, no_visiting_scope, visiting_scope>;

// The seed of a table that starts empty (see "Layout" in the essay): odd, and different for every
// call in the process — a counter through a bijective mix, starting from a per-process value so
// that two processes' maps do not share their sequence of seeds.
inline std::uint32_t fresh_table_seed() noexcept {
  static std::atomic<std::uint64_t> counter{mix64(
      static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&counter)) ^
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()))};
  const std::uint64_t c = counter.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
  return static_cast<std::uint32_t>(mix64(c) >> 32) | 1u;
}

// The largest share of a table's slots that may hold elements: a table grows when its elements
// would fill more (see "Growth" above).
inline constexpr double max_load = 0.8;

template <class K, class V, class Hash, class KeyEqual, class Allocator>
class concurrent_table {
 public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<const K, V>;
  using size_type = std::size_t;

  // Readers copy instead of locking when both halves are plain bytes.
  static constexpr bool optimistic =
      std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>;

  static constexpr unsigned shard_bits = 6;
  static constexpr std::size_t shard_count = std::size_t{1} << shard_bits;
  static constexpr std::size_t min_groups = 2;
  static constexpr std::size_t chunk_groups = 128;
  static_assert(shard_bits == in_order_shard_bits, "in_order_hash puts k mod 64 in the shard bits");
  // The seed of a table that places in order ("In-order placement" in the essay): even, where
  // every multiplier seed is odd, and not 0, which load_shard takes as "no seed".
  static constexpr std::uint32_t in_order_seed = 2;
  // An insert into an in-order table that walks past this many full groups moves the shard to
  // a seeded table: the walks that patterned keys make are long, those of keys in order short.
  static constexpr std::size_t in_order_max_walk = 8;
  using engine_hash_t = engine_hash<K, Hash>;
  // Counter cells: one per thread for the first owned_cells epoch slots, written by that thread
  // alone with plain loads and stores (a locked add per insert would wait for the insert's slot
  // store to drain), and one shared cell, updated atomically, for every other thread.
  static constexpr std::size_t owned_cells = 32;
  static constexpr std::size_t cell_count = owned_cells + 1;

  explicit concurrent_table(std::size_t n, const Hash& h, const KeyEqual& eq, const Allocator& a)
      : hash_(h),
        eq_(eq),
        alloc_(a),
        shards_(std::make_unique<shard[]>(shard_count)),
        cells_(std::make_unique<cell[]>(cell_count)) {
    if (n > 0) reserve(n);
  }

  concurrent_table(concurrent_table&& o) noexcept
      : hash_(o.hash_),
        eq_(o.eq_),
        alloc_(o.alloc_),
        shards_(std::move(o.shards_)),
        cells_(std::move(o.cells_)) {
    o.shards_ = std::make_unique<shard[]>(shard_count);
    o.cells_ = std::make_unique<cell[]>(cell_count);
  }

  ~concurrent_table() { destroy_all(); }

  void swap(concurrent_table& o) noexcept {
    using std::swap;
    swap(hash_, o.hash_);
    swap(eq_, o.eq_);
    swap(alloc_, o.alloc_);
    swap(shards_, o.shards_);
    swap(cells_, o.cells_);
  }

  const Hash& hash_function() const noexcept { return hash_; }
  const KeyEqual& key_eq() const noexcept { return eq_; }
  const Allocator& get_allocator() const noexcept { return alloc_; }

  // ---------------------------------------------------------------------------------------------
  // Lookups
  // ---------------------------------------------------------------------------------------------

  // Calls f(const value_type&) on the element with key k (a validated copy for optimistic types,
  // the element itself under its group lock otherwise). Returns whether it was found.
  // The home-group fast path is inlined into the caller and the rest is a call, as for writes
  // (see the essay): as a call, the whole lookup paid a prologue, spills and an epilogue on
  // every operation.
  template <class F>
  PARDICT_ALWAYS_INLINE bool read(const K& k, F&& f) const {
    check_not_reentering(this);
    epoch_guard guard;
    const std::uint64_t h = hash_of(k);
    if constexpr (optimistic) {
      if (!locked_reads_.load(std::memory_order_relaxed)) {
        const table* t = shard_of(h).cur.load(std::memory_order_acquire);
        if (t == nullptr) return false;
        const std::size_t g = home_of(h, t);
        prefetch_slots(t, g, h, false);
        const int r = read_home(t, g, k, h, f);
        if (r >= 0) return r == 1;
      }
    }
    return read_general(k, h, f);
  }

  // read() for code compiled apart from this process's copy of the engine, which cannot reach
  // its thread_locals (the numba fast path, capi/jit.hpp): the thread's epoch state is passed in,
  // f must be a leaf_fn (no visiting stack either), and only the home-group case is decided.
  // 1 found (f called on a validated copy), 0 absent, -1 not decided here, having entered and
  // changed nothing: the caller takes the ordinary path.
  // KnownUnlocked: the caller knows that this map's readers do not lock (locked_reads() is false
  // for its whole life, which the C ABI's dictionaries whose keys and values hold no reference
  // are), so the flag is not tested.
  template <bool KnownUnlocked = false, class F>
  PARDICT_ALWAYS_INLINE int read_detached(epoch_domain& domain,
                                          const epoch_domain::detached_thread& me, const K& k,
                                          F&& f) const {
    static_assert(is_leaf_fn<std::remove_cvref_t<F>>, "read_detached runs leaf callbacks only");
    if constexpr (!optimistic) {
      return -1;
    } else {
      if constexpr (!KnownUnlocked) {
        if (locked_reads_.load(std::memory_order_relaxed)) return -1;
      }
      if (!domain.try_enter_detached(me)) return -1;
      const std::uint64_t h = hash_of(k);
      const table* t = shard_of(h).cur.load(std::memory_order_acquire);
      int r = 0;
      if (t != nullptr) {
        const std::size_t g = home_of(h, t);
        // The group's slots are found once, before the group's acquire load of its version,
        // after which LLVM would have to load the table's slots pointer again.
        const value_type* const slots = t->slot(g, 0);
        prefetch_slots(slots, h, false);
        r = read_home_straight(t, g, slots, k, h, f);
      }
      epoch_domain::leave_detached(me.sl);
      return r;
    }
  }

  // upsert() for the same callers (the numba fast path's d[k] = v): the thread's epoch state is
  // passed in, with `wake`, which wakes a group's sleepers for code that cannot reach libstdc++'s
  // futex tables; make and on_found must be leaf_fns; only the home-group case is decided
  // (upsert_home_straight). 1 inserted, 0 found (on_found ran on the element), -1 not decided
  // here, having changed nothing: the caller takes the ordinary path; 2 inserted, and the insert
  // spent the last of its table's budget: the caller then calls grow_after_detached_insert(k)
  // (growing needs this process's engine), as an ordinary insert would have grown the table.
  template <class Make, class OnFound>
  PARDICT_ALWAYS_INLINE int upsert_detached(epoch_domain& domain,
                                            const epoch_domain::detached_thread& me,
                                            void (*wake)(group_meta&) noexcept, const K& k,
                                            Make& make, OnFound& on_found) {
    static_assert(is_leaf_fn<Make> && is_leaf_fn<OnFound>,
                  "upsert_detached runs leaf callbacks only");
    if constexpr (!optimistic) {
      return -1;
    } else {
      if (!domain.try_enter_detached(me)) return -1;
      const int r = upsert_home_straight(me, wake, k, hash_of(k), make, on_found);
      epoch_domain::leave_detached(me.sl);
      return r;
    }
  }
  // Starts the growth of k's table after upsert_detached returned 2 (nothing to do if another
  // thread has grown it, or erasures have refilled its budget, since).
  void grow_after_detached_insert(const K& k) {
    check_not_reentering(this);
    epoch_guard guard;
    shard& s = shard_of(hash_of(k));
    table* t = s.cur.load(std::memory_order_acquire);
    if (t != nullptr && t->budget.load(std::memory_order_relaxed) < 0) grow_after_insert(s, t);
  }

  // Bulk lookup. A software pipeline over the keys: key i is hashed and its metadata prefetched,
  // key i - D has its metadata read and its candidate slot prefetched, and key i - 2D is looked
  // up with the ordinary path, which by then finds both lines in cache. D keys of work between
  // the stages hide a DRAM round trip each, and the misses of up to 2D keys are in flight at once
  // (a fixed block would instead stall at the start of every block). D = 8 keeps the number of
  // outstanding prefetches under what the core's miss buffers hold. The last stage skips the
  // single-key path's speculative prefetch of half the home group's slots: the second stage has
  // already prefetched the slot whose tag matched, and for an absent key the speculative line is
  // pure waste of the memory bandwidth the pipeline is bound by (10M keys, one thread, absent
  // keys: 21.4-22.1 -> 26.8-28.6 Mops; present keys unchanged, ~17.5).
  //
  template <class F>
  std::size_t read_many(const K* keys, std::size_t n, F&& on_found) const {
    check_not_reentering(this);
    epoch_guard guard;
    std::size_t found = 0;
    if constexpr (optimistic) {
      if (!locked_reads_.load(std::memory_order_relaxed)) {
        read_pipeline(n, keys,
                      [&](std::size_t idx, const table* t, std::size_t g, std::uint64_t h) {
                        auto f = [&](const value_type& x) { on_found(idx, x); };
                        const int r = t != nullptr ? read_home(t, g, keys[idx], h, f) : 0;
                        if (r > 0 || (r < 0 && read_general(keys[idx], h, f))) ++found;
                      });
        return found;
      }
    }
    pipeline(n, keys, false, [&](std::size_t idx, std::uint64_t h) {
      if (read_general(keys[idx], h, [&](const value_type& x) { on_found(idx, x); })) ++found;
    });
    return found;
  }

  // ---------------------------------------------------------------------------------------------
  // Writes
  // ---------------------------------------------------------------------------------------------

  // The one write primitive. Finds k; if present, calls on_found on the element under its
  // protection, as Access (mutating_tag or const_tag) allows, and returns false; otherwise
  // constructs the element with make(void* where) — placement-new of a value_type — and returns
  // true.
  template <class Access, class Make, class OnFound>
  PARDICT_ALWAYS_INLINE bool upsert(Access, const K& k, Make&& make, OnFound&& on_found) {
    check_not_reentering(this);
    epoch_guard guard;
    return upsert_hashed<Access>(k, hash_of(k), make, on_found) == write_outcome::inserted;
  }

  // The write primitive without the insert: calls f(value_type&) on k's element under its lock
  // and returns true, or returns false when k is absent (and leaves it absent).
  template <class F>
  bool visit(const K& k, F&& f) {
    check_not_reentering(this);
    epoch_guard guard;
    visit_only absent;
    return upsert_hashed<mutating_tag>(k, hash_of(k), absent, f) == write_outcome::found;
  }

  template <class Make, class OnFound>
  std::size_t upsert_many(const K* keys, std::size_t n, Make&& make, OnFound&& on_found) {
    check_not_reentering(this);
    epoch_guard guard;
    std::size_t inserted = 0;
    pipeline(n, keys, true, [&](std::size_t idx, std::uint64_t h) {
      auto make_at = [&](void* where) { make(idx, where); };
      auto visit_at = [&](value_type& x) { on_found(idx, x); };
      if (upsert_hashed<mutating_tag>(keys[idx], h, make_at, visit_at) == write_outcome::inserted)
        ++inserted;
    });
    return inserted;
  }

  // Erases k if pred(value_type&) says so. Returns 1 if erased.
  template <class Pred>
  std::size_t erase_if_key(const K& k, Pred&& pred) {
    check_not_reentering(this);
    epoch_guard guard;
    const std::uint64_t h = hash_of(k);
    shard& s = shard_of(h);
    for (;;) {
      table* t = s.cur.load(std::memory_order_acquire);
      if (t == nullptr) return 0;
      locate_result r = locate(t, k, h);
      if (r.status == locate_status::moved) {
        help_migrate(s, t);
        continue;
      }
      if (r.status == locate_status::busy) {
        std::this_thread::yield();
        continue;
      }
      if (r.status != locate_status::found) return 0;
      value_type* e = t->slot(r.group, r.slot);
      bool yes;
      {
        visiting_scope vs(this);
        if constexpr (optimistic) {
          alignas(value_type) unsigned char buf[sizeof(value_type)];
          racy_load(buf, e);
          yes = static_cast<bool>(pred(*std::launder(reinterpret_cast<value_type*>(buf))));
        } else {
          yes = static_cast<bool>(pred(*e));
        }
      }
      if (!yes) return 0;
      remove_from_locked_group(s, t, r.group, r.slot);
      return 1;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Whole-table operations
  // ---------------------------------------------------------------------------------------------

  // Runs f(value_type&) on every element, group by group under the group lock. A shard is not
  // migrated while it is being visited (its resize mutex is held). Returns the count visited.
  template <class Access, class F>
  std::size_t visit_all(Access, F&& f) {
    check_not_reentering(this);
    epoch_guard guard;
    std::size_t n = 0;
    for_each_locked([&](shard&, table* t, std::size_t g, unsigned j) {
      visiting_scope vs(this);
      apply_visitor<Access>(t->slot(g, j), f);
      ++n;
    });
    return n;
  }

  template <class Pred>
  std::size_t erase_if_all(Pred&& pred) {
    check_not_reentering(this);
    epoch_guard guard;
    std::size_t n = 0;
    for_each_locked([&](shard& s, table* t, std::size_t g, unsigned j) {
      value_type* e = t->slot(g, j);
      bool yes;
      {
        visiting_scope vs(this);
        if constexpr (optimistic) {
          alignas(value_type) unsigned char buf[sizeof(value_type)];
          std::memcpy(buf, static_cast<const void*>(e), sizeof(value_type));
          yes = static_cast<bool>(pred(*std::launder(reinterpret_cast<value_type*>(buf))));
        } else {
          yes = static_cast<bool>(pred(*e));
        }
      }
      if (yes) {
        remove_from_locked_group(s, t, g, j);
        ++n;
      }
    });
    return n;
  }

  // Walks every element as visit_all does and measures how far from its home group it sits.
  probe_stats probe_statistics() {
    check_not_reentering(this);
    epoch_guard guard;
    probe_stats st;
    for_each_locked([&](shard&, table* t, std::size_t g, unsigned j) {
      const std::size_t home = home_of(hash_of(t->slot(g, j)->first), t);
      const std::size_t groups = (g >= home ? g - home : g + t->ngroups - home) + 1;
      ++st.elements;
      st.total_groups += groups;
      st.max_groups = std::max(st.max_groups, groups);
    });
    return st;
  }

  // Plain-byte elements may still carry references that a reader must acquire while the element
  // cannot change (a refcounted handle copied out and then increfed). With this set, readers take
  // the group lock instead of copying optimistically. Writers are unaffected.
  void set_locked_reads(bool on) noexcept { locked_reads_.store(on, std::memory_order_relaxed); }
  bool locked_reads() const noexcept { return locked_reads_.load(std::memory_order_relaxed); }

  // Removes one element, calling f(value_type&) on it under its group lock first (f may move the
  // mapped value out). Returns false when the table was empty. Starts where the previous call
  // found an element, so repeated calls drain the table in linear total time.
  template <class F>
  bool extract_any(F&& f) {
    check_not_reentering(this);
    epoch_guard guard;
    const std::uint64_t hint = extract_hint_.load(std::memory_order_relaxed);
    const std::size_t first_shard = static_cast<std::size_t>(hint >> 32) % shard_count;
    for (std::size_t i = 0; i <= shard_count; ++i) {
      const std::size_t si = (first_shard + i) % shard_count;
      shard& s = shards_[si];
      std::unique_lock<std::mutex> lk(s.resize_mutex);
      table* t = settle(s, lk);
      if (t == nullptr) continue;
      const std::size_t g0 = i == 0 ? static_cast<std::size_t>(hint & 0xffffffffu) : 0;
      for (std::size_t g = g0; g < t->ngroups; ++g) {
        group_meta& gm = t->groups[g];
        if (match_full(gm.tags.load(std::memory_order_relaxed)) == 0) continue;
        lock_group(gm, true);
        group_lock gl(&gm);
        const std::uint64_t occ = match_full(gm.tags.load(std::memory_order_relaxed));
        if (occ == 0) continue;
        const unsigned j = first_slot(occ);
        {
          visiting_scope vs(this);
          apply_visitor<mutating_tag>(t->slot(g, j), f);
        }
        remove_from_locked_group(s, t, g, j);
        extract_hint_.store((std::uint64_t{si} << 32) | g, std::memory_order_relaxed);
        return true;
      }
    }
    return false;
  }

  std::size_t size() const noexcept {
    std::int64_t n = 0;
    for (std::size_t i = 0; i < cell_count; ++i)
      n += cells_[i].live.load(std::memory_order_relaxed);
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }

  std::size_t bucket_count() const noexcept {
    epoch_guard guard;
    std::size_t n = 0;
    for (std::size_t si = 0; si < shard_count; ++si) {
      const table* t = shards_[si].cur.load(std::memory_order_acquire);
      if (t != nullptr) n += t->ngroups * group_width;
    }
    return n;
  }

  // Make room for n elements in total (spread evenly over the shards). Shrinks when `exact`.
  void reserve(std::size_t n, bool exact = false) {
    check_not_reentering(this);
    epoch_guard guard;
    // Keys do not split evenly: a shard's share is binomial, so leave four standard deviations
    // of headroom (plus the per-thread budget charges not yet flushed) or half the shards would
    // grow right after a reserve(n) followed by n inserts.
    const double mean = static_cast<double>(n) / shard_count;
    const std::size_t per_shard =
        n == 0 ? 0 : static_cast<std::size_t>(mean + 4.0 * std::sqrt(mean) + 64.0);
    for (std::size_t si = 0; si < shard_count; ++si) {
      shard& s = shards_[si];
      for (;;) {
        table* t = s.cur.load(std::memory_order_acquire);
        const std::size_t want = groups_for(std::max(per_shard, exact ? live_estimate(t) : 0));
        if (t == nullptr) {
          if (per_shard == 0) break;
          install_first_table(s, want);
          continue;
        }
        if (t->next.load(std::memory_order_acquire) != nullptr) {
          help_migrate(s, t);
          continue;
        }
        if (exact) {
          // One rebuild per shard: under concurrent inserts the estimate keeps moving.
          if (t->ngroups != want) start_migration(s, t, want, migration::grow);
          break;
        }
        if (t->ngroups >= want) break;
        start_migration(s, t, want, migration::grow);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Loading a shard in one pass (building a map before it is shared)
  // ---------------------------------------------------------------------------------------------
  // The shard a key belongs to. A map's iteration (and so export_many's output) visits the shards
  // in index order, so one map's elements arrive at another grouped by shard.
  std::size_t shard_index(const K& k) const { return shard_index_of(hash_of(k)); }

  // Builds shard si from keys[0..n) in one pass: a private table of the right size (at least
  // `ngroups` groups) is filled without locks, atomic read-modify-writes or budget accounting and
  // then installed, so that a shard's worth of inserts costs a probe and a slot store each
  // (unpickling a 10M-entry dict: see docs/dask.md). make(i, where) constructs element i; a key
  // met again calls on_again(i, value_type&). Returns the elements added, or npos, having changed
  // nothing, when the shard already holds an element or a key belongs to another shard: the
  // caller then takes the ordinary path.
  //
  // Requires that no other thread uses shard si meanwhile (threads loading different shards of
  // one map may run at once). The seed, when not 0, places elements as the table that exported
  // them did (an even seed: in order, where this map's hash places in order; otherwise it is
  // made odd); fed in that table's order, the private table is then written front to back.
  template <class Make, class OnAgain>
  std::size_t load_shard(std::size_t si, const K* keys, std::size_t n, std::size_t ngroups,
                         std::uint32_t seed, Make&& make, OnAgain&& on_again) {
    constexpr std::size_t npos = static_cast<std::size_t>(-1);
    check_not_reentering(this);
    epoch_guard guard;
    shard& s = shards_[si];
    std::lock_guard<std::mutex> lk(s.resize_mutex);
    table* old = s.cur.load(std::memory_order_acquire);
    if (old != nullptr) {
      if (old->next.load(std::memory_order_acquire) != nullptr) return npos;
      for (std::size_t g = 0; g < old->ngroups; ++g) {
        if (old->groups[g].tags.load(std::memory_order_relaxed) != 0) return npos;
      }
    }
    if (n == 0) return 0;
    const std::uint32_t exporter_seed =
        (seed & 1) != 0 || engine_hash_t::in_order ? seed : seed | 1u;
    table* t = allocate_table(std::max(ngroups, groups_for(n)),
                              seed != 0 ? exporter_seed : fresh_table_seed());
    std::size_t added = 0;
    bool foreign = false;
    try {
      for (std::size_t i = 0; i < n && !foreign; ++i) {
        const std::uint64_t h = hash_of(keys[i]);
        if (shard_index_of(h) != si) {
          foreign = true;
          break;
        }
        // No element is ever erased here, so the first group with a free slot ends the walk:
        // a key passed it only while it was full.
        for (probe p(t, h);; p.next()) {
          group_meta& gm = t->groups[p.g];
          const std::uint64_t tags = gm.tags.load(std::memory_order_relaxed);
          value_type* hit = nullptr;
          for (std::uint64_t m = match_tag(tags, p.tag); m; m &= m - 1) {
            value_type* e = t->slot(p.g, first_slot(m));
            if (eq_(e->first, keys[i])) {
              hit = e;
              break;
            }
          }
          if (hit != nullptr) {
            visiting_scope vs(this);
            on_again(i, *hit);
            break;
          }
          const std::uint64_t empty = match_empty(tags);
          if (empty != 0) {
            const unsigned j = pick_free(empty, h);
            auto make_i = [&](void* where) { make(i, where); };
            construct_in(t, p.g, j, make_i);
            gm.tags.store(with_tag(tags, j, p.tag), std::memory_order_relaxed);
            ++added;
            break;
          }
          gm.overflow.store(gm.overflow.load(std::memory_order_relaxed) | p.obit,
                            std::memory_order_relaxed);
        }
      }
    } catch (...) {
      destroy_elements(t);
      free_table_memory(t, byte_alloc(alloc_));
      throw;
    }
    if (foreign) {
      destroy_elements(t);
      free_table_memory(t, byte_alloc(alloc_));
      return npos;
    }
    t->budget.fetch_sub(static_cast<std::int64_t>(added), std::memory_order_relaxed);
    s.cur.store(t, std::memory_order_release);
    if (old != nullptr) retire(old);
    add_live(my_cell(), static_cast<std::int64_t>(added));
    return added;
  }

  // Fetches shard si's current table into cache front to back (metadata, then slots) before a
  // batch of that shard's keys arrives: one streamed pass at memory bandwidth instead of a cache
  // miss per key. Returns the table's bytes. For
  // bulk calls that group their keys by shard (the C ABI's large combines).
  std::size_t warm_shard(std::size_t si) const {
    epoch_guard guard;
    const table* t = shards_[si].cur.load(std::memory_order_acquire);
    if (t == nullptr) return 0;
    // Prefetches, not loads: other threads may be writing the table, and a prefetch reads no
    // value that could race with them.
    const auto* p = static_cast<const unsigned char*>(t->block);
    for (std::size_t off = 0; off < t->block_bytes; off += 64) prefetch_read(p + off);
    return t->block_bytes;
  }

  // The seed and group count of shard si's table (0, 0 without one), for an exporter whose
  // receiver loads with load_shard.
  std::pair<std::uint32_t, std::size_t> shard_geometry(std::size_t si) const {
    epoch_guard guard;
    const table* t = shards_[si].cur.load(std::memory_order_acquire);
    if (t == nullptr) return {0, 0};
    return {t->seed, t->ngroups};
  }

  void clear() {
    check_not_reentering(this);
    epoch_guard guard;
    for (std::size_t si = 0; si < shard_count; ++si) {
      shard& s = shards_[si];
      for (;;) {
        table* t = s.cur.load(std::memory_order_acquire);
        if (t == nullptr) break;
        if (t->next.load(std::memory_order_acquire) != nullptr) {
          help_migrate(s, t);
          continue;
        }
        // A migration into a fresh minimum-size table that destroys instead of copying.
        if (start_migration(s, t, min_groups, migration::drop)) break;
      }
    }
  }

 private:
  // ---------------------------------------------------------------------------------------------
  // Data
  // ---------------------------------------------------------------------------------------------
  struct table {
    group_meta* groups;
    value_type* slots;
    std::size_t ngroups;
    // Odd multiplier of the hash's low 32 bits in the group index (see "Layout" in the essay).
    // A migration's new table keeps it; a table that starts empty gets a fresh one.
    std::uint32_t seed;
    // The home group is mul_high(low 32 hash bits * group_mult mod 2^64, ngroups), one formula
    // for both kinds of table, so that no operation branches on the kind (home_of).
    std::uint64_t group_mult;
    void* block;
    std::size_t block_bytes;
    std::atomic<std::int64_t> budget;  // inserts left before the table must grow
    std::size_t flush_every;           // per-thread charge batch for this table's size
    // Migration state (meaningful once `next` is set).
    std::atomic<table*> next{nullptr};
    std::atomic<std::size_t> next_chunk{0};
    std::atomic<std::size_t> chunks_done{0};
    std::atomic<std::int64_t> moved_elements{0};
    std::atomic<std::uint32_t> done{0};  // 1 once `next` is installed; futex for waiters
    bool drop = false;                   // clear(): destroy instead of moving

    std::size_t nchunks() const noexcept { return (ngroups + chunk_groups - 1) / chunk_groups; }
    value_type* slot(std::size_t g, unsigned j) const noexcept {
      return slots + g * group_width + j;
    }
  };

  struct alignas(64) shard {
    std::atomic<table*> cur{nullptr};
    std::mutex resize_mutex;  // starting a migration; whole-shard visitation
  };

  struct alignas(64) cell {
    std::atomic<std::int64_t> live{0};
    std::atomic<std::int32_t> pending[shard_count];
  };

  using byte_alloc =
      typename std::allocator_traits<Allocator>::template rebind_alloc<unsigned char>;

  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] KeyEqual eq_;
  [[no_unique_address]] Allocator alloc_;
  std::unique_ptr<shard[]> shards_;
  std::unique_ptr<cell[]> cells_;
  // Readers lock even when K and V are plain bytes (see set_locked_reads). Set before sharing.
  std::atomic<bool> locked_reads_{false};
  // Where extract_any starts looking (shard * 2^32 + group), so draining a table one element at a
  // time does not rescan the groups it already emptied.
  std::atomic<std::uint64_t> extract_hint_{0};

  // ---------------------------------------------------------------------------------------------
  // Hash bit assignment
  // ---------------------------------------------------------------------------------------------
  // The hash the engine places a key by (hash.hpp, engine_hash): the hasher's own, or for
  // pardict::hash of numeric keys, in_order_hash of a key that is a small integer.
  template <class Q>
  std::uint64_t hash_of(const Q& k) const noexcept(noexcept(engine_hash_t::of(hash_, k))) {
    return engine_hash_t::of(hash_, k);
  }
  static std::size_t shard_index_of(std::uint64_t h) noexcept { return h >> (64 - shard_bits); }
  shard& shard_of(std::uint64_t h) const noexcept { return shards_[shard_index_of(h)]; }
  static bool in_order(const table* t) noexcept { return (t->seed & 1) == 0; }
  // The home group of h. With x the hash's low 32 bits and n the group count:
  // * a seeded table: the position x * seed mod 2^32 (a bijection of x) scaled to n, i.e.
  //   ((x * seed mod 2^32) * n) >> 32, which is mul_high(x * (seed << 32) mod 2^64, n);
  // * an in-order table: (x mod 8n) / 8, i.e. (x / 8) mod n. With M = ceil(2^64 / 8n),
  //   x * M mod 2^64 is (x mod 8n) / 8n * 2^64 plus an error below x < 2^32 (Lemire's fastmod),
  //   so mul_high of it and n is (x mod 8n) / 8 plus less than n / 2^32, which stays below the
  //   1/8 that separates the quotient from the next integer while n < 2^29.
  // group_mult is seed << 32 or M (allocate_table).
  static std::size_t home_of(std::uint64_t h, const table* t) noexcept {
    const std::uint64_t x = static_cast<std::uint32_t>(h);
    return static_cast<std::size_t>(platform::mul_high(x * t->group_mult, t->ngroups));
  }
  // The seed of a shard's first table and of the table clear() installs.
  static std::uint32_t first_seed() noexcept {
    return engine_hash_t::in_order ? in_order_seed : fresh_table_seed();
  }
  static std::uint8_t tag_of(std::uint64_t h) noexcept {
    const auto t = static_cast<std::uint8_t>(h >> 32);
    return t == 0 ? std::uint8_t{1} : t;
  }
  static std::uint32_t overflow_bit(std::uint64_t h) noexcept {
    return std::uint32_t{1} << ((h >> 40) & 7);
  }
  // Inserts prefer one half of the group, chosen by a hash bit, so a lookup can prefetch that
  // half's slots while it is still waiting for the metadata: most hits then cost one memory
  // round trip instead of two dependent ones.
  static std::uint64_t preferred_half(std::uint64_t h) noexcept {
    return (h >> 43) & 1 ? 0x8080808000000000ULL : 0x0000000080808080ULL;
  }
  static unsigned pick_free(std::uint64_t empties, std::uint64_t h) noexcept {
    const std::uint64_t pref = empties & preferred_half(h);
    return first_slot(pref != 0 ? pref : empties);
  }
  // A writer prefetches the whole half only while it is at most two lines (slots of up to 32
  // bytes), and otherwise only the half's first slot (or line), where an insert usually lands (the
  // first free slot of the half): for larger slots the lines an insert does not write are, at fill
  // rates bound by DRAM, bandwidth taken from the next ones (64-byte slots: 4 lines per insert).
  // For 24-byte slots one line left the half's later slots, which straddle it, unprefetched: the
  // whole half took single-key inserts of them (W7i) 3.5-5% faster at 1 and 2 threads (10M keys,
  // interleaved runs).
  void prefetch_slots(const table* t, std::size_t g, std::uint64_t h, bool write) const noexcept {
    prefetch_slots(t->slot(g, 0), h, write);
  }
  // The same for the group whose first slot is `group_slots`.
  static void prefetch_slots(const value_type* group_slots, std::uint64_t h, bool write) noexcept {
    constexpr std::size_t half_bytes = sizeof(value_type) * (group_width / 2);
    std::size_t first_byte;
    if constexpr (std::has_single_bit(half_bytes) && half_bytes <= (std::size_t{1} << 43)) {
      // The half's byte offset straight from bit 43: a shift and a mask (16-byte slots: 64).
      first_byte = static_cast<std::size_t>(h >> (43 - std::countr_zero(half_bytes))) & half_bytes;
    } else {
      first_byte = (h >> 43) & 1 ? half_bytes : 0;
    }
    const char* p = reinterpret_cast<const char*>(group_slots) + first_byte;
    const std::size_t bytes =
        write && half_bytes > 128 ? std::max<std::size_t>(64, sizeof(value_type)) : half_bytes;
    for (std::size_t off = 0; off < bytes; off += 64) prefetch_for(p + off, write);
  }

  static std::size_t next_group(std::size_t g, std::size_t n) noexcept {
    return g + 1 == n ? 0 : g + 1;
  }

  // A key's walk over the groups of one table: from its home group on, looking for its tag, and
  // (for a lookup) stopping at the first group whose overflow bit for the key's class is clear.
  struct probe {
    probe(const table* t, std::uint64_t h) noexcept
        : n(t->ngroups), g(home_of(h, t)), tag(tag_of(h)), obit(overflow_bit(h)) {}
    void next() noexcept { g = next_group(g, n); }
    const std::size_t n;  // the table's groups
    std::size_t g;        // the group being looked at
    const std::uint8_t tag;
    const std::uint32_t obit;
  };

  static std::size_t groups_for(std::size_t elements) noexcept {
    const double slots = static_cast<double>(elements) / max_load;
    const auto g = static_cast<std::size_t>(slots / group_width) + 1;
    return std::max(min_groups, g);
  }

  // ---------------------------------------------------------------------------------------------
  // Table allocation and reclamation
  // ---------------------------------------------------------------------------------------------
  table* allocate_table(std::size_t ngroups, std::uint32_t seed) {
    if (ngroups > (std::size_t{1} << 32)) throw std::bad_alloc();
    const std::size_t header = (sizeof(table) + 63) & ~std::size_t{63};
    const std::size_t meta = ngroups * sizeof(group_meta);
    const std::size_t slot_off = (header + meta + 63) & ~std::size_t{63};
    if (ngroups > (std::numeric_limits<std::size_t>::max() - slot_off - 64) /
                      (group_width * sizeof(value_type))) {
      throw std::bad_alloc();
    }
    const std::size_t bytes = slot_off + ngroups * group_width * sizeof(value_type) + 64;
    byte_alloc ba(alloc_);
    unsigned char* raw = std::allocator_traits<byte_alloc>::allocate(ba, bytes);
    unsigned char* base = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<std::uintptr_t>(raw) + 63) & ~std::uintptr_t{63});
    table* t = ::new (base) table;
    t->groups = reinterpret_cast<group_meta*>(base + header);
    t->slots = reinterpret_cast<value_type*>(base + slot_off);
    t->ngroups = ngroups;
    // An in-order table needs fewer than 2^29 groups (home_of); past that (4G slots in one shard)
    // it is seeded.
    if ((seed & 1) == 0 && ngroups >= (std::size_t{1} << 29)) seed = fresh_table_seed();
    t->seed = seed;
    t->group_mult = (seed & 1) != 0 ? std::uint64_t{seed} << 32
                                    : ~std::uint64_t{0} / (group_width * ngroups) + 1;
    t->block = raw;
    t->block_bytes = bytes;
    const auto cap =
        static_cast<std::int64_t>(static_cast<double>(ngroups * group_width) * max_load);
    t->budget.store(cap, std::memory_order_relaxed);
    t->flush_every = std::clamp<std::size_t>(ngroups / 64, 1, 16);
    // Metadata is written before it is ever read: fresh pages are faulted in by a write, not
    // mapped to the zero page by a read and copied on the next write. Slots are written first
    // by the insert that fills them. Huge pages are not requested: a probe waits for DRAM, not
    // for the page walk, and lookups with every table page a transparent huge page were no
    // faster. Measured again with madvise(MADV_HUGEPAGE) on 2 MiB-aligned tables (10M keys, AMD
    // EPYC VM with nested paging): 16-byte slots, W1/W3/W4/W5 unchanged; the seed program's
    // 64-byte slots, a presized fill 1.3-1.5x faster in a process that had used huge pages
    // before, but the first fill of a fresh process no faster (that VM hands free 4 MiB blocks
    // back to its host, and the first touch of one pays a host fault). A presized table that
    // stays sparse would also become resident in full.
    for (std::size_t g = 0; g < ngroups; ++g) {
      ::new (&t->groups[g]) group_meta;
      t->groups[g].seq.store(0, std::memory_order_relaxed);
      t->groups[g].overflow.store(0, std::memory_order_relaxed);
      t->groups[g].tags.store(0, std::memory_order_relaxed);
    }
    return t;
  }

  static void free_table_memory(table* t, const byte_alloc& a) noexcept {
    byte_alloc ba(a);
    void* raw = t->block;
    const std::size_t bytes = t->block_bytes;
    t->~table();
    std::allocator_traits<byte_alloc>::deallocate(ba, static_cast<unsigned char*>(raw), bytes);
  }

  void retire(table* t) {
    if constexpr (std::is_empty_v<byte_alloc> && std::is_default_constructible_v<byte_alloc>) {
      epoch_domain::instance().retire(
          t, [](void* p) { free_table_memory(static_cast<table*>(p), byte_alloc()); });
    } else {
      // Stateful allocator: park a copy of it in the table's header padding is not possible in
      // general, so wrap the table.
      struct holder {
        table* t;
        byte_alloc a;
      };
      auto* hd = new holder{t, byte_alloc(alloc_)};
      epoch_domain::instance().retire(hd, [](void* p) {
        auto* h = static_cast<holder*>(p);
        free_table_memory(h->t, h->a);
        delete h;
      });
    }
  }

  void destroy_elements(table* t) noexcept {
    if constexpr (!std::is_trivially_destructible_v<value_type>) {
      for (std::size_t g = 0; g < t->ngroups; ++g) {
        std::uint64_t occ = match_full(t->groups[g].tags.load(std::memory_order_relaxed));
        for (; occ; occ &= occ - 1) t->slot(g, first_slot(occ))->~value_type();
      }
    }
  }

  // Only with no concurrent operations (destructor, assignment).
  void destroy_all() noexcept {
    if (!shards_) return;
    for (std::size_t si = 0; si < shard_count; ++si) {
      table* t = shards_[si].cur.load(std::memory_order_acquire);
      if (t == nullptr) continue;
      destroy_elements(t);
      free_table_memory(t, byte_alloc(alloc_));
      shards_[si].cur.store(nullptr, std::memory_order_relaxed);
    }
    if (cells_) {
      for (std::size_t i = 0; i < cell_count; ++i) {
        cells_[i].live.store(0, std::memory_order_relaxed);
        for (auto& p : cells_[i].pending) p.store(0, std::memory_order_relaxed);
      }
    }
  }

  void install_first_table(shard& s, std::size_t ngroups) {
    std::lock_guard<std::mutex> lk(s.resize_mutex);
    if (s.cur.load(std::memory_order_acquire) != nullptr) return;
    s.cur.store(allocate_table(ngroups, first_seed()), std::memory_order_release);
  }

  // ---------------------------------------------------------------------------------------------
  // Counting
  // ---------------------------------------------------------------------------------------------
  // The calling thread's cell (valid inside an epoch guard: the epoch slot index is unique among
  // live threads, and a slot passes to a new thread only after its previous owner has exited).
  // Every cell but the last, shared one is owned by the thread it belongs to.
  cell& my_cell() const noexcept {
    return cells_[std::min(epoch_domain::thread_index(), owned_cells)];
  }
  PARDICT_ALWAYS_INLINE void add_live(cell& c, std::int64_t delta) noexcept {
    add_live(c, &c != &cells_[owned_cells], delta);
  }
  // The same for a caller that knows whether c is its own (upsert_home_straight).
  PARDICT_ALWAYS_INLINE static void add_live(cell& c, bool owned, std::int64_t delta) noexcept {
    if (owned) {
      c.live.store(c.live.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
    } else {
      c.live.fetch_add(delta, std::memory_order_relaxed);
    }
  }

  // Counts an insert that is already published, and grows t when its budget runs out. Inlined
  // into the insert paths; the growth is out of line.
  PARDICT_ALWAYS_INLINE void note_insert(shard& s, table* t) {
    if (account(s, t, +1, +1)) [[unlikely]]
      grow_after_insert(s, t);
  }
  PARDICT_NOINLINE void grow_after_insert(shard& s, table* t) {
    try {
      grow(s, t);
    } catch (const std::bad_alloc&) {
      // The element is in; the table stays fuller than it should until a later insert manages to
      // grow it.
    }
  }

  // delta = +1 for an insert, -1 for an erase that frees budget, 0 for an erase that does not.
  // Returns true when the table's budget is exhausted.
  PARDICT_ALWAYS_INLINE bool account(shard& s, table* t, int live_delta,
                                     int budget_delta) noexcept {
    cell& c = my_cell();
    if (live_delta != 0) add_live(c, live_delta);
    if (budget_delta == 0) return false;
    return charge(c, static_cast<std::size_t>(&s - shards_.get()), t, budget_delta);
  }

  // Adds `delta` to the thread's running charge to one shard's budget; a charge of flush_every or
  // more (either sign) is subtracted from the table's budget at once. Returns true when that
  // flush exhausted the budget. (upsert_home_straight has its own copy for delta = +1.)
  PARDICT_ALWAYS_INLINE static bool charge(cell& c, std::size_t shard_index, table* t,
                                           int delta) noexcept {
    std::atomic<std::int32_t>& p = c.pending[shard_index];
    const std::int32_t v = p.load(std::memory_order_relaxed) + delta;
    if (static_cast<std::size_t>(v < 0 ? -v : v) < t->flush_every) {
      p.store(v, std::memory_order_relaxed);
      return false;
    }
    p.store(0, std::memory_order_relaxed);
    return t->budget.fetch_sub(v, std::memory_order_relaxed) - v < 0;
  }

  // Approximate element count of a table from its tags (for sizing a migration).
  static std::size_t live_estimate(const table* t) noexcept {
    if (t == nullptr) return 0;
    std::size_t n = 0;
    for (std::size_t g = 0; g < t->ngroups; ++g) {
      const std::uint64_t occ = match_full(t->groups[g].tags.load(std::memory_order_relaxed));
      n += static_cast<std::size_t>(std::popcount(occ));
    }
    return n;
  }

  // ---------------------------------------------------------------------------------------------
  // Reading
  // ---------------------------------------------------------------------------------------------
  template <class Step>
  void pipeline(std::size_t n, const K* keys, bool write, Step&& step) const {
    constexpr std::size_t D = 8;
    constexpr std::size_t ring = 32;  // > 2D, a power of two
    std::uint64_t hs[ring];
    for (std::size_t i = 0; i < n + 2 * D; ++i) {
      if (i < n) {
        hs[i % ring] = hash_of(keys[i]);
        prefetch_home(hs[i % ring], write);
      }
      if (i >= D && i - D < n) prefetch_candidate(hs[(i - D) % ring], write);
      if (i >= 2 * D) step(i - 2 * D, hs[(i - 2 * D) % ring]);
    }
  }

  // The pipeline of read_many for optimistic readers: the same three stages, but each key's
  // table and home group are found once, in the first stage, and carried to the later ones (the
  // generic pipeline finds them again in every stage). A table replaced meanwhile is still
  // readable under the caller's epoch guard, and its groups are marked moved, which sends the
  // last stage to the general path.
  template <class Step>
  PARDICT_ALWAYS_INLINE void read_pipeline(std::size_t n, const K* keys, Step&& step) const {
    constexpr std::size_t D = 8;
    constexpr std::size_t ring = 32;  // > 2D, a power of two
    struct stage {
      std::uint64_t h;
      const table* t;
      std::size_t g;
    };
    stage st[ring];
    auto first = [&](std::size_t i) {
      stage& x = st[i % ring];
      x.h = hash_of(keys[i]);
      x.t = shard_of(x.h).cur.load(std::memory_order_acquire);
      if (x.t == nullptr) return;
      x.g = home_of(x.h, x.t);
      prefetch_read(&x.t->groups[x.g]);
    };
    auto second = [&](std::size_t i) {
      const stage& x = st[i % ring];
      if (x.t == nullptr) return;
      const std::uint64_t m =
          match_tag(x.t->groups[x.g].tags.load(std::memory_order_relaxed), tag_of(x.h));
      if (m != 0) prefetch_slot(x.t->slot(x.g, first_slot(m)), false);
    };
    auto third = [&](std::size_t i) {
      const stage& x = st[i % ring];
      step(i, x.t, x.g, x.h);
    };
    // The next key of each stage. Fill, steady state (no bounds tests), drain.
    std::size_t s1 = 0, s2 = 0, s3 = 0;
    while (s1 < n && s1 < D) first(s1++);
    while (s1 < n && s1 < 2 * D) {
      first(s1++);
      second(s2++);
    }
    while (s1 < n) {
      first(s1++);
      second(s2++);
      third(s3++);
    }
    while (s2 < n) second(s2++);
    while (s3 < n) third(s3++);
  }

  void prefetch_home(std::uint64_t h, bool write) const noexcept {
    const table* t = shard_of(h).cur.load(std::memory_order_acquire);
    if (t == nullptr) return;
    prefetch_for(&t->groups[home_of(h, t)], write);
  }

  // Second stage: the metadata is (nearly) in cache; prefetch the slot the key will hit, or for a
  // writer the slot it will fill.
  void prefetch_candidate(std::uint64_t h, bool write) const noexcept {
    const table* t = shard_of(h).cur.load(std::memory_order_acquire);
    if (t == nullptr) return;
    const std::size_t g = home_of(h, t);
    const std::uint64_t tags = t->groups[g].tags.load(std::memory_order_relaxed);
    std::uint64_t m = match_tag(tags, tag_of(h));
    unsigned j;
    if (m != 0) {
      j = first_slot(m);
    } else if (write && match_empty(tags) != 0) {
      j = pick_free(match_empty(tags), h);
    } else {
      return;
    }
    prefetch_slot(t->slot(g, j), write);
  }

  // Every line of one slot. Slot arrays start on a line, so a slot whose size divides 64 sits in
  // one line; any other straddles a line boundary at some positions of its group (24-byte slots:
  // 2 of 8), and a lookup that copies it then waits for a second line that nobody prefetched.
  // Prefetching both took the bulk lookup of 24-byte slots (W7l) from 17.0 to 19.6 Mops at one
  // thread and from 33.5 to 39.1 at two, and their bulk insert (W7i, 2 threads) from 14.3 to
  // 15.7 (10M keys, interleaved runs); 16-byte slots compile to the one prefetch as before.
  static void prefetch_slot(const value_type* e, bool write) noexcept {
    prefetch_for(e, write);
    const auto first = reinterpret_cast<std::uintptr_t>(e);
    if constexpr (64 % sizeof(value_type) != 0) {
      const std::uintptr_t last_line = (first + sizeof(value_type) - 1) & ~std::uintptr_t{63};
      for (std::uintptr_t line = (first & ~std::uintptr_t{63}) + 64; line <= last_line;
           line += 64) {
        prefetch_for(reinterpret_cast<const void*>(line), write);
      }
    }
  }

  // Everything the home group alone does not decide: a locked or moved home group, an overflowed
  // one, a migration, locked reads. Out of line, so that the fast paths stay short.
  template <class F>
  PARDICT_NOINLINE bool read_general(const K& k, std::uint64_t h, F&& f) const {
    const shard& s = shard_of(h);
    const table* t = s.cur.load(std::memory_order_acquire);
    while (t != nullptr) {
      bool saw_moved = false;
      int r = optimistic && !locked_reads_.load(std::memory_order_relaxed)
                  ? read_optimistic(t, k, h, f, saw_moved)
                  : read_locked(t, k, h, f, saw_moved);
      if (r >= 0) return r == 1;
      // Not in the live part of t; if part of t has moved, the key may be in the next table.
      if (!saw_moved) return false;
      t = t->next.load(std::memory_order_acquire);
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Home-group fast paths
  // ---------------------------------------------------------------------------------------------
  // Most operations are decided by the key's home group alone: the key is there, or it is not and
  // the group's overflow bit for its class is clear (and, for an insert, the group has a free
  // slot). These two functions handle exactly that case with straight-line code and hand
  // everything else (a locked or moved group, an overflowed group, a full group, a migration) to
  // the general path before changing anything. Why it pays: a DRAM-sized table costs one memory
  // round trip per operation, and consecutive operations overlap their round trips only when
  // the instructions between them fit in the core's reorder window (see the essay).

  // 1 found (f called on a validated copy), 0 definitely absent, -1 undecided. t is the shard's
  // table as loaded by the caller (under its epoch guard, so still readable if it has been
  // replaced since: its groups are then marked moved and the answer is -1), g the key's home
  // group in t. The single-key lookup prefetches the preferred half of the group's slots before
  // calling this, while the metadata is still on its way: a hit then costs one round trip
  // instead of two dependent ones (10M keys, one thread: present keys 8.9 Mops with the
  // prefetch, 6.3 without), and a miss loses nothing measurable (13.6-14.5 either way: it waits
  // for the metadata line, not for bandwidth). The bulk pipeline does not: it has already
  // prefetched the slot whose tag matched, and for an absent key the extra line only spends the
  // memory bandwidth the pipeline is bound by (absent keys 21.4-22.1 -> 26.8-28.6 Mops).
  template <class F>
  PARDICT_ALWAYS_INLINE int read_home(const table* t, std::size_t g, const K& k, std::uint64_t h,
                                      F& f) const {
    const group_meta& gm = t->groups[g];
    const std::uint32_t s1 = gm.seq.load(std::memory_order_acquire);
    if ((s1 & (locked_bit | moved_bit)) != 0) return -1;
    const std::uint32_t ovf = gm.overflow.load(std::memory_order_relaxed);
    for (std::uint64_t m = match_tag(gm.tags.load(std::memory_order_relaxed), tag_of(h)); m;
         m &= m - 1) {
      alignas(value_type) unsigned char buf[sizeof(value_type)];
      racy_load(buf, t->slot(g, first_slot(m)));
      const value_type& x = *std::launder(reinterpret_cast<const value_type*>(buf));
      std::atomic_thread_fence(std::memory_order_acquire);
      if (gm.seq.load(std::memory_order_relaxed) != s1) return -1;
      if (eq_(x.first, k)) {
        visiting_scope_for<F> vs(this);
        f(x);
        return 1;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (gm.seq.load(std::memory_order_relaxed) != s1) return -1;
    return (ovf & overflow_bit(h)) == 0 ? 0 : -1;
  }

  // read_home without its loop over tag matches, for read_detached, which wants straight-line code
  // (see epoch_domain::try_enter_detached): two slots with the key's tag are left undecided, which
  // about 3% of the lookups in a full group meet (7 other tags, each equal 1 time in 255). A key
  // whose probe passed a full home group is looked for in the next group too, once: in a table
  // filled to its maximum load about one key in ten lives there, and each would otherwise repeat
  // the whole lookup on the ordinary path.
  template <class F>
  PARDICT_ALWAYS_INLINE int read_home_straight(const table* t, std::size_t g,
                                               const value_type* slots, const K& k, std::uint64_t h,
                                               F& f) const {
    const int r = read_group_straight(t, g, slots, k, h, f);
    if (r != 2) [[likely]]
      return r;
    const std::size_t g2 = next_group(g, t->ngroups);
    const int r2 = read_group_straight(t, g2, t->slot(g2, 0), k, h, f);
    return r2 != 2 ? r2 : -1;
  }
  // One group of that walk: 1 found (f called), 0 absent from the table, 2 absent from this group
  // but the group's overflow bit for the key is set (the walk goes on), -1 undecided.
  template <class F>
  PARDICT_ALWAYS_INLINE int read_group_straight(const table* t, std::size_t g,
                                                const value_type* slots, const K& k,
                                                std::uint64_t h, F& f) const {
    const group_meta& gm = t->groups[g];
    const std::uint32_t s1 = gm.seq.load(std::memory_order_acquire);
    if ((s1 & (locked_bit | moved_bit)) != 0) return -1;
    const std::uint64_t m = match_tag(gm.tags.load(std::memory_order_relaxed), tag_of(h));
    if ((m & (m - 1)) != 0) return -1;
    if (m != 0) {
      alignas(value_type) unsigned char buf[sizeof(value_type)];
      racy_load(buf, slots + first_slot(m));
      std::atomic_thread_fence(std::memory_order_acquire);
      if (gm.seq.load(std::memory_order_relaxed) != s1) return -1;
      const value_type& x = *std::launder(reinterpret_cast<const value_type*>(buf));
      if (eq_(x.first, k)) {
        visiting_scope_for<F> vs(this);
        f(x);
        return 1;
      }
    }
    // Absent from the group: the overflow word decides whether the walk goes on. It is read only
    // now, and validated by a seq load of its own, so that a hit neither loads it nor keeps it
    // in a register across the slot's copy (the inlined lookup is short of registers: a spill
    // and two moves). A false tag match (about 3% of the lookups in a full group) pays a second
    // seq load and compare instead.
    const std::uint32_t ovf = gm.overflow.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (gm.seq.load(std::memory_order_relaxed) != s1) return -1;
    return (ovf & overflow_bit(h)) == 0 ? 0 : 2;
  }

  // The protocol of upsert_hashed restricted to the home group, which is locked with one CAS
  // attempt (a locked group goes to the general path, which waits for it). Returns `undecided`
  // having changed nothing when the home group alone cannot decide.
  template <class Access, class Make, class OnFound>
  PARDICT_ALWAYS_INLINE write_outcome upsert_home(const K& k, std::uint64_t h, Make& make,
                                                  OnFound& on_found) {
    constexpr bool inserts = !std::is_same_v<Make, visit_only>;
    shard& s = shard_of(h);
    table* t = s.cur.load(std::memory_order_acquire);
    if (t == nullptr) return write_outcome::undecided;
    const std::size_t g = home_of(h, t);
    prefetch_slots(t, g, h, inserts);
    group_meta& gm = t->groups[g];
    if (!try_lock_once(gm)) return write_outcome::undecided;
    group_lock home(&gm);
    const std::uint64_t tags = gm.tags.load(std::memory_order_relaxed);
    const std::uint8_t tag = tag_of(h);
    for (std::uint64_t m = match_tag(tags, tag); m; m &= m - 1) {
      value_type* e = t->slot(g, first_slot(m));
      if (eq_(e->first, k)) {
        visiting_scope_for<OnFound> vs(this);
        apply_visitor<Access>(e, on_found);
        return write_outcome::found;
      }
    }
    if ((gm.overflow.load(std::memory_order_relaxed) & overflow_bit(h)) != 0)
      return write_outcome::undecided;
    if constexpr (!inserts) {
      return write_outcome::absent;
    } else {
      const std::uint64_t empties = match_empty(tags);
      // A full group, or a table being migrated (add nothing to it): the general path decides.
      if (empties == 0 || t->next.load(std::memory_order_acquire) != nullptr)
        return write_outcome::undecided;
      const unsigned j = pick_free(empties, h);
      construct_in(t, g, j, make);
      gm.tags.store(with_tag(tags, j, tag), std::memory_order_relaxed);
      home.release();
      note_insert(s, t);
      return write_outcome::inserted;
    }
  }

  // upsert_home for upsert_detached: straight-line code (see epoch_domain::try_enter_detached),
  // so two slots with the key's tag are left undecided, like a locked, moved, overflowed or full
  // home group. The insert's charge to the table's budget is made after the group is unlocked, as
  // note_insert does, and a flush that exhausts the budget is reported (2) instead of starting
  // the growth here, which needs this process's engine. The charge is counted up only: a
  // negative one (erasures) is flushed by the next insert. The thread's counter cell is that of
  // its epoch slot index, me.index (my_cell() reads it from a thread_local), looked up only
  // after the group is unlocked: an address found before the group's lock would be held (in
  // numba's loops, spilled) across the whole operation. Returns as upsert_detached; an undecided
  // case may have locked and unlocked the home group, which readers see only as a version change.
  template <class Make, class OnFound>
  PARDICT_ALWAYS_INLINE int upsert_home_straight(const epoch_domain::detached_thread& me,
                                                 void (*wake)(group_meta&) noexcept, const K& k,
                                                 std::uint64_t h, Make& make, OnFound& on_found) {
    shard& s = shard_of(h);
    table* t = s.cur.load(std::memory_order_acquire);
    if (t == nullptr) return -1;
    const std::size_t g = home_of(h, t);
    value_type* const slots = t->slot(g, 0);
    prefetch_slots(slots, h, true);
    group_meta& gm = t->groups[g];
    if (!try_lock_once(gm)) return -1;
    const std::uint64_t tags = gm.tags.load(std::memory_order_relaxed);
    const std::uint8_t tag = tag_of(h);
    const std::uint64_t m = match_tag(tags, tag);
    int r = -1;
    if ((m & (m - 1)) == 0) {
      if (m != 0 && eq_(slots[first_slot(m)].first, k)) {
        apply_visitor<mutating_tag>(slots + first_slot(m), on_found);
        r = 0;
      } else if ((gm.overflow.load(std::memory_order_relaxed) & overflow_bit(h)) == 0) {
        const std::uint64_t empties = match_empty(tags);
        if (empties != 0 && t->next.load(std::memory_order_acquire) == nullptr) {
          const unsigned j = pick_free(empties, h);
          construct_at(slots + j, make);
          gm.tags.store(with_tag_in_empty(tags, j, tag), std::memory_order_relaxed);
          r = 1;
        }
      }
    }
    if (release_group(gm, false, [&] { epoch_domain::light_fence_as(me.asymmetric); })) [[unlikely]]
      wake(gm);
    if (r == 1) {
      const bool owned = me.index < owned_cells;
      cell& c = cells_[owned ? me.index : owned_cells];
      add_live(c, owned, 1);
      // charge() for delta = +1 (a negative pending charge, cast to size_t, is flushed at once)
      std::atomic<std::int32_t>& p = c.pending[shard_index_of(h)];
      const std::int32_t v = p.load(std::memory_order_relaxed) + 1;
      if (static_cast<std::size_t>(v) < t->flush_every) [[likely]] {
        p.store(v, std::memory_order_relaxed);
      } else {
        p.store(0, std::memory_order_relaxed);
        if (t->budget.fetch_sub(v, std::memory_order_relaxed) - v < 0) r = 2;
      }
    }
    return r;
  }

  // 1 found, 0 absent (definitely), -1 absent from the unmoved part of t.
  template <class F>
  int read_optimistic(const table* t, const K& k, std::uint64_t h, F& f, bool& saw_moved) const {
    probe p(t, h);
    prefetch_slots(t, p.g, h, false);
    for (std::size_t probes = 0; probes < p.n; ++probes) {
      const group_meta& gm = t->groups[p.g];
      std::uint32_t s1 = gm.seq.load(std::memory_order_acquire);
      if (s1 & locked_bit) {
        wait_unlocked(const_cast<group_meta&>(gm));
        --probes;
        continue;
      }
      const std::uint32_t ovf = gm.overflow.load(std::memory_order_relaxed);
      if (s1 & moved_bit) {
        saw_moved = true;
      } else {
        std::uint64_t m = match_tag(gm.tags.load(std::memory_order_relaxed), p.tag);
        bool retry = false;
        for (; m; m &= m - 1) {
          alignas(value_type) unsigned char buf[sizeof(value_type)];
          racy_load(buf, t->slot(p.g, first_slot(m)));
          const value_type& x = *std::launder(reinterpret_cast<const value_type*>(buf));
          std::atomic_thread_fence(std::memory_order_acquire);
          if (gm.seq.load(std::memory_order_relaxed) != s1) {
            retry = true;
            break;
          }
          if (eq_(x.first, k)) {
            visiting_scope_for<F> vs(this);
            f(x);
            return 1;
          }
        }
        if (!retry) {
          std::atomic_thread_fence(std::memory_order_acquire);
          retry = gm.seq.load(std::memory_order_relaxed) != s1;
        }
        if (retry) {
          --probes;
          continue;
        }
      }
      if ((ovf & p.obit) == 0) return saw_moved ? -1 : 0;
      p.next();
    }
    return saw_moved ? -1 : 0;
  }

  template <class F>
  int read_locked(const table* t, const K& k, std::uint64_t h, F& f, bool& saw_moved) const {
    probe p(t, h);
    for (std::size_t probes = 0; probes < p.n; ++probes, p.next()) {
      group_meta& gm = t->groups[p.g];
      if (lock_group(gm, true) == lock_status::moved) {
        saw_moved = true;
        if ((gm.overflow.load(std::memory_order_relaxed) & p.obit) == 0) return -1;
        continue;
      }
      group_lock gl(&gm);
      for (std::uint64_t m = match_tag(gm.tags.load(std::memory_order_relaxed), p.tag); m;
           m &= m - 1) {
        const value_type& x = *t->slot(p.g, first_slot(m));
        if (eq_(x.first, k)) {
          visiting_scope_for<F> vs(this);
          f(x);
          return 1;
        }
      }
      if ((gm.overflow.load(std::memory_order_relaxed) & p.obit) == 0) return saw_moved ? -1 : 0;
    }
    return saw_moved ? -1 : 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Writing
  // ---------------------------------------------------------------------------------------------
  enum class locate_status { found, absent, moved, busy };

  // Result of a writer's probe. Holds the home group's lock, and the lock of the group where the
  // key was found or where it should be inserted.
  struct locate_result {
    locate_status status = locate_status::absent;
    std::size_t group = 0;  // found: the key's group; absent: the insertion group
    unsigned slot = 0;
    std::size_t passed_from = 0;  // absent: groups [home, group) need the key's overflow bit
    group_lock home;
    group_lock other;
    PARDICT_ALWAYS_INLINE void release() noexcept {
      other.release();
      home.release();
    }
  };

  // Probe for k with the home group locked. On `found` the key's group is locked; on `absent`
  // (when want_slot) the first group with a free slot is locked and `slot` is that free slot; if
  // the table has no free slot reachable, status is absent with group == npos.
  locate_result locate(table* t, const K& k, std::uint64_t h, bool want_slot = false) {
    locate_result r;
    probe p(t, h);
    const std::size_t home = p.g;
    prefetch_slots(t, home, h, want_slot);
    if (lock_group(t->groups[home], true) == lock_status::moved) {
      r.status = locate_status::moved;
      return r;
    }
    r.home = group_lock(&t->groups[home]);
    constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    std::size_t target = npos;
    unsigned target_slot = 0;
    bool keep_probing_for_slot = false;
    for (std::size_t probes = 0; probes < p.n; ++probes) {
      const std::size_t g = p.g;
      group_meta& gm = t->groups[g];
      group_lock gl;
      if (g != home) {
        const lock_status ls = lock_group(gm, false);
        if (ls != lock_status::acquired) {
          // Give everything back: the caller is about to help a migration or retry, and must not
          // hold a group that a migrator (or the thread we wait for) needs.
          r.release();
          r.status = ls == lock_status::moved ? locate_status::moved : locate_status::busy;
          return r;
        }
        gl = group_lock(&gm);
      }
      const std::uint64_t tags = gm.tags.load(std::memory_order_relaxed);
      if (!keep_probing_for_slot) {
        for (std::uint64_t m = match_tag(tags, p.tag); m; m &= m - 1) {
          const unsigned j = first_slot(m);
          if (eq_(t->slot(g, j)->first, k)) {
            r.status = locate_status::found;
            r.group = g;
            r.slot = j;
            if (g != home) r.other = std::move(gl);
            return r;
          }
        }
      }
      if (want_slot && target == npos) {
        const std::uint64_t e = match_empty(tags);
        if (e != 0) {
          target = g;
          target_slot = pick_free(e, h);
          if (g != home) r.other = std::move(gl);
          if (keep_probing_for_slot) break;
        }
      }
      if (!keep_probing_for_slot && (gm.overflow.load(std::memory_order_relaxed) & p.obit) == 0) {
        // The key is absent. Keep walking only to find a free slot.
        if (!want_slot || target != npos) break;
        keep_probing_for_slot = true;
      }
      p.next();
      if (p.g == home) break;
    }
    r.status = locate_status::absent;
    r.group = target;
    r.slot = target_slot;
    r.passed_from = home;
    return r;
  }

  // Make is a callable that constructs the element, or visit_only: an absent key stays absent.
  template <class Access, class Make, class OnFound>
  PARDICT_ALWAYS_INLINE write_outcome upsert_hashed(const K& k, std::uint64_t h, Make& make,
                                                    OnFound& on_found) {
    const write_outcome fast = upsert_home<Access>(k, h, make, on_found);
    if (fast != write_outcome::undecided) [[likely]]
      return fast;
    return upsert_general<Access>(k, h, make, on_found);
  }

  // The general write path, out of line: kept apart, the fast path above saves and restores only
  // the registers it uses.
  template <class Access, class Make, class OnFound>
  PARDICT_NOINLINE write_outcome upsert_general(const K& k, std::uint64_t h, Make& make,
                                                OnFound& on_found) {
    constexpr bool inserts = !std::is_same_v<Make, visit_only>;
    shard& s = shard_of(h);
    for (;;) {
      table* t = s.cur.load(std::memory_order_acquire);
      if (t == nullptr) {
        if (!inserts) return write_outcome::absent;
        install_first_table(s, min_groups);
        continue;
      }
      locate_result r = locate(t, k, h, inserts);
      switch (r.status) {
        case locate_status::moved:
          r.release();
          help_migrate(s, t);
          continue;
        case locate_status::busy:
          r.release();
          std::this_thread::yield();
          continue;
        case locate_status::found: {
          value_type* e = t->slot(r.group, r.slot);
          visiting_scope_for<OnFound> vs(this);
          apply_visitor<Access>(e, on_found);
          return write_outcome::found;
        }
        case locate_status::absent:
          break;
      }
      if constexpr (!inserts) {
        return write_outcome::absent;
      } else {
        if (t->next.load(std::memory_order_acquire) != nullptr) {
          // t is being migrated: add nothing to it (the new table was sized for what t held), help
          // finish, and insert into the new table.
          r.release();
          help_migrate(s, t);
          continue;
        }
        if (r.group == std::numeric_limits<std::size_t>::max()) {
          // No free slot anywhere on the probe path: the table is full. Grow, then retry.
          r.release();
          grow(s, t);
          continue;
        }
        // Mark the groups the key passes over, then publish it.
        const std::uint32_t obit = overflow_bit(h);
        std::size_t walked = 0;
        for (std::size_t g = r.passed_from; g != r.group; g = next_group(g, t->ngroups)) {
          t->groups[g].overflow.fetch_or(obit, std::memory_order_relaxed);
          ++walked;
        }
        construct_in(t, r.group, r.slot, make);
        group_meta& gm = t->groups[r.group];
        gm.tags.store(with_tag(gm.tags.load(std::memory_order_relaxed), r.slot, tag_of(h)),
                      std::memory_order_relaxed);
        r.release();
        note_insert(s, t);
        if (walked > in_order_max_walk && in_order(t)) [[unlikely]] {
          remix(s, t);
        }
        return write_outcome::inserted;
      }
    }
  }

  template <class Make>
  void construct_in(table* t, std::size_t g, unsigned j, Make& make) {
    construct_at(t->slot(g, j), make);
  }
  template <class Make>
  void construct_at(value_type* e, Make& make) {
    // The element is built under its group's lock: a constructor that calls back into this map
    // gets a reentrancy_error instead of deadlocking on that lock.
    visiting_scope_for<Make> vs(this);
    if constexpr (optimistic) {
      // Build privately, then store word by word: a reader may be copying this slot (matching a
      // stale tag) and must see only atomic stores.
      alignas(value_type) unsigned char buf[sizeof(value_type)];
      // racy_store copies whole words, padding included: give the padding between key and value
      // (e.g. an 8-byte key with a 4-byte value) a defined value rather than stack garbage.
      if constexpr (sizeof(value_type) != sizeof(K) + sizeof(V)) std::memset(buf, 0, sizeof buf);
      make(static_cast<void*>(buf));
      racy_store(e, buf);
    } else {
      make(static_cast<void*>(e));
    }
  }

  // Runs a visitor on the element e of a locked group. A mutating visitor of a plain-bytes
  // element works on a private copy that is stored back whole with word-wise atomic stores, since
  // optimistic readers may be copying the slot meanwhile; a const visitor reads e itself.
  template <class Access, class F>
  PARDICT_ALWAYS_INLINE void apply_visitor(value_type* e, F& f) {
    if constexpr (std::is_same_v<std::remove_cvref_t<F>, no_visit>) {
      return;
    } else if constexpr (std::is_same_v<Access, const_tag>) {
      f(static_cast<const value_type&>(*e));
    } else if constexpr (optimistic) {
      static_assert(std::is_same_v<Access, mutating_tag>);
      alignas(value_type) unsigned char buf[sizeof(value_type)];
      std::memcpy(buf, static_cast<const void*>(e), sizeof(value_type));
      f(*std::launder(reinterpret_cast<value_type*>(buf)));
      racy_store(e, buf);
    } else {
      f(*e);
    }
  }

  void remove_from_locked_group(shard& s, table* t, std::size_t g, unsigned j) {
    group_meta& gm = t->groups[g];
    gm.tags.store(with_tag(gm.tags.load(std::memory_order_relaxed), j, 0),
                  std::memory_order_relaxed);
    if constexpr (!std::is_trivially_destructible_v<value_type>) t->slot(g, j)->~value_type();
    // A slot in an overflowed group stays charged: probes keep passing it until a rebuild.
    const bool frees_budget = (gm.overflow.load(std::memory_order_relaxed) & overflow_mask) == 0;
    account(s, t, -1, frees_budget ? -1 : 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Growth and migration
  // ---------------------------------------------------------------------------------------------

  // Called when t's budget is exhausted or t is full.
  void grow(shard& s, table* t) {
    if (s.cur.load(std::memory_order_acquire) != t) return;  // already replaced
    if (t->next.load(std::memory_order_acquire) != nullptr) {
      help_migrate(s, t);
      return;
    }
    const std::size_t live = live_estimate(t);
    const std::size_t want =
        std::max(groups_for(live * 2),
                 live * 2 > t->ngroups * group_width * max_load ? t->ngroups * 2 : t->ngroups);
    // An in-order table whose keys are mostly not small integers (random ids) gains nothing from
    // its placement, and its growth would send each old group's elements to scattered new
    // groups: it grows into a seeded table, whose migration writes consecutive ones.
    const bool seeded = in_order(t) && !keys_look_in_order(t);
    start_migration(s, t, want, seeded ? migration::remix : migration::grow);
  }

  // Whether at least half of up to 64 elements, from groups spread over t, take the in-order
  // hash. Each sampled group is locked while its keys are read.
  bool keys_look_in_order(table* t) const noexcept {
    if constexpr (!engine_hash_t::in_order) {
      return false;
    } else {
      constexpr std::size_t sample = 64;
      const std::size_t step = std::max<std::size_t>(1, t->ngroups / sample);
      std::size_t seen = 0, in_order_keys = 0;
      for (std::size_t g = 0; g < t->ngroups && seen < sample; g += step) {
        group_meta& gm = t->groups[g];
        if (lock_group(gm, true) != lock_status::acquired) break;  // moved: t is migrating
        group_lock gl(&gm);
        for (std::uint64_t occ = match_full(gm.tags.load(std::memory_order_relaxed));
             occ && seen < sample; occ &= occ - 1) {
          ++seen;
          if (engine_hash_t::in_order_key(hash_, t->slot(g, first_slot(occ))->first)) {
            ++in_order_keys;
          }
        }
      }
      return 2 * in_order_keys >= seen;
    }
  }

  // An in-order table whose keys pile up (a walk past in_order_max_walk full groups) moves to a
  // seeded table of the same size: the fallback of "In-order placement" in the essay. Out of
  // line: it happens at most once per shard between clears.
  PARDICT_NOINLINE void remix(shard& s, table* t) {
    if (s.cur.load(std::memory_order_acquire) != t) return;  // replaced meanwhile
    if (t->next.load(std::memory_order_acquire) != nullptr) {
      help_migrate(s, t);
      return;
    }
    start_migration(s, t, t->ngroups, migration::remix);
  }

  // Returns false if another thread had already replaced or started migrating t (in which case
  // this thread helped it finish).
  enum class migration : unsigned char {
    grow,   // growth or shrinking: the new table keeps the old one's seed
    drop,   // clear(): elements are destroyed, the new table starts as a first table does
    remix,  // an in-order table met patterned keys: the new table is seeded
  };
  bool start_migration(shard& s, table* t, std::size_t ngroups, migration kind) {
    const bool drop = kind == migration::drop;
    bool started = false;
    {
      std::lock_guard<std::mutex> lk(s.resize_mutex);
      if (s.cur.load(std::memory_order_acquire) != t) return false;
      if (t->next.load(std::memory_order_acquire) == nullptr) {
        if (!drop && ngroups < t->ngroups) ngroups = freeze_and_fit(t, ngroups);
        table* nt;
        try {
          // Growth and shrinking keep the seed, so that a chunk's elements land in consecutive
          // groups of the new table; clear() starts over as a first table does.
          nt = allocate_table(ngroups, drop                       ? first_seed()
                                       : kind == migration::remix ? fresh_table_seed()
                                                                  : t->seed);
        } catch (...) {
          t->next.store(nullptr, std::memory_order_release);  // undo a freeze
          throw;
        }
        t->drop = drop;
        t->next.store(nt, std::memory_order_release);
        started = true;
      }
    }
    help_migrate(s, t);
    return started;
  }

  // A new table smaller than the old one could run out of room while elements move, so before
  // shrinking: stop inserts into t (they see `next` set and wait), then count its elements
  // exactly by taking each group lock once — a writer that inserted without seeing the freeze
  // still held its home group's lock, so the count includes its element.
  std::size_t freeze_and_fit(table* t, std::size_t ngroups) {
    t->next.store(freezing(), std::memory_order_seq_cst);
    std::size_t live = 0;
    for (std::size_t g = 0; g < t->ngroups; ++g) {
      group_meta& gm = t->groups[g];
      lock_group(gm, true);
      live += static_cast<std::size_t>(
          std::popcount(match_full(gm.tags.load(std::memory_order_relaxed))));
      unlock_group(gm);
    }
    return std::max(ngroups, groups_for(live));
  }

  static table* freezing() noexcept { return reinterpret_cast<table*>(alignof(table)); }

  // Migrate chunks of t until none is left, then sleep until the migration is installed.
  void help_migrate(shard& s, table* t) {
    table* nt = t->next.load(std::memory_order_acquire);
    if (nt == nullptr) return;  // t was current and not migrating: the caller just retries
    for (backoff b; nt == freezing(); nt = t->next.load(std::memory_order_acquire)) {
      if (b.pause()) std::this_thread::yield();  // a shrink is counting; it takes microseconds
    }
    if (nt == nullptr) return;  // the shrink failed to allocate
    const std::size_t nchunks = t->nchunks();
    for (;;) {
      const std::size_t c = t->next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) break;
      migrate_chunk(t, nt, c);
      if (t->chunks_done.fetch_add(1, std::memory_order_acq_rel) + 1 == nchunks) {
        finish_migration(s, t, nt);
      }
    }
    wait_while_zero(t->done);
  }

  // platform::wait_on, not w.wait(): where libstdc++ has no futex (mingw-w64) its atomic wait
  // falls back to a shared pool of condition variables, which was seen under wine to miss a
  // wake-up (tests/cpp/support/counting.hpp); WaitOnAddress has no such pool.
  static void wait_while_zero(std::atomic<std::uint32_t>& w) noexcept {
    backoff b;
    while (w.load(std::memory_order_acquire) == 0) {
      if (b.pause()) platform::wait_on(w, 0);
    }
  }

  void finish_migration(shard& s, table* t, table* nt) {
    const std::int64_t moved = t->moved_elements.load(std::memory_order_relaxed);
    nt->budget.fetch_sub(moved, std::memory_order_relaxed);
    s.cur.store(nt, std::memory_order_release);
    t->done.store(1, std::memory_order_release);
    platform::wake_all(t->done);
    retire(t);
  }

  void migrate_chunk(table* t, table* nt, std::size_t c) {
    const std::size_t first = c * chunk_groups;
    const std::size_t last = std::min(t->ngroups, first + chunk_groups);
    std::int64_t moved = 0;
    std::int64_t dropped = 0;
    // The group index is monotonic in the position and both tables have one seed, so consecutive
    // old groups land on consecutive new groups: keep the last target group locked while the next
    // element goes to the same one.
    target_group target;
    for (std::size_t g = first; g < last; ++g) {
      group_meta& gm = t->groups[g];
      lock_group(gm, true);  // never `moved`: each group belongs to exactly one chunk
      std::uint64_t occ = match_full(gm.tags.load(std::memory_order_relaxed));
      for (; occ; occ &= occ - 1) {
        value_type* e = t->slot(g, first_slot(occ));
        if (t->drop) {
          if constexpr (!std::is_trivially_destructible_v<value_type>) e->~value_type();
          ++dropped;
        } else {
          move_into(nt, e, target);
          ++moved;
        }
      }
      // Publish the copies before the old group says "moved": readers that see the mark look in
      // the new table next.
      target.release();
      unlock_group(gm, /*mark_moved=*/true);
    }
    if (moved) t->moved_elements.fetch_add(moved, std::memory_order_relaxed);
    if (dropped) add_live(my_cell(), -dropped);
  }

  // The one new-table group a migrator may keep locked between elements (never more than one, so
  // migrators cannot deadlock on each other), with its tags word kept here and stored once, just
  // before the unlock: nothing else writes it meanwhile, and readers wait for the lock.
  struct target_group {
    group_lock lock;
    std::uint64_t tags = 0;
    target_group() = default;
    target_group(const target_group&) = delete;
    target_group& operator=(const target_group&) = delete;
    ~target_group() { release(); }
    PARDICT_ALWAYS_INLINE void take(group_meta& gm) noexcept {
      release();
      lock_group(gm, true);
      lock = group_lock(&gm);
      tags = gm.tags.load(std::memory_order_relaxed);
    }
    PARDICT_ALWAYS_INLINE void release() noexcept {
      if (group_meta* gm = lock.get()) {
        gm->tags.store(tags, std::memory_order_relaxed);
        lock.release();
      }
    }
  };

  // Insert an element known to be absent into a table that only migrators write. Straight-line
  // for the common case, a free slot in the home group; past a full group, the probe sets the
  // group's overflow bit for the key's class and goes on, as an insert does.
  PARDICT_ALWAYS_INLINE void move_into(table* nt, value_type* e, target_group& held) noexcept {
    const std::uint64_t h = hash_of(e->first);
    std::size_t g = home_of(h, nt);
    for (;;) {
      group_meta& gm = nt->groups[g];
      if (held.lock.get() != &gm) held.take(gm);
      const std::uint64_t empty = match_empty(held.tags);
      if (empty != 0) [[likely]] {
        const unsigned j = pick_free(empty, h);
        value_type* dst = nt->slot(g, j);
        if constexpr (optimistic) {
          racy_store(dst, e);
        } else {
          ::new (static_cast<void*>(dst))
              value_type(std::move(const_cast<K&>(e->first)), std::move_if_noexcept(e->second));
          e->~value_type();
        }
        held.tags = with_tag(held.tags, j, tag_of(h));
        return;
      }
      gm.overflow.fetch_or(overflow_bit(h), std::memory_order_relaxed);
      g = next_group(g, nt->ngroups);
    }
  }

  // Calls fn(shard, table, group, slot) for every element, with the element's group locked and its
  // shard held at its current table. The occupancy mask is read once per group, so fn may remove
  // the element it is given.
  template <class Fn>
  void for_each_locked(Fn&& fn) {
    for (std::size_t si = 0; si < shard_count; ++si) {
      shard& s = shards_[si];
      std::unique_lock<std::mutex> lk(s.resize_mutex);
      table* t = settle(s, lk);
      if (t == nullptr) continue;
      for (std::size_t g = 0; g < t->ngroups; ++g) {
        group_meta& gm = t->groups[g];
        lock_group(gm, true);
        group_lock gl(&gm);
        for (std::uint64_t occ = match_full(gm.tags.load(std::memory_order_relaxed)); occ;
             occ &= occ - 1) {
          fn(s, t, g, first_slot(occ));
        }
      }
    }
  }

  // Under s.resize_mutex: finish any migration in flight and return the stable current table.
  table* settle(shard& s, std::unique_lock<std::mutex>& lk) {
    for (;;) {
      table* t = s.cur.load(std::memory_order_acquire);
      if (t == nullptr || t->next.load(std::memory_order_acquire) == nullptr) return t;
      lk.unlock();
      help_migrate(s, t);
      lk.lock();
    }
  }
};

}  // namespace detail
}  // namespace pardict
