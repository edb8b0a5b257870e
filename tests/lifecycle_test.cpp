// A jail's life on the host: its own host uid, its registry entry, how it ends (normally, by a
// signal, by the time limit, with its supervisor) and what it leaves behind: nothing, except the
// two files a SIGKILLed supervisor cannot remove.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string comm_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

// The workload (the init's child) once it runs `comm`, or 0 after timeout_s.
pid_t wait_workload(const test::JailEntry& jail, const std::string& comm, double timeout_s = 5) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    for (pid_t c : test::children_of(jail.init_pid))
      if (comm_of(c) == comm) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::symlink_status(path, ec));
}

std::string uid_map_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/uid_map");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The jail ended: none of its processes, its registry entry, its lease or a mount of it is left.
void check_nothing_left(const test::JailEntry& jail, int stockade_mounts_before,
                        const std::string& bind_source) {
  INFO("jail " << jail.json);
  CHECK(test::wait_jail_gone(jail).empty());
  CHECK(test::processes_with_uid(jail.host_uid).empty());
  CHECK(!exists(test::registry_path(jail.id)));
  CHECK(!exists(test::lease_path(jail.host_uid)));
  CHECK(test::host_mounts_mentioning(jail.id) == 0);
  CHECK(test::host_mounts_mentioning(bind_source) == 0);
  CHECK(test::host_mounts_mentioning("stockade") == stockade_mounts_before);
  // Its cgroup directories went with it.
  auto entry = nlohmann::json::parse(jail.json);
  for (auto& d : entry.value("cgroups", std::vector<std::string>{})) CHECK(!exists(d));
}

// A jail whose workload (sh) waits for the host to create <dir>/go, then exits 3.
struct WaitingJail {
  explicit WaitingJail(const test::TempDir& dir)
      : go(dir.path() + "/go"),
        supervisor(test::stockade_run_argv({"--ro-bind", dir.path() + ":/w", "--", "/bin/sh", "-c",
                                            "while [ ! -e /w/go ]; do sleep 0.05; done; exit 3"})) {
  }
  std::string go;
  test::Process supervisor;
};

// Makes dir usable as the jail's /w (its host uid must be able to look inside).
void open_up(const test::TempDir& dir) { REQUIRE(::chmod(dir.path().c_str(), 0755) == 0); }

}  // namespace

TEST_CASE("two concurrent jails run as different host uids", "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  test::Process a(test::stockade_run_argv({"--", "/bin/sleep", "30"}));
  test::Process b(test::stockade_run_argv({"--", "/bin/sleep", "30"}));
  auto ja = test::wait_for_jail(a);
  auto jb = test::wait_for_jail(b);
  INFO(a.err() << b.err());
  REQUIRE(ja);
  REQUIRE(jb);
  REQUIRE(wait_workload(*ja, "sleep") > 0);
  REQUIRE(wait_workload(*jb, "sleep") > 0);

  CHECK(ja->host_uid != jb->host_uid);
  for (const auto& j : {*ja, *jb}) {
    INFO(j.json);
    CHECK(j.host_uid >= 1879048192u);
    CHECK(j.host_gid == j.host_uid);
    // The kernel agrees with the registry: uid 0 inside is that host uid and nothing more.
    CHECK(uid_map_of(j.init_pid) == "0 " + std::to_string(j.host_uid) + " 1");
    CHECK(exists(test::lease_path(j.host_uid)));
  }

  a.signal(SIGTERM);
  b.signal(SIGTERM);
  // Forwarded to sleep, which dies of it.
  CHECK(a.wait(10) == 128 + SIGTERM);
  CHECK(b.wait(10) == 128 + SIGTERM);
  for (const auto& j : {*ja, *jb}) {
    CHECK(test::wait_jail_gone(j).empty());
    CHECK(!exists(test::lease_path(j.host_uid)));
    CHECK(!exists(test::registry_path(j.id)));
  }
}

