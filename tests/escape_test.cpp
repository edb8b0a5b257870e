// Escape attempts from inside a jail: other namespaces, host processes, the kernel's attack
// surface, the terminal, inherited fds and kernel knobs. Each runs the attack program in a real
// jail and checks the precise error; a positive control shows the attack is real where nothing
// stops it.
#include <fcntl.h>
#include <pty.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support.hpp"

namespace {

using test::line;

// A host namespace file made visible the way `ip netns add` does it: /proc/self/ns/net
// bind-mounted onto a plain file. stockade refuses to bind the magic link itself (it resolves
// symlinks by hand), so this is how an operator could hand one to a jail. The directory name
// avoids "stockade" so the mount never counts as a jail's leftover in other tests.
class HostNetnsFile {
 public:
  HostNetnsFile() {
    char tmpl[] = "/tmp/nsfile-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    path_ = dir_ + "/net";
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd >= 0) ::close(fd);
    mounted_ = ::mount("/proc/self/ns/net", path_.c_str(), nullptr, MS_BIND, nullptr) == 0;
  }
  ~HostNetnsFile() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::unlink(path_.c_str());
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  HostNetnsFile(const HostNetnsFile&) = delete;
  HostNetnsFile& operator=(const HostNetnsFile&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("a jailed process cannot setns into its init's or its own network namespace",
          "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // pid 1 is the jail's init and not dumpable: its ns files cannot even be opened.
  auto r = test::attack({}, "setns", {"/proc/1/ns/net"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EACCES");
  // Its own ns file opens fine, so this reaches setns itself, which is denied.
  r = test::attack({}, "setns", {"/proc/self/ns/net"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EPERM");
}

TEST_CASE("a jailed process cannot setns into a host network namespace bound into the jail",
          "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // The magic link itself is refused by stockade before any jail exists (it is a symlink whose
  // target is not a path), so the jail never starts and never sees the host's namespace.
  auto direct = test::attack({"--ro-bind", "/proc/self/ns/net:/hostns"}, "setns", {"/hostns"});
  INFO(direct.err);
  CHECK(direct.exit_code == 125);
  CHECK(direct.out.empty());

  HostNetnsFile ns;
  REQUIRE(ns.mounted());
  // Control: on the host the same file and the same call work.
  auto host = test::attack_on_host("setns", {ns.path()});
  CHECK(line(host.out) == "ok");

  auto r = test::attack({"--ro-bind", ns.path() + ":/hostns"}, "setns", {"/hostns"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EPERM");
  // Not even with CAP_SYS_ADMIN in the jail: the host namespace belongs to the host's userns.
  r = test::attack({"--cap", "SYS_ADMIN", "--ro-bind", ns.path() + ":/hostns"}, "setns",
                   {"/hostns"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EPERM");
}

TEST_CASE("a jailed process can neither ptrace nor kill a host process", "[root][escape]") {
  SKIP_UNLESS_ROOT();
  test::Process victim({"/bin/sleep", "30"});
  REQUIRE(victim.started());
  REQUIRE(test::alive(victim.pid()));
  std::string pid = std::to_string(victim.pid());

  auto r = test::attack({}, "ptrace", {pid});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EPERM");
  // The host pid does not exist in the jail's pid namespace: kill finds nothing to signal.
  r = test::attack({}, "kill", {pid});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=ESRCH");
  // Even with the capabilities a host root would use for it.
  r = test::attack({"--cap", "KILL", "--cap", "SYS_PTRACE"}, "kill", {pid});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=ESRCH");
  r = test::attack({"--cap", "KILL", "--cap", "SYS_PTRACE"}, "ptrace", {pid});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EPERM");

  CHECK(test::alive(victim.pid()));
  CHECK(victim.wait(0) == -1);  // still running, not reaped
}

TEST_CASE("escape syscalls fail with EPERM inside a jail", "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // Each of these works (or fails for another reason) for root on the host; in the jail the
  // seccomp filter answers EPERM before the kernel looks at the arguments.
  const std::vector<std::string> attacks = {
      "unshare-user",   "unshare-net", "clone-newuser", "clone-newns",
      "open-by-handle", "bpf",         "keyctl",        "userfaultfd",
      "io-uring",       "vsock",       "perf",          "init-module",
  };
  // With CAP_SYS_ADMIN in the jail's user namespace the kernel would allow some of them (new
  // mount or network namespaces), so the second round shows the filter is what refuses them.
  const std::vector<std::vector<std::string>> cap_sets = {
      {}, {"--cap", "SYS_ADMIN", "--cap", "NET_ADMIN"}};
  for (const auto& name : attacks) {
    INFO("attack " << name);
    auto host = test::attack_on_host(name);
    REQUIRE(host.exit_code == 0);
    INFO("on the host: " << line(host.out));
    CHECK(line(host.out) != "errno=EPERM");

    for (const auto& caps : cap_sets) {
      INFO("with " << caps.size() / 2 << " capabilities");
      auto r = test::attack(caps, name);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(line(r.out) == "errno=EPERM");
    }
  }
  // mount and its family, even with CAP_SYS_ADMIN in the jail's own user namespace.
  for (auto caps : {std::vector<std::string>{}, std::vector<std::string>{"--cap", "SYS_ADMIN"}}) {
    auto r = test::attack(caps, "mount-tmpfs", {"/tmp"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EPERM");
  }
}

TEST_CASE("a jailed process cannot create a user namespace through clone3", "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // The filter cannot read clone3's flags. Two designs stop it: answering clone3 with ENOSYS
  // (libc falls back to clone, which the filter inspects), or user.max_user_namespaces = 0 in
  // the jail's user namespace (ENOSPC). Either is fine; success is not.
  auto host = test::attack_on_host("clone3-newuser");
  CHECK(line(host.out) == "ok");
  auto r = test::attack({}, "clone3-newuser");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::string got = line(r.out);
  INFO("got " << got);
  CHECK((got == "errno=ENOSYS" || got == "errno=ENOSPC"));
  // With every capability that could matter, too.
  r = test::attack({"--cap", "SYS_ADMIN", "--cap", "SETUID", "--cap", "SETGID"}, "clone3-newuser");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  got = line(r.out);
  INFO("with capabilities, got " << got);
  CHECK((got == "errno=ENOSYS" || got == "errno=ENOSPC"));
}

TEST_CASE("a jailed process cannot create a namespace through clone3, even with CAP_SYS_ADMIN",
          "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // The profile denies clone and unshare with any CLONE_NEW* flag; clone3 carries the same
  // flags where the filter cannot see them, so it must not be a way around that rule. (The
  // user namespace case is the test above.)
  CHECK(line(test::attack_on_host("clone3-newnet").out) == "ok");
  for (auto caps : {std::vector<std::string>{}, std::vector<std::string>{"--cap", "SYS_ADMIN"}}) {
    INFO("with " << caps.size() / 2 << " capabilities");
    auto plain = test::attack(caps, "clone-newns");
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
    CHECK(line(plain.out) == "errno=EPERM");
    auto r = test::attack(caps, "clone3-newnet");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::string got = line(r.out);
    INFO("clone3 got " << got);
    CHECK((got == "errno=ENOSYS" || got == "errno=EPERM"));
  }
}

TEST_CASE("a jail cannot raise its own user.max_user_namespaces limit", "[root][escape]") {
  SKIP_UNLESS_ROOT();
  // With CAP_SYS_RESOURCE the file's owner check passes, so only the read-only /proc/sys stops
  // the write that would re-enable nested user namespaces.
  auto r = test::attack({"--cap", "SYS_RESOURCE"}, "sysctl-write",
                        {"/proc/sys/user/max_user_namespaces", "100"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EROFS");
}

TEST_CASE("/proc/sys is read-only inside a jail, even for the jail's own network namespace",
          "[root][escape]") {
  SKIP_UNLESS_ROOT();
  std::string before = test::read_file("/proc/sys/net/ipv4/ip_forward");
  // ip_forward belongs to the jail's own netns; with CAP_NET_ADMIN there the permission check
  // passes (EROFS comes after it), so only the read-only mount stops the write.
  auto r =
      test::attack({"--cap", "NET_ADMIN"}, "sysctl-write", {"/proc/sys/net/ipv4/ip_forward", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EROFS");
  // Without the capability the permission check already refuses it.
  r = test::attack({}, "sysctl-write", {"/proc/sys/net/ipv4/ip_forward", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "errno=EACCES");
  CHECK(test::read_file("/proc/sys/net/ipv4/ip_forward") == before);
}

TEST_CASE("TIOCSTI is denied in a jail, also with junk in the upper 32 bits of the request",
          "[root][escape]") {
  SKIP_UNLESS_ROOT();
  int master = -1, slave = -1;
  REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
  struct Closer {
    int a, b;
    ~Closer() {
      ::close(a);
      ::close(b);
    }
  } closer{master, slave};
  test::RunOptions with_tty;
  with_tty.stdin_fd = slave;

  // The jail's workload can make the pty its controlling terminal: then, with the default
  // dev.tty.legacy_tiocsti=1, the kernel itself would let TIOCSTI through, so the EPERM below
  // comes from the filter and nothing else.
  auto ctty = test::attack({}, "ctty", {}, with_tty);
  INFO(ctty.err);
  REQUIRE(ctty.exit_code == 0);
  CHECK(line(ctty.out) == "ok");

  for (const char* name : {"tiocsti", "tiocsti-high"}) {
    INFO("attack " << name);
    // Control: with the pty as stdin, root on the host can inject (the kernel ignores the upper
    // 32 bits of cmd, so the "high" variant is the same request to it).
    auto host = test::attack_on_host(name, {}, with_tty);
    CHECK(line(host.out) == "ok");
    // In the jail the attack makes the pty its controlling terminal first.
    auto r = test::attack({}, name, {}, with_tty);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(line(r.out) == "errno=EPERM");
  }
}

TEST_CASE("an fd the launcher left open is not visible in the jail", "[root][escape]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string secret = dir.path() + "/" + test::unique_name("leaked");
  int fd = ::open(secret.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  test::RunOptions leak;
  leak.pass_fds = {{fd, 7}};

  // Control: a program the launcher starts directly does inherit fd 7.
  auto host = test::attack_on_host("fds", {}, leak);
  REQUIRE(host.exit_code == 0);
  std::string list = "," + line(host.out).substr(4) + ",";  // after "fds="
  CHECK(list.find(",7,") != std::string::npos);

  // stockade inherits it the same way, but nothing above stderr reaches the workload.
  auto r = test::attack({}, "fds", {}, leak);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(line(r.out) == "fds=");
  ::close(fd);
}
