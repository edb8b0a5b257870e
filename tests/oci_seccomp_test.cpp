// Docker/OCI seccomp profiles: the importer and its errors (a corpus under tests/policies/oci),
// the program compiled from an imported profile, the policy-file and --seccomp wiring, and jails
// run under an imported profile.
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sys.hpp"
#include "policy/spec.hpp"
#include "supervisor/detail/plan.hpp"
#include "supervisor/detail/seccomp.hpp"
#include "support.hpp"
#include "tests/support.hpp"

namespace fs = std::filesystem;
using policy::SeccompAction;
using policy::SyscallArg;

namespace {

using test::errno_of;

const std::string kDir = std::string(POLICIES_DIR) + "/oci";
const std::string kMoby = kDir + "/moby_like.json";
const std::string kAllowAll = kDir + "/allow_all.json";
const std::string kUnknown = kDir + "/unknown_syscall.json";
// Every namespace flag, CLONE_NEWTIME included: what moby_like.json's clone entry masks.
constexpr std::uint64_t kNamespaceFlags = 0x7e020080;

policy::SeccompPolicy import(const std::string& path, const std::vector<int>& caps = {},
                             std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> ignored;
  auto p = policy::import_oci_seccomp(path, warnings ? warnings : &ignored, caps);
  INFO(path);
  REQUIRE(p);
  return *p;
}

std::vector<const policy::SyscallRule*> rules_for(const policy::SeccompPolicy& p,
                                                  const std::string& name) {
  std::vector<const policy::SyscallRule*> out;
  for (const auto& r : p.base_rules)
    if (r.syscall == name) out.push_back(&r);
  return out;
}

// Runs fn in a forked child under the policy's program, and the clone3 guard where a jail would
// load it; returns fn's result (an errno, or 0).
template <class Fn>
int errno_under(const policy::SeccompPolicy& policy, Fn fn) {
  auto prog = supervisor::detail::build_profile(policy);
  REQUIRE(prog);
  auto guard = supervisor::detail::clone3_guard();
  REQUIRE(guard);
  if (supervisor::detail::imported_allows_clone3(policy))
    return test::errno_under_programs({*guard, *prog}, fn);
  return test::errno_under_programs({*prog}, fn);
}

// A raw clone with these flags; a child that gets through exits at once.
int clone_errno(unsigned long flags) {
  long rc = ::syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (rc == 0) ::_exit(0);
  if (rc > 0) ::waitpid(static_cast<pid_t>(rc), nullptr, 0);
  return errno_of(rc);
}

}  // namespace

TEST_CASE("a moby-style profile imports as its own base: its default, its rules, nothing built in",
          "[oci]") {
  std::vector<std::string> warnings;
  auto p = import(kMoby, {}, &warnings);
  CHECK(p.profile == "oci:" + kMoby);
  CHECK(p.default_action == SeccompAction::kErrno);
  CHECK(p.default_errno == EPERM);
  CHECK(p.rules.empty());
  CHECK(rules_for(p, "read").size() == 1);
  // Other architectures' syscalls (_llseek, socketcall) are dropped without a word, as under runc.
  CHECK(rules_for(p, "_llseek").empty());
  CHECK(warnings.empty());
  auto personality = rules_for(p, "personality");
  REQUIRE(personality.size() == 5);
  CHECK(personality[4]->args.at(0).op == SyscallArg::Op::kEq);
  CHECK(personality[4]->args.at(0).value == 0xffffffff);
  // OCI's MASKED_EQ is (arg & value) == valueTwo.
  auto clone = rules_for(p, "clone");
  REQUIRE(clone.size() == 1);
  REQUIRE(clone[0]->args.size() == 1);
  CHECK(clone[0]->args[0].op == SyscallArg::Op::kMaskedEq);
  CHECK(clone[0]->args[0].mask == kNamespaceFlags);
  CHECK(clone[0]->args[0].value == 0);
  auto clone3 = rules_for(p, "clone3");
  REQUIRE(clone3.size() == 1);
  CHECK(clone3[0]->action == SeccompAction::kErrno);
  CHECK(clone3[0]->errno_value == ENOSYS);
  // Gates: minKernel 4.8 holds on any kernel stockade runs on, 99.0 on none; arm64-only and
  // not-amd64 entries do not apply here.
  CHECK(rules_for(p, "ptrace").size() == 1);
  CHECK(rules_for(p, "bpf").empty());
  CHECK(rules_for(p, "syslog").empty());
  CHECK(rules_for(p, "sync").empty());
}

