// The cgroup step of a jail's start, in-process: plan, create (mkdir + limits), attach
// (cgroup.procs) and remove (rmdir), p50/p90 over 300 rounds. Root; leaves nothing behind.
//   cmake --build build --target bench_cgroup_step && build/bench_cgroup_step [three]
// "three" adds a memory and a cpu limit (on a hybrid host: three v1 hierarchies).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "cgroup/cgroup.hpp"
using C = std::chrono::steady_clock;
static double us(C::time_point a, C::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}
static void report(const char* n, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-28s p50 %7.1f us  p90 %7.1f us\n", n, v[v.size() / 2], v[v.size() * 9 / 10]);
}
int main(int argc, char**) {
  int n = 300;
  bool three = argc > 1;
  cgroup::Limits lim;
  lim.pids = 4096;
  if (three) {
    lim.memory_bytes = 256ull << 20;
    lim.cpu_ms_per_sec = 1000;
  }
  std::vector<double> plan_t, create_t, attach_t, remove_t;
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "00bench%05d", i);
    auto t0 = C::now();
    auto plan = cgroup::plan_jail(cgroup::host_layout(), lim, "", id);
    auto t1 = C::now();
    auto cg = cgroup::create(*plan, lim);
    auto t2 = C::now();
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    auto t3 = C::now();
    (void)cg->attach(p);
    auto t4 = C::now();
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
    auto t5 = C::now();
    (void)cg->remove();
    auto t6 = C::now();
    if (i >= 10) {
      plan_t.push_back(us(t0, t1));
      create_t.push_back(us(t1, t2));
      attach_t.push_back(us(t3, t4));
      remove_t.push_back(us(t5, t6));
    }
  }
  std::printf("%s\n", three ? "pids+memory+cpu (3 v1 hierarchies)" : "pids only (default)");
  report("plan", plan_t);
  report("create (mkdir + limits)", create_t);
  report("attach (cgroup.procs)", attach_t);
  report("remove (rmdir)", remove_t);
}
