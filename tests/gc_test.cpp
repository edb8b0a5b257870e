// Crash safety: a supervisor SIGKILLed anywhere in setup or teardown leaves nothing that
// `stockade gc` does not remove, and gc never touches a running jail.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cgroup/cgroup.hpp"
#include "common/registry.hpp"
#include "supervisor/supervisor.hpp"
#include "tests/support.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Host ids for the jails these tests crash: just past the default range, so no other jail
// (of this suite or another checkout's) shares them.
constexpr uid_t kCrashFirst = 1879048192u + 65536u;
constexpr unsigned kCrashCount = 8;

bool exists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(p, ec));
}

std::map<std::string, std::string> jail_cgroup_dirs() {
  std::map<std::string, std::string> out;
  for (auto& [path, id] : cgroup::list_jail_dirs(cgroup::host_layout(), "")) out[path] = id;
  return out;
}

// Whether jail id runs: its registry entry names a live supervisor.
bool jail_running(const std::string& id) {
  auto rec = common::registry::read(test::kRegistryDir, id);
  return rec && common::registry::supervisor_alive(*rec);
}

// What gc got wrong about jail cgroup directories since `before` (path -> id): a new one whose
// jail is not running (a crash left it, gc did not remove it), or a running jail's that is
// gone. Jails that start or end meanwhile (another checkout's, the host's) do not count.
std::vector<std::string> cgroup_mistakes(const std::map<std::string, std::string>& before) {
  std::vector<std::string> out;
  auto now = cgroup::list_jail_dirs(cgroup::host_layout(), "");
  std::set<std::string> paths;
  for (auto& [path, id] : now) {
    paths.insert(path);
    if (!before.contains(path) && !jail_running(id)) out.push_back("left: " + path);
  }
  for (auto& [path, id] : before)
    if (!paths.contains(path) && jail_running(id)) out.push_back("removed: " + path);
  return out;
}

// Registry entries and lease files of the crash range.
std::vector<std::string> crash_range_leftovers() {
  std::vector<std::string> out;
  for (unsigned i = 0; i < kCrashCount; ++i) {
    uid_t uid = kCrashFirst + i;
    if (exists(test::lease_path(uid))) out.push_back(test::lease_path(uid));
    for (pid_t p : test::processes_with_uid(uid)) out.push_back("pid " + std::to_string(p));
  }
  for (auto& name : test::registry_entries()) {
    // An exec socket nobody listens on any more, whose jail has no entry: a crash left it.
    if (name.ends_with(".sock")) {
      std::string json = name.substr(0, name.size() - 5) + ".json";
      if (!exists(std::string(test::kRegistryDir) + "/" + json) &&
          !test::socket_listening(std::string(test::kRegistryDir) + "/" + name))
        out.push_back(name);
      continue;
    }
    std::ifstream f(std::string(test::kRegistryDir) + "/" + name);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    try {
      auto j = nlohmann::json::parse(text);
      uid_t u = j.value("host_uid", 0u);
      if (u >= kCrashFirst && u < kCrashFirst + kCrashCount) out.push_back(name);
    } catch (...) {
      // half-written by someone else's jail: not ours
    }
  }
  return out;
}

// The crash tests' jails are bridged, on a bridge of the tests' own, so the network's objects
// are part of what a crash may leave: addresses leases, nftables chains and elements, veths.
struct TestBridge {
  std::string name = "skgc" + std::to_string(::getpid() % 100000);
  int n = ::getpid() % 200 + 20;
  std::vector<std::string> flags() const {
    return {"--net",    "bridge",
            "--bridge", name,
            "--subnet", fmt::format("10.212.{}.0/24", n),
            "--subnet", fmt::format("fd00:212:{}::/64", n),
            "--egress", "203.0.113.0/24,tcp,443"};
  }
};

std::string shell(const std::string& cmd) { return test::run({"/bin/sh", "-c", cmd}).out; }

