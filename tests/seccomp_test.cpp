#include "supervisor/detail/seccomp.hpp"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "common/sys.hpp"
#include "tests/support.hpp"

using supervisor::detail::build_profile;
using supervisor::detail::compile_profile;

namespace {

using test::errno_of;

bool same(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof a[0]) == 0;
}

policy::SeccompPolicy profile(const std::string& name) {
  policy::SeccompPolicy p;
  p.profile = name;
  return p;
}

// Runs fn in a forked child under the policy's program (and the clone3 guard, as jails with a
// strict profile load it); returns fn's result (an errno, or 0).
template <class Fn>
int errno_under(const policy::SeccompPolicy& policy, Fn fn) {
  auto progs = build_profile(policy);
  REQUIRE(progs);
  auto guard = supervisor::detail::clone3_guard();
  REQUIRE(guard);
  if (policy.profile == "strict") return test::errno_under_programs({*guard, *progs}, fn);
  return test::errno_under_programs({*progs}, fn);
}

template <class Fn>
int errno_under_profile(Fn fn) {
  return errno_under(profile("default"), fn);
}

}  // namespace

TEST_CASE("the precompiled default profile is exactly what libseccomp compiles now", "[seccomp]") {
  auto embedded = build_profile(profile("default"));
  auto fresh = compile_profile(profile("default"));
  REQUIRE(embedded);
  REQUIRE(fresh);
  CHECK(same(*embedded, *fresh));
}

TEST_CASE("the precompiled clone3 guard is exactly what libseccomp compiles now", "[seccomp]") {
  auto embedded = supervisor::detail::clone3_guard();
  auto fresh = supervisor::detail::compile_clone3_guard();
  REQUIRE(embedded);
  REQUIRE(fresh);
  CHECK(same(*embedded, *fresh));
}

TEST_CASE("an unknown seccomp profile is an error naming it", "[seccomp]") {
  auto p = build_profile(profile("nope"));
  REQUIRE_FALSE(p);
  CHECK_THAT(p.error().what, Catch::Contains("'nope'"));
}

TEST_CASE("the default profile denies escape syscalls with EPERM and allows ordinary ones",
          "[seccomp]") {
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_setns, 0, 0)); }) == EPERM);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_unshare, CLONE_NEWUSER)); }) ==
        EPERM);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_unshare, CLONE_NEWNET)); }) ==
        EPERM);
  CHECK(errno_under_profile([] {
          return errno_of(::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
        }) == EPERM);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_bpf, 0, 0, 0)); }) == EPERM);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_open_by_handle_at, 0, 0, 0)); }) ==
        EPERM);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_ptrace, 0, 0, 0, 0)); }) == EPERM);
  CHECK(errno_under_profile([] { return errno_of(::socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)); }) ==
        EPERM);
  // Ordinary work goes through.
  CHECK(errno_under_profile([] { return errno_of(::getpid()); }) == 0);
  CHECK(errno_under_profile([] { return errno_of(::socket(AF_UNIX, SOCK_STREAM, 0)); }) == 0);
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_unshare, CLONE_FILES)); }) == 0);
}

TEST_CASE("threads and processes can still be created under the default profile", "[seccomp]") {
  // clone3 is not filtered (its flags are behind a pointer); the jail's user namespace limit
  // stops nested user namespaces instead (tested against a real jail).
  CHECK(errno_under_profile([] { return errno_of(::syscall(SYS_clone3, nullptr, 0)); }) != EPERM);
  CHECK(errno_under_profile([] {
          pid_t p = ::fork();
          if (p == 0) ::_exit(0);
          int st;
          return p > 0 && ::waitpid(p, &st, 0) == p ? 0 : errno;
        }) == 0);
}

