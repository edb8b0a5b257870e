// cgroups: each jail's limits (pids, memory, cpu, devices) enforced by its own cgroup, which it
// sees as its root and which is gone when it ends. The pure parts (layout detection, the plan,
// the files written) are tested without a kernel, for v1 and v2 alike.
#include "cgroup/cgroup.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/sys.hpp"
#include "policy/spec.hpp"
#include "tests/support.hpp"

namespace {

// This VM's mountinfo: controllers on v1, an empty v2 at /sys/fs/cgroup/unified.
const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// A systemd host: pure v2.
const char* kPureV2 =
    "25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

cgroup::Limits all_limits() {
  cgroup::Limits l;
  l.memory_bytes = 64ull << 20;
  l.pids = 32;
  l.cpu_ms_per_sec = 200;
  return l;
}

std::vector<std::string> writes_text(const std::vector<cgroup::Write>& w) {
  std::vector<std::string> out;
  for (auto& x : w) out.push_back(x.path + "=" + x.text);
  return out;
}

// Jail directories under every hierarchy's stockade/ right now.
std::set<std::string> jail_cgroup_dirs() {
  std::set<std::string> out;
  for (auto& [path, id] : cgroup::list_jail_dirs(cgroup::host_layout(), "")) out.insert(path);
  return out;
}

}  // namespace

TEST_CASE("cgroup layouts are read from mountinfo: v1 controllers and the v2 mount", "[cgroup]") {
  auto l = cgroup::parse_layout(kHybrid, "hugetlb");
  CHECK(l.v1.at("memory") == "/sys/fs/cgroup/memory");
  CHECK(l.v1.at("pids") == "/sys/fs/cgroup/pids");
  CHECK(l.v1.at("cpu") == "/sys/fs/cgroup/cpu");
  CHECK(!l.v1.contains("name=systemd"));
  CHECK(l.v2 == "/sys/fs/cgroup/unified");
  CHECK(l.v2_controllers == std::vector<std::string>{"hugetlb"});

  auto v2 = cgroup::parse_layout(kPureV2, "cpuset cpu io memory pids");
  CHECK(v2.v1.empty());
  CHECK(v2.v2 == "/sys/fs/cgroup");
}

TEST_CASE("a directory that is not a cgroup2 mount is no pure v2 host", "[cgroup]") {
  test::TempDir tmp;
  std::ofstream(tmp.path() + "/cgroup") << "0::/\n";
  CHECK_FALSE(cgroup::pure_v2_layout(tmp.path(), tmp.path() + "/cgroup"));
  CHECK_FALSE(cgroup::pure_v2_layout(tmp.path() + "/missing", tmp.path() + "/cgroup"));
}

// The launch path's shortcut past /proc/self/mountinfo. This host is hybrid, so a cgroup2 is
// mounted in a private mount namespace (never the host's) and /proc/self/cgroup is played by
// files: the shortcut must take exactly the hosts with no v1 hierarchy.
TEST_CASE("a pure v2 host is recognised from its cgroup2 mount and /proc/self/cgroup",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  test::TempDir tmp;
  const std::string mnt = tmp.path() + "/cg";
  REQUIRE(::mkdir(mnt.c_str(), 0755) == 0);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(tmp.path() + "/" + name) << text;
    return tmp.path() + "/" + name;
  };
  const std::string pure = write("pure", "0::/user.slice/session-1.scope\n");
  const std::string v1 = write("v1", "12:pids:/user.slice\n0::/user.slice\n");
  const std::string named = write("named", "1:name=systemd:/\n0::/\n");
  const std::string empty = write("empty", "");
  int out[2];
  REQUIRE(::pipe(out) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(out[0]);
    std::string r;
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("cgroup2", mnt.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
            0) {
      r = std::string("setup: ") + std::strerror(errno);
    } else {
      // key=value lines, checked by the parent.
      auto l = cgroup::pure_v2_layout(mnt, pure);
      r = "v2=" + (l ? l->v2 : "none") + "\nv1=" + (l ? std::to_string(l->v1.size()) : "") +
          "\ncontrollers=";
      if (l)
        for (auto& c : l->v2_controllers) r += c + " ";
      r += "\nexpected=";
      std::ifstream in(mnt + "/cgroup.controllers");
      for (std::string c; in >> c;) r += c + " ";
      r += "\nothers=";  // T(aken) or R(efused), for each of these
      for (const auto& f : {v1, named, empty, tmp.path() + "/missing"})
        r += cgroup::pure_v2_layout(mnt, f) ? 'T' : 'R';
    }
    (void)!::write(out[1], r.data(), r.size());
    ::_exit(0);
  }
  ::close(out[1]);
  std::string r;
  char buf[512];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) r.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(r);
  std::map<std::string, std::string> got;
  std::istringstream lines(r);
  for (std::string line; std::getline(lines, line);)
    if (auto eq = line.find('='); eq != std::string::npos)
      got[line.substr(0, eq)] = line.substr(eq + 1);
  CHECK(got["v2"] == mnt);
  CHECK(got["v1"] == "0");
  CHECK(got["controllers"] == got["expected"]);  // the mount's own cgroup.controllers
  CHECK(got["others"] == "RRRR");  // a v1 hierarchy, a named one, an empty or a missing file
  // The mount was the private namespace's only: the host's table never saw it.
  CHECK(test::host_mounts_mentioning(mnt) == 0);
}

