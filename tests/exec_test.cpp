// stockade exec: a command run in a running jail is held exactly like the jail's workload (checked
// from the host, field by field), cannot do what the workload cannot (attacks through exec), and
// relays status, stdio and signals; it dies with its client and with the jail, and leaves nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> stockade_exec(const std::string& id, const std::vector<std::string>& cmd) {
  std::vector<std::string> argv{test::stockade_bin(), "exec", id, "--"};
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return argv;
}

// "Name:\tvalue" lines of /proc/PID/status.
std::map<std::string, std::string> status_of(pid_t pid) {
  std::map<std::string, std::string> out;
  std::istringstream in(test::read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = v;
  }
  return out;
}

std::string cmdline_of(pid_t pid) {
  std::string s = test::read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : s)
    if (c == '\0') c = ' ';
  return s;
}

// The child of the jail's init whose command line is cmdline, or 0 after timeout_s.
pid_t wait_init_child(const test::JailEntry& jail, const std::string& cmdline,
                      double timeout_s = 5) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    for (pid_t c : test::children_of(jail.init_pid))
      if (cmdline_of(c) == cmdline) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

bool gone_within(pid_t pid, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (test::alive(pid) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !test::alive(pid);
}

std::string ns_link(pid_t pid, const char* ns) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns, ec).string();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string socket_path(const std::string& id) {
  return std::string(test::kRegistryDir) + "/" + id + ".sock";
}

}  // namespace

