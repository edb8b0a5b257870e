// What a jail can see and do: host files, binds, capabilities, exit statuses, rootless runs and
// bind sources that are symlinks.
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support.hpp"

namespace {

using test::line;

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// A uid with no business on the host: not root, not us, below the lease range.
constexpr uid_t kStrangerUid = 1879048100;
constexpr uid_t kNobody = 65534;

// True if uid kNobody may create a user namespace on this kernel (checked in a child).
bool unprivileged_userns_allowed(std::string* why) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      ::_exit(100);
    ::_exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
  if (code != 0) *why = code == 100 ? "cannot switch to uid 65534" : strerrorname_np(code);
  return code == 0;
}

}  // namespace

TEST_CASE("a host file outside the binds is invisible in the jail, one under a bind is readable",
          "[root][jail]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string secret = dir.path() + "/secret";
  std::string shared = dir.path() + "/shared";
  write_file(secret, "host only\n", 0644);
  REQUIRE(::mkdir(shared.c_str(), 0755) == 0);
  write_file(shared + "/visible", "for the jail\n", 0644);

  // Control: the host (and the attack program) can read it.
  CHECK(line(test::attack_on_host("read", {secret}).out) == "ok");

  auto r = test::attack({"--ro-bind", shared + ":/shared"}, "read", {secret});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=ENOENT");
  r = test::attack({"--ro-bind", shared + ":/shared"}, "read", {"/shared/visible"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");
  // Nor is the rest of the host's tree there: not the stockade binary, not the attack's own
  // host path (only its bind at /attack).
  for (const auto& host_path : {test::stockade_bin(), test::attack_bin()}) {
    r = test::attack({}, "read", {host_path});
    INFO(host_path << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=ENOENT");
  }
}

TEST_CASE(
    "a read-only bind can be neither written nor remounted read-write; a bind can be "
    "written",
    "[root][jail]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string data = dir.path() + "/data";
  REQUIRE(::mkdir(data.c_str(), 0755) == 0);
  REQUIRE(::chmod(data.c_str(), 01777) == 0);  // the jail's host uid may create files here
  write_file(data + "/file", "", 0666);

  for (auto caps : {std::vector<std::string>{}, std::vector<std::string>{"--cap", "SYS_ADMIN"}}) {
    std::vector<std::string> ro = caps;
    ro.insert(ro.end(), {"--ro-bind", data + ":/data"});
    auto r = test::attack(ro, "write", {"/data/file"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EROFS");
    r = test::attack(ro, "create", {"/data/new"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EROFS");
    r = test::attack(ro, "remount-rw", {"/data"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EPERM");
  }
  CHECK(test::read_file(data + "/file").empty());
  CHECK(!std::filesystem::exists(data + "/new"));

  // The positive control: the same directory bound read-write takes both writes.
  auto r = test::attack({"--bind", data + ":/data"}, "write", {"/data/file"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");
  r = test::attack({"--bind", data + ":/data"}, "create", {"/data/new"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");
  CHECK(test::read_file(data + "/file") == "x");
  CHECK(std::filesystem::exists(data + "/new"));
}

TEST_CASE("the jail's root, /usr, /etc and /dev are read-only; /tmp is writable", "[root][jail]") {
  SKIP_UNLESS_ROOT();
  const std::string name = test::unique_name("planted");
  for (const std::string dir : {"", "/usr", "/etc", "/dev"}) {
    auto r = test::attack({}, "create", {dir + "/" + name});
    INFO(dir << "/: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EROFS");
  }
  auto r = test::attack({}, "create", {"/tmp/" + name});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");
}

TEST_CASE("a jail has no effective capabilities by default and exactly the ones granted",
          "[root][jail]") {
  SKIP_UNLESS_ROOT();
  auto r = test::attack({}, "capeff");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "capeff=0000000000000000");
  // uid 0 in the jail grants nothing by itself.
  r = test::attack({}, "bind-port", {"80"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EACCES");

  // A non-root workload keeps a granted capability across exec: CAP_NET_BIND_SERVICE is 10.
  const std::vector<std::string> granted = {"--user", "1000", "--cap", "NET_BIND_SERVICE"};
  r = test::attack(granted, "capeff");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "capeff=0000000000000400");
  r = test::attack(granted, "bind-port", {"80"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");

  r = test::attack({"--user", "1000"}, "bind-port", {"80"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EACCES");
  r = test::attack({"--user", "1000"}, "capeff");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "capeff=0000000000000000");
}

TEST_CASE(
    "stockade's exit status tells setup failure, exec failure, signal and the workload's "
    "own status apart",
    "[root][jail]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string missing = dir.path() + "/" + test::unique_name("missing");
  auto r = test::stockade({"run", "-q", "--bind", missing + ":/x", "--", "/bin/true"});
  CHECK(r.exit_code == 125);
  // One line: "stockade: <step> '<path>': <strerror>".
  INFO(r.err);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.rfind("stockade: ", 0) == 0);
  CHECK(r.err.find("'" + missing + "'") != std::string::npos);
  CHECK(r.err.find("No such file or directory") != std::string::npos);

  std::string script = dir.path() + "/not-executable";
  write_file(script, "#!/bin/sh\nexit 0\n", 0644);
  r = test::stockade({"run", "-q", "--ro-bind", script + ":/script", "--", "/script"});
  INFO(r.err);
  CHECK(r.exit_code == 126);

  r = test::stockade({"run", "-q", "--", "/no/such/command"});
  INFO(r.err);
  CHECK(r.exit_code == 127);
  r = test::stockade({"run", "-q", "--", test::unique_name("no-such-command")});
  INFO(r.err);
  CHECK(r.exit_code == 127);

  r = test::stockade({"run", "-q", "--", "/bin/sh", "-c", "kill -USR1 $$"});
  INFO(r.err);
  CHECK(r.exit_code == 128 + 10);
  r = test::stockade({"run", "-q", "--", "/bin/sh", "-c", "exit 7"});
  INFO(r.err);
  CHECK(r.exit_code == 7);
  r = test::stockade({"run", "-q", "--net", "bogus", "--", "/bin/true"});
  CHECK(r.exit_code == 2);
}

TEST_CASE("a rootless run maps uid 0 in the jail to the caller's own uid and nothing else",
          "[root][jail]") {
  SKIP_UNLESS_ROOT();
  std::string why;
  if (!unprivileged_userns_allowed(&why)) {
    WARN("skipped: the kernel refuses user namespaces to uid 65534: " << why);
    return;
  }
  test::TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  // A copy uid 65534 can surely read, wherever the build directory is.
  std::string attack = dir.path() + "/attack";
  std::filesystem::copy_file(test::attack_bin(), attack);
  REQUIRE(::chmod(attack.c_str(), 0755) == 0);
  // Its own registry directory: the caller's XDG_RUNTIME_DIR.
  std::string runtime = dir.path() + "/runtime";
  REQUIRE(::mkdir(runtime.c_str(), 0700) == 0);
  REQUIRE(::chown(runtime.c_str(), kNobody, kNobody) == 0);

  test::RunOptions as_nobody;
  as_nobody.uid = kNobody;
  as_nobody.gid = kNobody;
  as_nobody.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + runtime};
  auto r = test::stockade(
      {"run", "-q", "--ro-bind", attack + ":/attack", "--", "/attack", "uid-map"}, as_nobody);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "uid_map=0 65534 1");
  // Its registry entry went with it.
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(runtime + "/stockade/jails", ec))
    FAIL("left behind: " << e.path());
  // A bridged network needs root: refused, saying so, with nothing built.
  auto bridged = test::stockade({"run", "-q", "--net", "bridge", "--", "/bin/true"}, as_nobody);
  CHECK(bridged.exit_code == 125);
  CHECK_THAT(bridged.err, Catch::Contains("needs root"));
}

TEST_CASE("a bind source that is a symlink planted by another user is not followed",
          "[root][jail]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string ws = dir.path() + "/ws";
  REQUIRE(::mkdir(ws.c_str(), 0755) == 0);
  // A workspace reused across jails: a previous jail (its host uid) left cache -> /etc.
  std::string planted = ws + "/cache";
  REQUIRE(::symlink("/etc", planted.c_str()) == 0);
  REQUIRE(::lchown(planted.c_str(), kStrangerUid, kStrangerUid) == 0);

  auto r = test::stockade({"run", "-q", "--bind", planted + ":/cache", "--", "/bin/true"});
  INFO(r.err);
  CHECK(r.exit_code == 125);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find("'" + planted + "'") != std::string::npos);
  CHECK(r.err.find("symlink") != std::string::npos);
  // Also when the symlink is a middle component of the source.
  r = test::stockade({"run", "-q", "--ro-bind", planted + "/hostname:/h", "--", "/bin/true"});
  INFO(r.err);
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("'" + planted + "'") != std::string::npos);

  // Control: a root-owned symlink is the operator's own and is followed.
  std::string real = ws + "/real";
  REQUIRE(::mkdir(real.c_str(), 0755) == 0);
  write_file(real + "/file", "data\n", 0644);
  std::string trusted = ws + "/trusted";
  REQUIRE(::symlink(real.c_str(), trusted.c_str()) == 0);
  r = test::attack({"--bind", trusted + ":/cache"}, "read", {"/cache/file"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "ok");
}