TEST_CASE("on a hybrid host every limit goes to its v1 hierarchy under stockade/ID", "[cgroup]") {
  auto l = cgroup::parse_layout(kHybrid, "");
  auto plan = cgroup::plan_jail(l, all_limits(), "", "abc123");
  REQUIRE(plan);
  CHECK(plan->version == cgroup::Version::kV1);
  CHECK(plan->dirs == std::vector<std::string>{"/sys/fs/cgroup/pids/stockade/abc123",
                                               "/sys/fs/cgroup/memory/stockade/abc123",
                                               "/sys/fs/cgroup/cpu/stockade/abc123",
                                               "/sys/fs/cgroup/cpuacct/stockade/abc123"});
  auto w = writes_text(cgroup::limit_writes(*plan, all_limits()));
  CHECK(w == std::vector<std::string>{
                 "/sys/fs/cgroup/pids/stockade/abc123/pids.max=32",
                 "/sys/fs/cgroup/memory/stockade/abc123/memory.limit_in_bytes=67108864",
                 "/sys/fs/cgroup/memory/stockade/abc123/memory.memsw.limit_in_bytes=67108864",
                 "/sys/fs/cgroup/cpu/stockade/abc123/cpu.cfs_period_us=100000",
                 "/sys/fs/cgroup/cpu/stockade/abc123/cpu.cfs_quota_us=20000"});
  auto parented = cgroup::plan_jail(l, all_limits(), "tenants/a", "abc123");
  REQUIRE(parented);
  CHECK(parented->dirs[0] == "/sys/fs/cgroup/pids/tenants/a/stockade/abc123");
}

TEST_CASE("on cgroup v2 one directory holds every limit and swap is turned off", "[cgroup]") {
  auto l = cgroup::parse_layout(kPureV2, "cpuset cpu io memory pids");
  auto plan = cgroup::plan_jail(l, all_limits(), "", "abc123");
  REQUIRE(plan);
  CHECK(plan->version == cgroup::Version::kV2);
  CHECK(plan->dirs == std::vector<std::string>{"/sys/fs/cgroup/stockade/abc123"});
  CHECK(plan->parents == std::vector<std::string>{"/sys/fs/cgroup/stockade"});
  auto w = writes_text(cgroup::limit_writes(*plan, all_limits()));
  CHECK(w == std::vector<std::string>{"/sys/fs/cgroup/stockade/abc123/pids.max=32",
                                      "/sys/fs/cgroup/stockade/abc123/memory.max=67108864",
                                      "/sys/fs/cgroup/stockade/abc123/memory.swap.max=0",
                                      "/sys/fs/cgroup/stockade/abc123/cpu.max=20000 100000"});
}

TEST_CASE("a cpu share under the kernel's 1 ms quota minimum uses a one-second period",
          "[cgroup]") {
  auto l = cgroup::parse_layout(kPureV2, "cpu");
  cgroup::Limits lim;
  lim.cpu_ms_per_sec = 5;
  auto plan = cgroup::plan_jail(l, lim, "", "x1");
  REQUIRE(plan);
  CHECK(writes_text(cgroup::limit_writes(*plan, lim)) ==
        std::vector<std::string>{"/sys/fs/cgroup/stockade/x1/cpu.max=5000 1000000"});
}