TEST_CASE("entries gated on capabilities follow the jail's capability allowlist", "[oci]") {
  auto none = import(kMoby);
  CHECK(rules_for(none, "mount").empty());
  CHECK(rules_for(none, "chroot").empty());
  auto admin = import(kMoby, {CAP_SYS_ADMIN});
  // includes.caps: the CAP_SYS_ADMIN entry applies; excludes.caps: the restricted clone and the
  // clone3 refusal do not.
  CHECK(rules_for(admin, "mount").size() == 1);
  auto clone = rules_for(admin, "clone");
  REQUIRE(clone.size() == 1);
  CHECK(clone[0]->args.empty());
  auto clone3 = rules_for(admin, "clone3");
  REQUIRE(clone3.size() == 1);
  CHECK(clone3[0]->action == SeccompAction::kAllow);
  CHECK(rules_for(admin, "chroot").empty());
  CHECK(rules_for(import(kMoby, {CAP_SYS_CHROOT}), "chroot").size() == 1);
}

TEST_CASE("a moby-style profile enforces its allowlist and its argument checks", "[oci]") {
  auto p = import(kMoby);
  CHECK(errno_under(p, [] { return errno_of(::getpid()); }) == 0);
  // Plain fork: clone without namespace flags passes the masked check.
  CHECK(errno_under(p, [] { return clone_errno(0); }) == 0);
  CHECK(errno_under(p, [] { return clone_errno(CLONE_NEWUSER); }) == EPERM);
  CHECK(errno_under(p, [] { return clone_errno(CLONE_NEWNS); }) == EPERM);
  // Not on the allowlist: the default action.
  CHECK(errno_under(p, [] { return errno_of(::unshare(CLONE_NEWUSER)); }) == EPERM);
  CHECK(errno_under(p, [] { return errno_of(::mount("none", "/tmp", "tmpfs", 0, nullptr)); }) ==
        EPERM);
  CHECK(errno_under(p, [] { return errno_of(::syscall(SYS_bpf, 0, nullptr, 0)); }) == EPERM);
  // personality: a query and the listed personas pass, turning off ASLR does not.
  CHECK(errno_under(p, [] { return errno_of(::personality(0xffffffff)); }) == 0);
  CHECK(errno_under(p, [] { return errno_of(::personality(ADDR_NO_RANDOMIZE)); }) == EPERM);
  // clone3 gets what the profile says (ENOSYS), with no guard needed.
  CHECK_FALSE(supervisor::detail::imported_allows_clone3(p));
  CHECK(errno_under(p, [] { return errno_of(::syscall(SYS_clone3, nullptr, 0)); }) == ENOSYS);
}

TEST_CASE("an allow-all profile denies only what it lists, with its own errno values", "[oci]") {
  auto p = import(kAllowAll);
  CHECK(p.default_action == SeccompAction::kAllow);
  CHECK(errno_under(p, [] {
          char buf[64];
          return errno_of(::syscall(SYS_getcwd, buf, sizeof buf));
        }) == EACCES);
  CHECK(errno_under(p, [] { return errno_of(::socket(AF_VSOCK, SOCK_STREAM, 0)); }) ==
        EAFNOSUPPORT);
  CHECK(errno_under(p, [] { return errno_of(::socket(AF_UNIX, SOCK_STREAM, 0)); }) == 0);
  CHECK(errno_under(p, [] { return errno_of(::umount2("/nonexistent", 0)); }) == EPERM);
  CHECK(errno_under(p, [] { return clone_errno(0); }) == 0);
}

TEST_CASE("an imported profile that lets clone3 through gets the clone3 guard", "[oci]") {
  CHECK(supervisor::detail::imported_allows_clone3(import(kAllowAll)));
  CHECK(supervisor::detail::imported_allows_clone3(import(kMoby, {CAP_SYS_ADMIN})));
  CHECK_FALSE(supervisor::detail::imported_allows_clone3(import(kMoby)));
  auto p = import(kAllowAll);
  CHECK(errno_under(p, [] { return errno_of(::syscall(SYS_clone3, nullptr, 0)); }) == ENOSYS);
  // The plan loads it: the same decision make_plan takes for the jail.
  policy::RunFlags f;
  f.command = {"/bin/true"};
  f.seccomp = kAllowAll;
  auto spec = policy::make_spec(f);
  REQUIRE(spec);
  auto plan = supervisor::detail::make_plan(*spec, /*rootless=*/true);
  REQUIRE(plan);
  CHECK_FALSE((*plan)->clone3_guard.empty());
  f.seccomp = kMoby;
  spec = policy::make_spec(f);
  REQUIRE(spec);
  plan = supervisor::detail::make_plan(*spec, /*rootless=*/true);
  REQUIRE(plan);
  CHECK((*plan)->clone3_guard.empty());
}

