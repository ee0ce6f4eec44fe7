// Out of memory: an insert that cannot allocate returns PARDICT_ERR_NOMEM, leaves the dictionary
// usable, and is counted on the dictionary (pardict_take_alloc_failures), so that a caller that
// drops statuses (numba's workqueue prange) can still learn that inserts are missing. Run in a
// child process whose address space is capped with RLIMIT_AS.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

#include "pardict_capi.h"
#include "support/counting.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PARDICT_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PARDICT_TEST_SANITIZED 1
#endif

namespace {

// The process's current address-space size in bytes.
std::uint64_t vm_bytes() {
  unsigned long pages = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

int run_out_of_memory() {
  std::int32_t st;
  pardict_dict* d = pardict_new(8, 8, 0, 0, 0, 0, &st);
  if (st != PARDICT_OK) return 30;
  rlimit old{};
  if (getrlimit(RLIMIT_AS, &old) != 0) return 31;
  const std::uint64_t vm = vm_bytes();
  if (vm == 0) return 32;
  rlimit capped = old;
  capped.rlim_cur = static_cast<rlim_t>(vm + (std::uint64_t{96} << 20));
  if (setrlimit(RLIMIT_AS, &capped) != 0) return 33;
  std::int64_t inserted = 0, failed = 0;
  for (std::uint64_t i = 0; i < (std::uint64_t{1} << 28) && failed < 3; ++i) {
    const auto k = static_cast<std::int64_t>(pardict_test::mix64(i));
    const std::int32_t r = pardict_set(d, &k, &k, nullptr);
    if (r == PARDICT_ERR_NOMEM) {
      ++failed;
    } else if (r == PARDICT_INSERTED) {
      ++inserted;
    } else {
      return 34;
    }
  }
  if (failed == 0) return 35;  // never ran out
  if (pardict_take_alloc_failures(d) != failed) return 36;
  if (pardict_take_alloc_failures(d) != 0) return 37;  // taken: reset
  if (pardict_len(d) != inserted) return 38;
  // With room again the dictionary grows and takes inserts as before.
  if (setrlimit(RLIMIT_AS, &old) != 0) return 39;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const auto k = static_cast<std::int64_t>(pardict_test::mix64(i + (std::uint64_t{1} << 40)));
    if (pardict_set(d, &k, &k, nullptr) != PARDICT_INSERTED) return 40;
  }
  if (pardict_len(d) != inserted + 1000) return 41;
  if (pardict_take_alloc_failures(d) != 0) return 42;
  pardict_free(d);
  return 0;
}

}  // namespace

TEST(CapiOutOfMemory, FailedInsertsAreCountedOnTheDictionary) {
#ifdef PARDICT_TEST_SANITIZED
  GTEST_SKIP() << "sanitizers reserve more address space than RLIMIT_AS allows";
#else
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(run_out_of_memory());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
#endif
}
