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

using supervisor::detail::build_profile;
using supervisor::detail::compile_profile;

namespace {

bool same(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof a[0]) == 0;
}

// Runs fn in a forked child under the default profile; returns fn's result (an errno, or 0).
template <class Fn>
int errno_under_profile(Fn fn) {
  auto progs = build_profile("default");
  REQUIRE(progs);
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    struct sock_fprog prog = {static_cast<unsigned short>(progs->size()), progs->data()};
    int err = 0;
    if (sys::seccomp_set_filter(0, &prog) != 0)
      err = -1;
    else
      err = fn();
    (void)!::write(pipefd[1], &err, sizeof err);
    ::_exit(0);
  }
  ::close(pipefd[1]);
  int err = -2;
  (void)!::read(pipefd[0], &err, sizeof err);
  ::close(pipefd[0]);
  int st;
  ::waitpid(pid, &st, 0);
  return err;
}

int errno_of(long rc) { return rc < 0 ? errno : 0; }

}  // namespace

TEST_CASE("the precompiled default profile is exactly what libseccomp compiles now", "[seccomp]") {
  auto embedded = build_profile("default");
  auto fresh = compile_profile("default");
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
  auto p = build_profile("nope");
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