TEST_CASE("a limit the host cannot enforce is refused with the controller and the reason",
          "[cgroup]") {
  auto l = cgroup::parse_layout(kPureV2, "cpu pids");
  auto plan = cgroup::plan_jail(l, all_limits(), "", "x1");
  REQUIRE(!plan);
  CHECK(plan.error().what.find("memory") != std::string::npos);
  CHECK(plan.error().what.find("subtree_control") != std::string::npos);

  auto none = cgroup::parse_layout("", "");
  auto p2 = cgroup::plan_jail(none, all_limits(), "", "x1");
  REQUIRE(!p2);
  CHECK(p2.error().what.find("no cgroup filesystem") != std::string::npos);

  // v1 without a cpu hierarchy: named, never skipped.
  auto partial = cgroup::parse_layout(
      "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
      "");
  auto p3 = cgroup::plan_jail(partial, all_limits(), "", "x1");
  REQUIRE(!p3);
  CHECK(p3.error().what.find("cpu") != std::string::npos);

  // Devices on v2 need no controller (a BPF program does it) and write no file.
  cgroup::Limits dev;
  dev.devices.push_back({'c', 10, 200, "rw", "/dev/net/tun"});
  auto p4 = cgroup::plan_jail(cgroup::parse_layout(kPureV2, ""), dev, "", "x1");
  REQUIRE(p4);
  CHECK(p4->version == cgroup::Version::kV2);
  CHECK(cgroup::limit_writes(*p4, dev).empty());
}

TEST_CASE("the device controller denies everything but /dev's basics and the named nodes",
          "[cgroup]") {
  auto l = cgroup::parse_layout(kHybrid, "");
  cgroup::Limits lim;
  lim.devices.push_back({'c', 10, 200, "r", "/dev/net/tun"});
  auto plan = cgroup::plan_jail(l, lim, "", "d1");
  REQUIRE(plan);
  auto w = writes_text(cgroup::limit_writes(*plan, lim));
  REQUIRE(w.size() == 7);
  CHECK(w.front() == "/sys/fs/cgroup/devices/stockade/d1/devices.deny=a");
  CHECK(w.back() == "/sys/fs/cgroup/devices/stockade/d1/devices.allow=c 10:200 r");
}

TEST_CASE("only directories named like a jail id are jail cgroups", "[cgroup]") {
  CHECK(cgroup::is_jail_name("0a1b2c3d4e5f"));
  CHECK(!cgroup::is_jail_name("system.slice"));
  CHECK(!cgroup::is_jail_name(""));
  CHECK(!cgroup::is_jail_name("Foo"));
}

TEST_CASE("cgroup flags are checked and devices parsed with their access letters", "[cgroup]") {
  policy::RunFlags f;
  f.command = {"/bin/true"};
  f.devices = {"/dev/net/tun:r", "/dev/fuse"};
  auto spec = policy::make_spec(f);
  REQUIRE(spec);
  REQUIRE(spec->devices.size() == 2);
  CHECK(spec->devices[0].access == "r");
  CHECK(spec->devices[1].access == "rw");
  f.devices = {"/dev/fuse:rx"};
  CHECK(!policy::make_spec(f));
  f.devices = {"dev/fuse"};
  CHECK(!policy::make_spec(f));
  f.devices.clear();
  f.cgroup.pids = 0;
  CHECK(!policy::make_spec(f));
  f.cgroup.pids.reset();
  f.cgroup_parent = "/abs";
  CHECK(!policy::make_spec(f));
}

TEST_CASE("without root, cgroup limits are refused and the error says why", "[cgroup]") {
  policy::RunFlags f;
  f.command = {"/bin/true"};
  f.cgroup.memory_bytes = 64 << 20;
  auto spec = policy::make_spec(f);
  REQUIRE(spec);
  auto ok = policy::check_enforceable(*spec);
  if (::geteuid() == 0) {
    CHECK(ok);
  } else {
    REQUIRE(!ok);
    CHECK(ok.error().what.find("memory limit without root") != std::string::npos);
  }
}

TEST_CASE("a fork bomb inside a jail stops at the pids limit and the host can still fork",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto before = jail_cgroup_dirs();
  auto r = test::attack({"--pids-max", "32", "--time-limit", "30"}, "fork-bomb", {}, 60);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // pid 1 and the attack count too: at most 30 children.
  int forked = -1;
  std::sscanf(r.out.c_str(), "forked=%d", &forked);
  CHECK(forked > 0);
  CHECK(forked <= 30);
  CHECK(r.out.find("errno=EAGAIN") != std::string::npos);
  // The host is unaffected: it forks as before.
  CHECK(test::run({"/bin/true"}).exit_code == 0);
  CHECK(jail_cgroup_dirs() == before);
}