TEST_CASE("a policy's rules replace what an imported profile says about their syscall", "[oci]") {
  auto p = import(kAllowAll);
  policy::SyscallRule r;
  r.syscall = "getcwd";
  r.action = SeccompAction::kAllow;
  p.rules.push_back(r);
  CHECK(errno_under(p, [] {
          char buf[64];
          return errno_of(::syscall(SYS_getcwd, buf, sizeof buf));
        }) == 0);
  // The profile's other rules stay.
  CHECK(errno_under(p, [] { return errno_of(::umount2("/nonexistent", 0)); }) == EPERM);
}

TEST_CASE("malformed OCI profiles are refused with the file, the JSON path and what is wrong",
          "[oci]") {
  std::vector<std::string> cases;
  for (auto& e : fs::directory_iterator(kDir + "/bad"))
    if (e.path().extension() == ".json") cases.push_back(e.path().string());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 10);
  for (const auto& path : cases) {
    INFO(path);
    std::string expect = test::read_file(path.substr(0, path.size() - 5) + ".expect");
    while (!expect.empty() && expect.back() == '\n') expect.pop_back();
    std::vector<std::string> warnings;
    auto p = policy::import_oci_seccomp(path, &warnings);
    REQUIRE_FALSE(p);
    std::string got = p.error().message();
    // Messages name the file as given; the corpus expects it relative to its directory.
    if (got.starts_with(kDir + "/bad/")) got.erase(0, kDir.size() + 5);
    CHECK(got == expect);
  }
  auto missing = policy::import_oci_seccomp(kDir + "/no_such_file.json", nullptr);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().err == ENOENT);
}

TEST_CASE("a syscall unknown on this architecture is skipped with a warning, the rest loads",
          "[oci]") {
  std::vector<std::string> warnings;
  auto p = import(kUnknown, {}, &warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] ==
        kUnknown + ": syscall 'no_such_syscall_xyz' is not known on x86_64, skipped");
  CHECK(rules_for(p, "getcwd").size() == 1);
  CHECK(errno_under(p, [] {
          char buf[64];
          return errno_of(::syscall(SYS_getcwd, buf, sizeof buf));
        }) == EACCES);
}

TEST_CASE("a policy file imports an OCI profile with seccomp.profile = \"oci:PATH\"", "[oci]") {
  test::TempDir tmp;
  std::string file = tmp.path() + "/p.toml";
  std::ofstream(file) << "[capabilities]\nallow = [\"SYS_ADMIN\"]\n\n[seccomp]\nprofile = \"oci:"
                      << kMoby << "\"\n\n[[seccomp.rule]]\nsyscall = \"getcwd\"\n"
                      << "action = \"errno\"\nerrno = \"EACCES\"\n";
  auto spec = policy::load_policy(file);
  REQUIRE(spec);
  CHECK(spec->seccomp.profile == "oci:" + kMoby);
  CHECK(spec->seccomp.rules.size() == 1);
  // Evaluated against the policy's capabilities.
  CHECK(rules_for(spec->seccomp, "mount").size() == 1);
  // The effective policy names the profile, not its rules, and loads back the same.
  std::string toml = policy::to_toml(*spec);
  CHECK_THAT(toml, Catch::Contains("profile = \"oci:" + kMoby + "\""));
  std::string again = tmp.path() + "/again.toml";
  std::ofstream(again) << toml;
  auto back = policy::load_policy(again);
  REQUIRE(back);
  CHECK(policy::to_json(*back) == policy::to_json(*spec));
  CHECK(back->seccomp.base_rules.size() == spec->seccomp.base_rules.size());
  // An error in the profile points at the key, then into the JSON.
  std::ofstream(file) << "[seccomp]\nprofile = \"oci:" << kDir << "/bad/bad_op.json\"\n";
  auto bad = policy::load_policy(file);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message() == file + ":2:11: " + kDir +
                                     "/bad/bad_op.json: syscalls[3].args[0].op: unknown operator "
                                     "'SCMP_CMP_XX'; use SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE or "
                                     "_MASKED_EQ");
  std::ofstream(file) << "[seccomp]\nprofile = \"oci:moby.json\"\n";
  bad = policy::load_policy(file);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message(), Catch::Contains("the path after 'oci:' must be absolute"));
}