// Network objects on the test bridge that are not the bystander's.
std::vector<std::string> network_leftovers(const TestBridge& br, const std::string& keep_id) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/run/stockade/net/" + br.name, ec)) {
    std::string p = e.path().string();
    if (!p.ends_with(".lease")) continue;
    std::ifstream f(p);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (text.find(keep_id) == std::string::npos) out.push_back(p);
  }
  std::string rules = shell("nft -s list ruleset");
  for (std::size_t at = 0; (at = rules.find("chain jail_", at)) != std::string::npos; ++at)
    if (rules.compare(at + 11, keep_id.size(), keep_id) != 0) out.push_back(rules.substr(at, 23));
  std::string ports = shell("ip -o link show master " + br.name);
  for (std::size_t at = 0; (at = ports.find(" stk", at)) != std::string::npos; ++at)
    if (ports.compare(at + 4, keep_id.size(), keep_id) != 0) out.push_back(ports.substr(at, 16));
  return out;
}

bool lease_locked(uid_t uid) {
  int fd = ::open(test::lease_path(uid).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool locked = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return locked;
}

// Waits for the crashed jail's processes to die (pid 1 has the parent-death signal).
void wait_crash_range_quiet() {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool any = false;
    for (unsigned i = 0; i < kCrashCount; ++i)
      any = any || !test::processes_with_uid(kCrashFirst + i).empty();
    if (!any || Clock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TEST_CASE("the supervisor's crash points cover setup and teardown, twenty or more", "[gc]") {
  const auto& points = supervisor::crash_points();
  CHECK(points.size() >= 20);
  CHECK(std::set<std::string>(points.begin(), points.end()).size() == points.size());
}

TEST_CASE(
    "after a supervisor is SIGKILLed at any point, gc leaves nothing of its jail and "
    "does not touch a running jail",
    "[root][gc]") {
  SKIP_UNLESS_ROOT();
  auto cgroups_before = jail_cgroup_dirs();
  TestBridge br;
  // The bystander: a jail that keeps running through all of this, on the same bridge.
  std::vector<std::string> bargs = {test::stockade_bin(), "run", "-q", "--memory-max", "64M"};
  for (auto& f : br.flags()) bargs.push_back(f);
  for (const char* w : {"--", "/bin/sleep", "120"}) bargs.push_back(w);
  test::Process other(bargs);
  auto bystander = test::wait_for_jail(other);
  INFO(other.err());
  REQUIRE(bystander);
  auto bj = nlohmann::json::parse(bystander->json);
  auto bystander_cgroups = bj.value("cgroups", std::vector<std::string>{});
  REQUIRE(!bystander_cgroups.empty());
  REQUIRE(crash_range_leftovers().empty());
  REQUIRE(network_leftovers(br, bystander->id).empty());

  for (const auto& point : supervisor::crash_points()) {
    {
      INFO("crash point " << point);
      test::RunOptions opts;
      opts.env = std::vector<std::string>{"STOCKADE_TEST_CRASH_AT=" + point};
      std::vector<std::string> args = {test::stockade_bin(),
                                       "run",
                                       "-q",
                                       "--host-ids",
                                       fmt::format("{}:{}", kCrashFirst, kCrashCount),
                                       "--memory-max",
                                       "64M",
                                       "--cpu-ms-per-sec",
                                       "500",
                                       "--publish",
                                       std::to_string(41000 + br.n) + ":80"};
      for (auto& f : br.flags()) args.push_back(f);
      for (const char* w : {"--", "/bin/sleep", "0.1"}) args.push_back(w);
      test::Process sup(args, opts);
      CHECK(sup.wait(30) == 128 + SIGKILL);
      wait_crash_range_quiet();

      auto gc = test::stockade({"gc", "--json"});
      INFO(gc.out << gc.err);
      CHECK(gc.exit_code == 0);
      CHECK(crash_range_leftovers().empty());
      CHECK(network_leftovers(br, bystander->id).empty());
      CHECK(cgroup_mistakes(cgroups_before).empty());

      // The bystander is untouched.
      CHECK(exists(test::registry_path(bystander->id)));
      CHECK(lease_locked(bystander->host_uid));
      for (auto& d : bystander_cgroups) CHECK(exists(d));
      CHECK(test::alive(bystander->init_pid));
      CHECK(shell("nft -s list chain inet stockade jail_" + bystander->id).find("203.0.113.0/24") !=
            std::string::npos);
    }
  }
  other.signal(SIGTERM);
  CHECK(other.wait(10) == 128 + SIGTERM);
  for (auto& d : bystander_cgroups) CHECK(!exists(d));
  CHECK(network_leftovers(br, "-").empty());
  auto gc = test::stockade({"gc", "--bridge", br.name});
  CHECK(gc.exit_code == 0);
  CHECK(shell("ip -o link show " + br.name + " 2>/dev/null").empty());
}

TEST_CASE("gc --dry-run lists a dead jail's objects and removes nothing", "[root][gc]") {
  SKIP_UNLESS_ROOT();
  test::RunOptions opts;
  opts.env = std::vector<std::string>{"STOCKADE_TEST_CRASH_AT=after-release"};
  test::Process sup({test::stockade_bin(), "run", "-q", "--host-ids",
                     fmt::format("{}:{}", kCrashFirst, kCrashCount), "--", "/bin/true"},
                    opts);
  CHECK(sup.wait(30) == 128 + SIGKILL);
  wait_crash_range_quiet();
  auto left = crash_range_leftovers();
  CHECK(!left.empty());

  auto dry = test::stockade({"gc", "--dry-run", "--json"});
  INFO(dry.out << dry.err);
  REQUIRE(dry.exit_code == 0);
  auto j = nlohmann::json::parse(dry.out);
  std::set<std::string> kinds;
  for (auto& o : j["removed"]) kinds.insert(o.value("kind", ""));
  CHECK(kinds.contains("registry"));
  CHECK(kinds.contains("lease"));
  CHECK(kinds.contains("cgroup"));
  CHECK(crash_range_leftovers() == left);

  auto text = test::stockade({"gc"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("removed cgroup") != std::string::npos);
  CHECK(crash_range_leftovers().empty());
}

TEST_CASE("a reconciler plugged into gc has the objects of dead jails removed and no others",
          "[gc]") {
  test::TempDir dir;
  std::string reg = dir.path() + "/jails", leases = dir.path() + "/leases";
  REQUIRE(::mkdir(reg.c_str(), 0700) == 0);
  REQUIRE(::mkdir(leases.c_str(), 0700) == 0);
  // A supervisor pid that surely exists no more: a child we reaped.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(dead > 0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  common::registry::JailRecord gone, running;
  gone.id = "00000000dead";
  gone.supervisor_pid = dead;
  gone.rootless = true;
  running.id = "0000000a11fe";
  running.supervisor_pid = ::getpid();
  running.rootless = true;
  REQUIRE(common::registry::write(reg, gone));
  REQUIRE(common::registry::write(reg, running));

  std::vector<std::string> removed_names;
  supervisor::GcReconciler veths = [&](const supervisor::GcOptions&) {
    std::vector<supervisor::GcObject> out;
    for (const auto* id : {&gone.id, &running.id}) {
      std::string name = "stk" + *id;
      out.push_back({"veth", *id, name, [&removed_names, name]() -> common::Result<void> {
                       removed_names.push_back(name);
                       return {};
                     }});
    }
    return out;
  };
  supervisor::GcOptions opts;
  opts.registry_dir = reg;
  opts.lease_dir = leases;
  opts.cgroup_parent = "stockade-test-no-such-parent";  // the host's cgroups are not ours here
  opts.dry_run = true;
  auto dry = supervisor::gc(opts, {veths});
  REQUIRE(dry);
  CHECK(dry->removed.size() == 2);
  CHECK(removed_names.empty());
  CHECK(exists(reg + "/" + gone.id + ".json"));

  opts.dry_run = false;
  auto result = supervisor::gc(opts, {veths});
  REQUIRE(result);
  std::set<std::string> kinds;
  for (auto& o : result->removed) {
    CHECK(o.jail_id == gone.id);
    kinds.insert(o.kind);
  }
  CHECK(kinds == std::set<std::string>{"veth", "registry"});
  // Plug-ins go first: network objects before the registry entry that names them.
  REQUIRE(!result->removed.empty());
  CHECK(result->removed.front().kind == "veth");
  CHECK(removed_names == std::vector<std::string>{"stk" + gone.id});
  CHECK(!exists(reg + "/" + gone.id + ".json"));
  CHECK(exists(reg + "/" + running.id + ".json"));
  CHECK(std::find(result->live.begin(), result->live.end(), running.id) != result->live.end());
}