TEST_CASE(
    "under the default pids limit a jail runs 300 processes at once, as a parallel build does",
    "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto r = test::stockade({"run", "-q", "--", "/bin/sh", "-c",
                           "i=0; while [ $i -lt 300 ]; do sleep 1 & i=$((i+1)); done; wait; "
                           "echo all-ran"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(test::line(r.out) == "all-ran");
}

TEST_CASE("a memory hog is OOM-killed at its limit and the supervisor says why", "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto before = jail_cgroup_dirs();
  auto r = test::attack({"--memory-max", "32M"}, "memhog", {"200"}, 60);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(r.out.find("touched=") == std::string::npos);
  CHECK(r.err.find("memory limit of 32M reached: the kernel OOM-killed") != std::string::npos);
  CHECK(jail_cgroup_dirs() == before);
}

TEST_CASE("a jail under a memory limit it stays within runs normally and says nothing",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto r = test::attack({"--memory-max", "64M"}, "memhog", {"8"}, 60);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(test::line(r.out) == "touched=8");
  CHECK(r.err.empty());
}

TEST_CASE("a busy loop under cpu_ms_per_sec=200 gets about a fifth of a CPU", "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto before = jail_cgroup_dirs();
  auto r = test::attack({"--cpu-ms-per-sec", "200"}, "spin", {"2"}, 60);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  double cpu = 0, wall = 0;
  REQUIRE(std::sscanf(r.out.c_str(), "cpu_ms=%lf wall_ms=%lf", &cpu, &wall) == 2);
  // 20 % of the wall time; generous bounds for a shared, noisy VM.
  CHECK(cpu / wall > 0.10);
  CHECK(cpu / wall < 0.35);
  CHECK(jail_cgroup_dirs() == before);
}

TEST_CASE("a jail sees its own cgroup as the root and no cgroup filesystem it could write",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  auto r = test::attack({"--memory-max", "64M", "--cpu-ms-per-sec", "500"}, "cgroup-view");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::string out = test::line(r.out);
  auto sp = out.find(' ');
  REQUIRE(sp != std::string::npos);
  std::stringstream lines(out.substr(7, sp - 7));
  std::string l;
  int n = 0;
  while (std::getline(lines, l, '|')) {
    INFO(l);
    CHECK(l.ends_with(":/"));
    ++n;
  }
  CHECK(n > 0);
  CHECK(out.find("mounts=0") != std::string::npos);
  CHECK(out.find("mount=EPERM") != std::string::npos);
}

TEST_CASE("a root jail gets the default pids limit and its cgroup is listed in the registry",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  test::Process sup({test::stockade_bin(), "run", "-q", "--", "/bin/sleep", "30"});
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  auto j = nlohmann::json::parse(jail->json);
  auto dirs = j.value("cgroups", std::vector<std::string>{});
  REQUIRE(!dirs.empty());
  // The registry names the jail's own cgroup namespace (made by the child once inside).
  struct stat jail_ns {
  }, host_ns{};
  REQUIRE(::stat(("/proc/" + std::to_string(jail->init_pid) + "/ns/cgroup").c_str(), &jail_ns) ==
          0);
  REQUIRE(::stat("/proc/self/ns/cgroup", &host_ns) == 0);
  CHECK(j["namespaces"]["cgroup"].get<std::uint64_t>() == jail_ns.st_ino);
  CHECK(jail_ns.st_ino != host_ns.st_ino);
  // And every other namespace it records is the jail's, none the host's.
  for (const char* ns : {"user", "mnt", "pid", "net", "ipc", "uts"}) {
    INFO(ns);
    struct stat jail_st {
    }, host_st{};
    REQUIRE(::stat(("/proc/" + std::to_string(jail->init_pid) + "/ns/" + ns).c_str(), &jail_st) ==
            0);
    REQUIRE(::stat((std::string("/proc/self/ns/") + ns).c_str(), &host_st) == 0);
    CHECK(j["namespaces"][ns].get<std::uint64_t>() == jail_st.st_ino);
    CHECK(jail_st.st_ino != host_st.st_ino);
  }
  std::string pids_dir;
  for (auto& d : dirs)
    if (std::filesystem::exists(d + "/pids.max")) pids_dir = d;
  REQUIRE(!pids_dir.empty());
  std::ifstream f(pids_dir + "/pids.max");
  std::string max;
  f >> max;
  CHECK(max == std::to_string(policy::kDefaultPidsLimit));
  std::ifstream procs(pids_dir + "/cgroup.procs");
  std::set<std::string> in;
  for (std::string p; procs >> p;) in.insert(p);
  CHECK(in.contains(std::to_string(jail->init_pid)));

  auto inspect = test::stockade({"inspect", "--json", jail->id});
  REQUIRE(inspect.exit_code == 0);
  auto e = nlohmann::json::parse(inspect.out);
  CHECK(e["usage"]["pids_max"] == policy::kDefaultPidsLimit);
  CHECK(e["usage"]["pids_current"].get<int>() >= 2);
  auto text = test::stockade({"inspect", jail->id});
  CHECK(text.out.find("pids") != std::string::npos);

  sup.signal(SIGTERM);
  CHECK(sup.wait(10) == 128 + SIGTERM);
  for (auto& d : dirs) CHECK(!std::filesystem::exists(d));
  // The shared parent (.../stockade) goes with the last jail: if it is still there, another
  // jail (of another test run on this host) is in it.
  for (auto& d : dirs) {
    auto parent = std::filesystem::path(d).parent_path();
    INFO(parent);
    std::error_code ec;
    bool in_use = false;
    for (auto& e : std::filesystem::directory_iterator(parent, ec))
      in_use = in_use || (e.is_directory() && e.path().filename().string().size() == 12);
    CHECK((!std::filesystem::exists(parent) || in_use));
  }
}