TEST_CASE("the time limit kills a jail whose workload forks and ignores SIGTERM",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  auto start = Clock::now();
  test::Process sup(test::stockade_run_argv(
      {"--time-limit", "1", "--", "/bin/sh", "-c", "trap '' TERM; sleep 60 & sleep 60"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  // While it runs, its processes are visible under its host uid.
  REQUIRE(wait_workload(*jail, "sh") > 0);

  int code = sup.wait(10);
  double took = std::chrono::duration<double>(Clock::now() - start).count();
  INFO("took " << took << " s; " << sup.err());
  CHECK(code == 128 + SIGKILL);
  CHECK(took < 4);
  CHECK(test::wait_jail_gone(*jail, 2).empty());
  CHECK(test::processes_with_uid(jail->host_uid).empty());
  CHECK(!exists(test::registry_path(jail->id)));
  CHECK(!exists(test::lease_path(jail->host_uid)));
}

TEST_CASE("a jail that exits normally leaves no process, mount, lease or registry entry",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  int mounts_before = test::host_mounts_mentioning("stockade");
  test::TempDir dir;
  open_up(dir);
  WaitingJail j(dir);
  auto jail = test::wait_for_jail(j.supervisor);
  INFO(j.supervisor.err());
  REQUIRE(jail);
  REQUIRE(wait_workload(*jail, "sh") > 0);
  CHECK(exists(test::registry_path(jail->id)));
  CHECK(exists(test::lease_path(jail->host_uid)));

  std::ofstream(j.go).put('\n');
  CHECK(j.supervisor.wait(10) == 3);
  check_nothing_left(*jail, mounts_before, dir.path());
}

TEST_CASE("a jail whose workload is SIGKILLed from the host leaves nothing behind",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  int mounts_before = test::host_mounts_mentioning("stockade");
  test::TempDir dir;
  open_up(dir);
  WaitingJail j(dir);
  auto jail = test::wait_for_jail(j.supervisor);
  INFO(j.supervisor.err());
  REQUIRE(jail);
  pid_t workload = wait_workload(*jail, "sh");
  REQUIRE(workload > 0);

  REQUIRE(::kill(workload, SIGKILL) == 0);
  CHECK(j.supervisor.wait(10) == 128 + SIGKILL);
  check_nothing_left(*jail, mounts_before, dir.path());
}

TEST_CASE("a jail whose supervisor is SIGTERMed ends and leaves nothing behind",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  int mounts_before = test::host_mounts_mentioning("stockade");
  test::TempDir dir;
  open_up(dir);
  WaitingJail j(dir);
  auto jail = test::wait_for_jail(j.supervisor);
  INFO(j.supervisor.err());
  REQUIRE(jail);
  REQUIRE(wait_workload(*jail, "sh") > 0);

  j.supervisor.signal(SIGTERM);
  // The supervisor forwards it; sh does not ignore it.
  CHECK(j.supervisor.wait(10) == 128 + SIGTERM);
  check_nothing_left(*jail, mounts_before, dir.path());
}

TEST_CASE("when the supervisor is SIGKILLed every jailed process dies and the lease is free",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  test::Process sup(test::stockade_run_argv({"--", "/bin/sh", "-c", "sleep 30 & sleep 30"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  REQUIRE(wait_workload(*jail, "sh") > 0);
  // init, sh and both sleeps.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (test::jail_processes(*jail).size() < 4 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(test::jail_processes(*jail).size() == 4);

  sup.signal(SIGKILL);
  CHECK(sup.wait(10) == 128 + SIGKILL);
  auto left = test::wait_jail_gone(*jail, 5);
  INFO("left running: " << left.size() << " process(es) of " << jail->json);
  CHECK(left.empty());
  CHECK(test::processes_with_uid(jail->host_uid).empty());
  // Should the jail have outlived its supervisor, end it here: no test leaves processes behind.
  REQUIRE(test::kill_jail_processes(*jail).empty());

  // The registry entry stays behind by design (gc removes it later); ps calls it stale.
  auto ps = test::stockade({"ps", "--json"});
  REQUIRE(ps.exit_code == 0);
  // (Unless a concurrent `stockade gc`, of another test run on this host, removed it already.)
  bool listed = false, listed_stale = false;
  for (auto& e : nlohmann::json::parse(ps.out))
    if (e.value("id", "") == jail->id) {
      listed = true;
      listed_stale = e.value("state", "") == "stale";
    }
  CHECK((!listed || listed_stale));

  // The lease file may stay too, but nobody may hold it: no jailed process kept the lock.
  std::string lease = test::lease_path(jail->host_uid);
  int fd = ::open(lease.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    CHECK(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    ::close(fd);
  }
  // stockade gc removes what the supervisor could not: entry, lease and the jail's cgroup.
  auto entry = nlohmann::json::parse(jail->json);
  auto gc = test::stockade({"gc"});
  INFO(gc.out << gc.err);
  CHECK(gc.exit_code == 0);
  CHECK(!exists(test::registry_path(jail->id)));
  for (auto& d : entry.value("cgroups", std::vector<std::string>{})) CHECK(!exists(d));
  CHECK(!exists(lease));
  CHECK(!exists(test::registry_path(jail->id)));
}

TEST_CASE("stockade ps and inspect show a running jail and forget it once it has ended",
          "[root][lifecycle]") {
  SKIP_UNLESS_ROOT();
  test::Process sup(test::stockade_run_argv({"--hostname", "psjail", "--", "/bin/sleep", "30"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  REQUIRE(wait_workload(*jail, "sleep") > 0);

  auto ps = test::stockade({"ps", "--json"});
  REQUIRE(ps.exit_code == 0);
  INFO(ps.out);
  nlohmann::json found;
  for (auto& e : nlohmann::json::parse(ps.out))
    if (e.value("id", "") == jail->id) found = e;
  REQUIRE(found.is_object());
  CHECK(found.value("state", "") == "running");
  CHECK(found.value("supervisor_pid", 0) == sup.pid());
  CHECK(found.value("host_uid", 0u) == jail->host_uid);

  auto text = test::stockade({"ps"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find(jail->id) != std::string::npos);

  auto inspect = test::stockade({"inspect", "--json", jail->id});
  REQUIRE(inspect.exit_code == 0);
  auto entry = nlohmann::json::parse(inspect.out);
  CHECK(entry.value("id", "") == jail->id);
  CHECK(entry.value("init_pid", 0) == jail->init_pid);
  CHECK(entry.value("host_uid", 0u) == jail->host_uid);
  CHECK(entry.value("hostname", "") == "psjail");
  CHECK(entry["command"] == nlohmann::json({"/bin/sleep", "30"}));

  sup.signal(SIGTERM);
  CHECK(sup.wait(10) == 128 + SIGTERM);
  ps = test::stockade({"ps", "--json"});
  REQUIRE(ps.exit_code == 0);
  for (auto& e : nlohmann::json::parse(ps.out)) CHECK(e.value("id", "") != jail->id);
  inspect = test::stockade({"inspect", jail->id});
  CHECK(inspect.exit_code != 0);
}