TEST_CASE("--seccomp takes an OCI profile by its .json path, evaluated against the final caps",
          "[oci]") {
  policy::RunFlags f;
  f.command = {"/bin/true"};
  f.seccomp = kMoby;
  auto spec = policy::make_spec(f);
  REQUIRE(spec);
  CHECK(spec->seccomp.profile == "oci:" + kMoby);
  CHECK(rules_for(spec->seccomp, "mount").empty());
  f.caps = {"SYS_ADMIN"};
  spec = policy::make_spec(f);
  REQUIRE(spec);
  CHECK(rules_for(spec->seccomp, "mount").size() == 1);
  // --cap over a policy's imported profile imports it again with the added capability.
  test::TempDir tmp;
  std::string file = tmp.path() + "/p.toml";
  std::ofstream(file) << "[seccomp]\nprofile = \"oci:" << kMoby << "\"\n";
  auto base = policy::load_policy(file);
  REQUIRE(base);
  CHECK(rules_for(base->seccomp, "mount").empty());
  policy::RunFlags g;
  g.command = {"/bin/true"};
  g.caps = {"SYS_ADMIN"};
  auto over = policy::apply_flags(*base, g);
  REQUIRE(over);
  CHECK(rules_for(over->seccomp, "mount").size() == 1);
  f.caps.clear();
  f.seccomp = kDir + "/bad/unknown_action.json";
  auto bad = policy::make_spec(f);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message(),
             Catch::StartsWith("--seccomp: " + kDir + "/bad/unknown_action.json: syscalls[1]"));
  f.seccomp = "moby";
  CHECK_FALSE(policy::make_spec(f));
}

TEST_CASE("a jail under a moby-style profile runs a shell, and namespace and mount attacks fail",
          "[oci][root]") {
  SKIP_UNLESS_ROOT();
  auto sh = test::stockade({"run", "-q", "--seccomp", kMoby, "--", "/bin/sh", "-c", "echo ok"});
  INFO(sh.err);
  CHECK(sh.exit_code == 0);
  CHECK(sh.out == "ok\n");
  if (fs::exists("/usr/bin/python3")) {
    auto py = test::stockade(
        {"run", "-q", "--seccomp", kMoby, "--", "/usr/bin/python3", "-c", "print(6 * 7)"});
    INFO(py.err);
    CHECK(py.exit_code == 0);
    CHECK(py.out == "42\n");
  }
  for (const char* name : {"unshare-user", "clone-newuser", "clone-newns"}) {
    auto r = test::attack({"--seccomp", kMoby}, name);
    INFO(name << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(test::line(r.out) == "errno=EPERM");
  }
  auto mnt = test::attack({"--seccomp", kMoby}, "mount-tmpfs", {"/tmp"});
  INFO(mnt.err);
  REQUIRE(mnt.exit_code == 0);
  CHECK(test::line(mnt.out) == "errno=EPERM");
  auto c3 = test::attack({"--seccomp", kMoby}, "clone3-newuser");
  REQUIRE(c3.exit_code == 0);
  CHECK(test::line(c3.out) == "errno=ENOSYS");
  // An allow-all profile lets clone3 through, and so gets the guard.
  auto guarded = test::attack({"--seccomp", kAllowAll}, "clone3-newuser");
  REQUIRE(guarded.exit_code == 0);
  CHECK(test::line(guarded.out) == "errno=ENOSYS");
  CHECK(test::registry_entries_left_behind().empty());
  CHECK(test::leases_left_behind().empty());
}

TEST_CASE("a profile that denies what the jail's pid 1 needs still returns the workload's status",
          "[oci][root]") {
  SKIP_UNLESS_ROOT();
  // moby_like.json allows no sendto or wait4 of pid 1's kind: the profile binds the workload
  // only, so the status still reaches the supervisor.
  auto r =
      test::stockade({"run", "-q", "--seccomp", std::string(POLICIES_DIR) + "/oci/moby_like.json",
                      "--", "/bin/sh", "-c", "exit 3"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.empty());
}