TEST_CASE(
    "a device given with --device opens as allowed and the device controller refuses "
    "the rest",
    "[root][cgroup][device]") {
  SKIP_UNLESS_ROOT();
  if (!cgroup::host_layout().v1.contains("devices")) {
    WARN("skipped: no v1 devices controller on this host");
    return;
  }
  test::TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  // Copies of /dev/net/tun (10:200) and /dev/fuse (10:229): not among /dev's basics, and
  // opening them does nothing by itself.
  std::string rw = dir.path() + "/tun-rw", ro = dir.path() + "/tun-r", m = dir.path() + "/fuse";
  REQUIRE(::mknod(rw.c_str(), S_IFCHR | 0666, makedev(10, 200)) == 0);
  REQUIRE(::mknod(ro.c_str(), S_IFCHR | 0666, makedev(10, 200)) == 0);
  REQUIRE(::mknod(m.c_str(), S_IFCHR | 0666, makedev(10, 229)) == 0);
  for (auto& p : {rw, ro, m}) REQUIRE(::chmod(p.c_str(), 0666) == 0);
  // The positive control: on the host, every open works.
  CHECK(test::line(test::attack_on_host("open", {m, "rw"}).out) == "ok");

  auto r = test::attack({"--device", rw + ":rw"}, "open", {rw, "rw"});
  INFO(r.err);
  CHECK(test::line(r.out) == "ok");
  r = test::attack({"--device", rw + ":rw"}, "write", {"/dev/null"});
  CHECK(test::line(r.out) == "ok");  // /dev's basics still work
  // The mount allows writing to a device node; only the controller can refuse it.
  r = test::attack({"--device", ro + ":r"}, "open", {ro, "r"});
  CHECK(test::line(r.out) == "ok");
  r = test::attack({"--device", ro + ":r"}, "open", {ro, "w"});
  CHECK(test::line(r.out) == "errno=EPERM");
  // A node the jail has (mknod access only) but may not open.
  r = test::attack({"--device", rw + ":rw", "--device", m + ":m"}, "open", {m, "r"});
  CHECK(test::line(r.out) == "errno=EPERM");
}

TEST_CASE("a rootless run refuses cgroup limits and devices, naming them and why",
          "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  test::RunOptions as_nobody;
  as_nobody.uid = 65534;
  as_nobody.gid = 65534;
  as_nobody.env = std::vector<std::string>{"PATH=/usr/bin:/bin"};
  auto r = test::stockade(
      {"run", "-q", "--memory-max", "64M", "--pids-max", "10", "--", "/bin/true"}, as_nobody);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("cannot enforce the memory, pids limits without root") != std::string::npos);
  r = test::stockade({"run", "-q", "--device", "/dev/null", "--", "/bin/true"}, as_nobody);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("device limit without root") != std::string::npos);
}