TEST_CASE("stockade exec runs a command held exactly like the jail's workload", "[root][exec]") {
  SKIP_UNLESS_ROOT();
  test::Process sup(test::stockade_run_argv({"--cap", "NET_BIND_SERVICE", "--memory-max", "64M",
                                             "--rlimit", "nofile=77", "--", "/bin/sleep", "60"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  pid_t workload = wait_init_child(*jail, "/bin/sleep 60 ");
  REQUIRE(workload > 0);
  CHECK(test::socket_listening(socket_path(jail->id)));

  test::Process client(stockade_exec(jail->id, {"/bin/sleep", "50"}));
  pid_t cmd = wait_init_child(*jail, "/bin/sleep 50 ");
  INFO(client.err());
  REQUIRE(cmd > 0);

  // Seen from the host, field by field: the same namespaces, ids, capabilities, seccomp,
  // no_new_privs, audit id, cgroup, limits and root as the workload.
  for (const char* ns : {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}) {
    INFO("namespace " << ns);
    CHECK(!ns_link(cmd, ns).empty());
    CHECK(ns_link(cmd, ns) == ns_link(workload, ns));
    CHECK(ns_link(cmd, ns) != ns_link(::getpid(), ns));
  }
  auto w = status_of(workload), c = status_of(cmd);
  for (const char* field : {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd",
                            "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"}) {
    INFO("status field " << field);
    CHECK(c[field] == w[field]);
  }
  CHECK(c["Uid"].starts_with(std::to_string(jail->host_uid) + "\t"));
  CHECK(c["CapEff"] == "0000000000000400");  // CAP_NET_BIND_SERVICE alone
  CHECK(c["NoNewPrivs"] == "1");
  CHECK(c["Seccomp"] == "2");
  const std::string cpid = "/proc/" + std::to_string(cmd),
                    wpid = "/proc/" + std::to_string(workload);
  CHECK(test::read_file(cpid + "/loginuid") == std::to_string(jail->host_uid));
  CHECK(test::read_file(cpid + "/loginuid") == test::read_file(wpid + "/loginuid"));
  CHECK(test::read_file(cpid + "/sessionid") == test::read_file(wpid + "/sessionid"));
  CHECK(test::read_file(cpid + "/cgroup") == test::read_file(wpid + "/cgroup"));
  CHECK(test::read_file(cpid + "/cgroup").find(jail->id) != std::string::npos);
  CHECK(test::read_file(cpid + "/limits") == test::read_file(wpid + "/limits"));
  struct stat cr, wr;
  REQUIRE(::stat((cpid + "/root/").c_str(), &cr) == 0);
  REQUIRE(::stat((wpid + "/root/").c_str(), &wr) == 0);
  CHECK(cr.st_dev == wr.st_dev);
  CHECK(cr.st_ino == wr.st_ino);
  // Its own session, as the workload has: no way to the client's terminal's job control.
  CHECK(status_of(cmd)["NSsid"] != status_of(jail->init_pid)["NSsid"]);

  // The client dies: its command goes with it, the jail stays.
  client.signal(SIGKILL);
  CHECK(client.wait(5) == 128 + SIGKILL);
  CHECK(gone_within(cmd, 5));
  CHECK(test::alive(workload));

  sup.signal(SIGTERM);
  CHECK(sup.wait(10) == 128 + SIGTERM);
  CHECK(!exists(socket_path(jail->id)));
  CHECK(!exists(test::registry_path(jail->id)));
}

TEST_CASE("an attack through stockade exec fails as it does from the workload",
          "[root][exec][escape]") {
  SKIP_UNLESS_ROOT();
  test::Process sup(test::stockade_run_argv({"--cap", "NET_BIND_SERVICE", "--ro-bind",
                                             test::attack_bin() + ":" + test::kAttackInJail, "--",
                                             "/bin/sleep", "60"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);
  REQUIRE(wait_init_child(*jail, "/bin/sleep 60 ") > 0);

  auto attack = [&](const std::string& name, const std::vector<std::string>& args = {}) {
    std::vector<std::string> cmd{test::kAttackInJail, name};
    cmd.insert(cmd.end(), args.begin(), args.end());
    auto r = test::run(stockade_exec(jail->id, cmd), 30);
    INFO(name << ": " << r.err);
    CHECK(r.exit_code == 0);
    return test::line(r.out);
  };
  // Each of these works for root on the host (escape_test has the positive controls).
  CHECK(attack("setns", {"/proc/self/ns/net"}) == "errno=EPERM");
  CHECK(attack("setns", {"/proc/1/ns/net"}) == "errno=EACCES");
  for (const char* name : {"unshare-user", "clone-newuser", "open-by-handle", "bpf", "keyctl",
                           "io-uring", "init-module"}) {
    INFO("attack " << name);
    CHECK(attack(name) == "errno=EPERM");
  }
  CHECK(attack("mount-tmpfs", {"/tmp"}) == "errno=EPERM");
  CHECK(attack("create", {"/usr/stockade-exec-test"}) == "errno=EROFS");
  CHECK(attack("kill", {std::to_string(sup.pid())}) == "errno=ESRCH");
  // What the policy grants, exec grants too: the one capability, nothing more.
  CHECK(attack("capeff") == "capeff=0000000000000400");
  CHECK(attack("bind-port", {"80"}) == "ok");

  sup.signal(SIGTERM);
  CHECK(sup.wait(10) == 128 + SIGTERM);
}

TEST_CASE("stockade exec relays exit status, stdio and signals", "[root][exec]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);  // the jail's host uid looks inside
  test::Process sup(test::stockade_run_argv({"--ro-bind", dir.path() + ":/w", "--", "/bin/sh", "-c",
                                             "while [ ! -e /w/go ]; do sleep 0.05; done; exit 4"}));
  auto jail = test::wait_for_jail(sup);
  INFO(sup.err());
  REQUIRE(jail);

  auto r = test::run(stockade_exec(jail->id, {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");

  // Without "--", and found in the jail's PATH.
  r = test::run({test::stockade_bin(), "exec", jail->id, "sh", "-c", "hostname; exit 0"});
  CHECK(r.exit_code == 0);
  CHECK(!r.out.empty());

  r = test::run(stockade_exec(jail->id, {"no-such-command"}));
  CHECK(r.exit_code == 127);
  CHECK(r.err.find("command not found in the jail") != std::string::npos);
  r = test::run(stockade_exec(jail->id, {"/"}));
  CHECK(r.exit_code == 126);

  r = test::run(stockade_exec(jail->id, {"/bin/sh", "-c", "kill -9 $$"}));
  CHECK(r.exit_code == 128 + SIGKILL);

  // stdin is the caller's.
  std::string input = dir.path() + "/input";
  { std::ofstream(input) << "from the host\n"; }
  test::RunOptions with_stdin;
  int in = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(in >= 0);
  with_stdin.stdin_fd = in;
  r = test::run(stockade_exec(jail->id, {"/bin/cat"}), with_stdin);
  ::close(in);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "from the host\n");

  // A signal to the client reaches the command.
  test::Process client(stockade_exec(jail->id, {"/bin/sleep", "40"}));
  pid_t cmd = wait_init_child(*jail, "/bin/sleep 40 ");
  REQUIRE(cmd > 0);
  client.signal(SIGTERM);
  CHECK(client.wait(5) == 128 + SIGTERM);
  CHECK(gone_within(cmd, 5));

  // Refusals: no such jail; a user who is not the jail's.
  r = test::run({test::stockade_bin(), "exec", "0123456789ab", "--", "/bin/true"});
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("no running jail '0123456789ab'") != std::string::npos);
  test::RunOptions nobody;
  nobody.uid = 65534;
  nobody.gid = 65534;
  r = test::run(stockade_exec(jail->id, {"/bin/sleep", "46"}), nobody);
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("exec:") != std::string::npos);
  CHECK(wait_init_child(*jail, "/bin/sleep 46 ", 0.3) == 0);

  // The jail ends while a command runs: the client hears so, and nothing is left.
  test::Process late(stockade_exec(jail->id, {"/bin/sleep", "45"}));
  pid_t late_cmd = wait_init_child(*jail, "/bin/sleep 45 ");
  REQUIRE(late_cmd > 0);
  { std::ofstream(dir.path() + "/go") << "1"; }
  CHECK(sup.wait(10) == 4);
  CHECK(late.wait(5) == 128 + SIGKILL);
  CHECK(late.err().find("ended while") != std::string::npos);
  CHECK(!test::alive(late_cmd));
  CHECK(!exists(socket_path(jail->id)));
  CHECK(!exists(test::registry_path(jail->id)));
  r = test::run(stockade_exec(jail->id, {"/bin/true"}));
  CHECK(r.exit_code == 125);
}