TEST_CASE("TIOCSTI is denied even with junk in the upper 32 bits of the command", "[seccomp]") {
  // The kernel truncates ioctl's cmd to 32 bits; the filter must compare only those.
  CHECK(errno_under_profile([] {
          char c = 'x';
          return errno_of(::syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
        }) == EPERM);
  CHECK(errno_under_profile([] {
          char c = 'x';
          return errno_of(::syscall(SYS_ioctl, 0, static_cast<unsigned long>(TIOCSTI), &c));
        }) == EPERM);
}

TEST_CASE("the precompiled strict profile is exactly what libseccomp compiles now", "[seccomp]") {
  auto embedded = build_profile(profile("strict"));
  auto fresh = compile_profile(profile("strict"));
  REQUIRE(embedded);
  REQUIRE(fresh);
  CHECK(same(*embedded, *fresh));
}

TEST_CASE("the strict profile runs ordinary work and refuses what is not on its list",
          "[seccomp]") {
  auto strict = profile("strict");
  CHECK(errno_under(strict, [] { return errno_of(::getpid()); }) == 0);
  CHECK(errno_under(strict, [] { return errno_of(::socket(AF_UNIX, SOCK_STREAM, 0)); }) == 0);
  CHECK(errno_under(strict, [] {
          pid_t p = ::fork();
          if (p == 0) ::_exit(0);
          int st;
          return p > 0 && ::waitpid(p, &st, 0) == p ? 0 : errno;
        }) == 0);
  // Not on the list.
  CHECK(errno_under(strict, [] { return errno_of(::chroot("/")); }) == EPERM);
  CHECK(errno_under(strict, [] { return errno_of(::syscall(SYS_mknodat, AT_FDCWD, "x", 0, 0)); }) ==
        EPERM);
  // On the list with argument checks.
  CHECK(errno_under(strict, [] { return errno_of(::syscall(SYS_unshare, CLONE_NEWNET)); }) ==
        EPERM);
  CHECK(errno_under(strict, [] { return errno_of(::socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)); }) ==
        EPERM);
  CHECK(errno_under(strict, [] {
          char c = 'x';
          return errno_of(::syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
        }) == EPERM);
  // An ordinary ioctl still gets through the filter (the kernel answers ENOTTY for /dev/null).
  CHECK(errno_under(strict, [] {
          int fd = ::open("/dev/null", O_RDONLY);
          int n;
          return errno_of(::ioctl(fd, FIONREAD, &n));
        }) != EPERM);
  // clone3 meets the guard: ENOSYS, so libc falls back to clone.
  CHECK(errno_under(strict, [] { return errno_of(::syscall(SYS_clone3, nullptr, 0)); }) == ENOSYS);
}

TEST_CASE("a policy's rules replace what the profile says about their syscall", "[seccomp]") {
  // socket only for AF_UNIX and AF_INET on top of strict.
  auto p = profile("strict");
  for (std::uint64_t family : {AF_UNIX, AF_INET}) {
    policy::SyscallRule r;
    r.syscall = "socket";
    r.action = policy::SeccompAction::kAllow;
    r.args = {{0, policy::SyscallArg::Op::kEq, family, 0}};
    p.rules.push_back(r);
  }
  CHECK(errno_under(p, [] { return errno_of(::socket(AF_UNIX, SOCK_STREAM, 0)); }) == 0);
  CHECK(errno_under(p, [] { return errno_of(::socket(AF_INET, SOCK_STREAM, 0)); }) == 0);
  CHECK(errno_under(p, [] { return errno_of(::socket(AF_INET6, SOCK_STREAM, 0)); }) == EPERM);
  // An errno of the policy's choosing on top of default.
  auto d = profile("default");
  policy::SyscallRule r;
  r.syscall = "getcwd";
  r.action = policy::SeccompAction::kErrno;
  r.errno_value = EACCES;
  d.rules.push_back(r);
  CHECK(errno_under(d, [] {
          char buf[64];
          return errno_of(::syscall(SYS_getcwd, buf, sizeof buf));
        }) == EACCES);
  // A rule naming no syscall libseccomp knows is an error, not silently dropped.
  auto bad = profile("default");
  r.syscall = "no_such_syscall";
  bad.rules.push_back(r);
  CHECK_FALSE(build_profile(bad));
}