// cgroup v2 has no controllers on this VM, but its mechanics can be checked: a child created
// inside the jail's directory (CLONE_INTO_CGROUP), and removal that kills what is left in it.
TEST_CASE(
    "on cgroup v2 a child is born inside the jail's cgroup, which remove() kills and "
    "removes",
    "[root][cgroup]") {
  SKIP_UNLESS_ROOT();
  const auto& host = cgroup::host_layout();
  if (host.v2.empty()) {
    WARN("skipped: no cgroup v2 mount on this host");
    return;
  }
  std::string id = "0000test" + std::to_string(::getpid());
  cgroup::Plan plan;
  plan.version = cgroup::Version::kV2;
  plan.parents = {host.v2 + "/stockade"};
  plan.dirs = {host.v2 + "/stockade/" + id};
  auto cg = cgroup::create(plan, cgroup::Limits{});
  REQUIRE(cg);
  REQUIRE(cg->clone_fd() >= 0);
  struct clone_args args {};
  args.flags = CLONE_INTO_CGROUP;
  args.cgroup = static_cast<std::uint64_t>(cg->clone_fd());
  args.exit_signal = SIGCHLD;
  pid_t pid = sys::clone3(&args);
  if (pid == 0) {
    ::pause();
    ::_exit(0);
  }
  REQUIRE(pid > 0);
  std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, v2line;
  while (std::getline(f, line))
    if (line.starts_with("0::")) v2line = line;
  CHECK(v2line.ends_with("/stockade/" + id));
  // The child is still running: removal kills it (cgroup.kill) before the rmdir.
  auto removed = cg->remove();
  INFO((removed ? "" : removed.error().message()));
  CHECK(removed);
  int st = 0;
  CHECK(::waitpid(pid, &st, 0) == pid);
  CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
  CHECK(!std::filesystem::exists(plan.dirs[0]));
}

// The v2 device program can be tried here too: BPF device programs need no controller, and the
// kernel asks them at every open of a device node, v1 controller or not.
TEST_CASE("on cgroup v2 the BPF device program allows exactly the named nodes and access",
          "[root][cgroup][device]") {
  SKIP_UNLESS_ROOT();
  const auto& host = cgroup::host_layout();
  if (host.v2.empty()) {
    WARN("skipped: no cgroup v2 mount on this host");
    return;
  }
  test::TempDir dir;
  std::string tun = dir.path() + "/tun", fuse = dir.path() + "/fuse";
  REQUIRE(::mknod(tun.c_str(), S_IFCHR | 0666, makedev(10, 200)) == 0);
  REQUIRE(::mknod(fuse.c_str(), S_IFCHR | 0666, makedev(10, 229)) == 0);
  std::string id = "0000dev" + std::to_string(::getpid());
  cgroup::Plan plan;
  plan.version = cgroup::Version::kV2;
  plan.parents = {host.v2 + "/stockade"};
  plan.dirs = {host.v2 + "/stockade/" + id};
  plan.controllers = {"devices"};
  cgroup::Limits lim;
  lim.devices.push_back({'c', 10, 200, "r", tun});
  auto cg = cgroup::create(plan, lim);
  INFO((cg ? "" : cg.error().message()));
  REQUIRE(cg);
  struct clone_args args {};
  args.flags = CLONE_INTO_CGROUP;
  args.cgroup = static_cast<std::uint64_t>(cg->clone_fd());
  args.exit_signal = SIGCHLD;
  pid_t pid = sys::clone3(&args);
  if (pid == 0) {
    // One bit per expectation that held.
    auto opens = [](const std::string& p, int flags) {
      int fd = ::open(p.c_str(), flags | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      return fd >= 0 ? 0 : errno;
    };
    int bits = 0;
    bits |= opens(tun, O_RDONLY) == 0 ? 1 : 0;
    bits |= opens(tun, O_WRONLY) == EPERM ? 2 : 0;
    bits |= opens(fuse, O_RDONLY) == EPERM ? 4 : 0;
    bits |= opens("/dev/null", O_RDWR) == 0 ? 8 : 0;
    ::_exit(bits);
  }
  REQUIRE(pid > 0);
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  REQUIRE(WIFEXITED(st));
  int bits = WEXITSTATUS(st);
  CHECK((bits & 1) != 0);  // the node, for reading
  CHECK((bits & 2) != 0);  // not for writing: it was given "r"
  CHECK((bits & 4) != 0);  // another node: denied
  CHECK((bits & 8) != 0);  // /dev's basics stay usable
  CHECK(cg->remove());
  CHECK(!std::filesystem::exists(plan.dirs[0]));
}
