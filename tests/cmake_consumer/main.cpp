// Checks that an installed pardict compiles, links and works: returns nonzero on any failure.
#include <cstdint>
#include <cstdio>
#include <pardict/concurrent_map.hpp>
#include <string>
#include <thread>
#include <vector>

int main() {
  pardict::concurrent_map<std::int64_t, std::string> map;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&map, t] {
      for (std::int64_t i = t; i < 1000; i += 2) map.insert({i, std::to_string(i)});
    });
  }
  for (auto& th : threads) th.join();

  int failures = 0;
  if (map.size() != 1000) {
    std::fprintf(stderr, "size() is %zu, expected 1000\n", map.size());
    ++failures;
  }
  for (std::int64_t i = 0; i < 1000; ++i) {
    const auto v = map.find(i);
    if (!v || *v != std::to_string(i)) ++failures;
  }
  if (map.contains(1000)) ++failures;
  std::printf("pardict consumer: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
