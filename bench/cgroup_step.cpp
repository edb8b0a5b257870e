// The cgroup step of a jail's start, in-process: plan, create (mkdir + limits), the move into it
// (by pid from outside, or the child joining by itself as stockade does) and remove (rmdir),
// p50/p90 over 300 paced rounds. Root; leaves nothing behind.
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
  // Rounds are paced 10 ms apart, as launches are: the kernel's threadgroup lock goes idle in
  // between, so a move by pid pays the RCU grace period a launch would pay. Even rounds move the
  // child by pid from here (attach), odd ones let the child move itself (join_fds).
  std::vector<double> plan_t, create_t, attach_t, join_t, remove_t;
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "00bench%05d", i);
    usleep(10000);
    auto t0 = C::now();
    auto plan = cgroup::plan_jail(cgroup::host_layout(), lim, "", id);
    auto t1 = C::now();
    auto cg = cgroup::create(*plan, lim);
    auto t2 = C::now();
    if (!cg) {
      std::fprintf(stderr, "bench_cgroup_step: %s\n", cg.error().message().c_str());
      return 1;
    }
    bool by_self = i % 2 == 1;
    auto fds = cg->join_fds();
    int go[2], took[2];
    if (pipe(go) != 0 || pipe(took) != 0) return 1;
    pid_t p = fork();
    if (p == 0) {
      char c;
      if (read(go[0], &c, 1) != 1) _exit(1);
      if (by_self) {
        auto a = C::now();
        for (auto& fd : *fds)
          if (write(fd.get(), "0", 1) != 1) _exit(1);
        double t = us(a, C::now());
        if (write(took[1], &t, sizeof t) != sizeof t) _exit(1);
      }
      pause();
      _exit(0);
    }
    double moved = 0;
    if (!by_self) {
      auto t3 = C::now();
      (void)cg->attach(p);
      moved = us(t3, C::now());
    }
    if (write(go[1], "g", 1) != 1) return 1;
    if (by_self && read(took[0], &moved, sizeof moved) != sizeof moved) return 1;
    for (int fd : {go[0], go[1], took[0], took[1]}) close(fd);
    fds->clear();
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
    auto t5 = C::now();
    (void)cg->remove();
    auto t6 = C::now();
    if (i >= 10) {
      plan_t.push_back(us(t0, t1));
      create_t.push_back(us(t1, t2));
      (by_self ? join_t : attach_t).push_back(moved);
      remove_t.push_back(us(t5, t6));
    }
  }
  std::printf("%s\n", three ? "pids+memory+cpu (3 v1 hierarchies)" : "pids only (default)");
  report("plan", plan_t);
  report("create (mkdir + limits)", create_t);
  report("attach by pid (cgroup.procs)", attach_t);
  report("join: child writes 0 (tasks)", join_t);
  report("remove (rmdir)", remove_t);
}
