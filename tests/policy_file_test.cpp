// Policy files: the loader, its error messages (a corpus under tests/policies), the effective
// policy printers, flags over a policy, and the check / run --policy commands.
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "policy/spec.hpp"
#include "support.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kPolicies = POLICIES_DIR;
const std::string kExamples = EXAMPLES_DIR;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

std::vector<std::string> files_in(const std::string& dir, const std::string& ext) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Field-by-field equality: JailSpec has no operator== (it is plain data the supervisor reads).
void require_same(const policy::JailSpec& a, const policy::JailSpec& b) {
  CHECK(policy::to_json(a) == policy::to_json(b));
  CHECK(a.argv == b.argv);
  CHECK(a.env == b.env);
  CHECK(a.caps == b.caps);
  REQUIRE(a.mounts.size() == b.mounts.size());
  for (size_t i = 0; i < a.mounts.size(); ++i) {
    CHECK(a.mounts[i].src == b.mounts[i].src);
    CHECK(a.mounts[i].dst == b.mounts[i].dst);
    CHECK(a.mounts[i].read_only == b.mounts[i].read_only);
    CHECK(a.mounts[i].size == b.mounts[i].size);
  }
  REQUIRE(a.rlimits.size() == b.rlimits.size());
  for (size_t i = 0; i < a.rlimits.size(); ++i) {
    CHECK(a.rlimits[i].resource == b.rlimits[i].resource);
    CHECK(a.rlimits[i].soft == b.rlimits[i].soft);
    CHECK(a.rlimits[i].hard == b.rlimits[i].hard);
  }
  CHECK(a.seccomp.rules.size() == b.seccomp.rules.size());
  CHECK(a.time_limit == b.time_limit);
  CHECK(a.kill_grace == b.kill_grace);
  CHECK(a.net == b.net);
  CHECK(a.network.bridge == b.network.bridge);
  CHECK(a.network.subnet4 == b.network.subnet4);
  CHECK(a.network.subnet6 == b.network.subnet6);
}

}  // namespace

TEST_CASE("every broken policy in the corpus is refused with its exact message", "[policy]") {
  auto cases = files_in(kPolicies + "/bad", ".toml");
  REQUIRE(cases.size() >= 40);
  for (const auto& path : cases) {
    std::string expect_path = path.substr(0, path.size() - 5) + ".expect";
    INFO(path);
    REQUIRE(fs::exists(expect_path));
    std::string expect = test::read_file(expect_path);
    while (!expect.empty() && expect.back() == '\n') expect.pop_back();
    auto spec = policy::load_policy(path);
    REQUIRE_FALSE(spec);
    // Messages name files as given to the loader; the corpus expects them relative to its dir.
    CHECK(replace_all(spec.error().message(), kPolicies + "/bad/", "") == expect);
  }
}

TEST_CASE("an empty policy gives exactly the spec the command line gives", "[policy]") {
  auto spec = policy::load_policy(kPolicies + "/good/empty.toml");
  REQUIRE(spec);
  policy::RunFlags f;
  f.command = {"/bin/true"};
  auto flags = policy::make_spec(f);
  REQUIRE(flags);
  spec->argv = {"/bin/true"};
  require_same(*spec, *flags);
}

TEST_CASE("includes apply first; later keys win and arrays of tables append", "[policy]") {
  auto spec = policy::load_policy(kPolicies + "/good/child.toml");
  REQUIRE(spec);
  CHECK(spec->argv == std::vector<std::string>{"/bin/sh", "-c", "echo base"});
  CHECK(spec->uid == 2000);
  CHECK(spec->gid == 100);  // set by base.toml, not overridden
  CHECK(spec->hostname == "base");
  CHECK(std::count(spec->env.begin(), spec->env.end(), "MODE=child") == 1);
  CHECK(std::count(spec->env.begin(), spec->env.end(), "LANG=C.UTF-8") == 1);
  CHECK(std::none_of(spec->env.begin(), spec->env.end(), [](auto& e) { return e == "MODE=base"; }));
  REQUIRE(spec->mounts.size() == 2);
  CHECK(spec->mounts[0].dst == "/opt/usr");
  CHECK(spec->mounts[0].read_only);
  CHECK(spec->mounts[1].kind == policy::Mount::Kind::kTmpfs);
  CHECK(spec->caps == std::vector<int>{CAP_NET_BIND_SERVICE});  // a list is replaced
  REQUIRE(spec->seccomp.rules.size() == 2);
  CHECK(spec->seccomp.rules[0].syscall == "socket");
  CHECK(spec->seccomp.rules[0].errno_value == EACCES);
  CHECK(spec->seccomp.rules[1].action == policy::SeccompAction::kKill);
  bool nofile = false;
  for (auto& r : spec->rlimits)
    if (r.resource == RLIMIT_NOFILE) nofile = r.soft == 512 && r.hard == 2048;
  CHECK(nofile);
}

TEST_CASE("a policy using every section loads with the values it names", "[policy]") {
  auto spec = policy::load_policy(kPolicies + "/good/everything.toml");
  REQUIRE(spec);
  CHECK(spec->cwd == "/srv/app");
  CHECK(spec->gid == 1000);
  CHECK(spec->time_limit == 2.5);
  CHECK(spec->kill_grace == 0);
  CHECK(spec->chroot == "/");
  CHECK(spec->tmp_size == 1u << 20);
  REQUIRE(spec->mounts.size() == 2);
  CHECK(spec->mounts[0].dst == "/tmp");
  CHECK_FALSE(spec->mounts[0].read_only);
  CHECK(spec->mounts[1].size == 16u << 20);
  CHECK(spec->caps == std::vector<int>{CAP_NET_RAW, CAP_NET_BIND_SERVICE});
  CHECK(spec->seccomp.profile == "strict");
  REQUIRE(spec->seccomp.rules.size() == 3);
  auto& arg = spec->seccomp.rules[0].args.at(0);
  CHECK(arg.op == policy::SyscallArg::Op::kMaskedEq);
  CHECK(arg.value == 0x5412);
  CHECK(arg.mask == 0xffffffff);
  CHECK(spec->seccomp.rules[0].errno_value == ENOTTY);
  CHECK(spec->cgroup.memory_bytes == 1ull << 30);
  CHECK(spec->cgroup.pids == 256u);
  CHECK(spec->cgroup.cpu_ms_per_sec == 500u);
  REQUIRE(spec->devices.size() == 2);
  CHECK(spec->devices[0].path == "/dev/fuse");
  CHECK(spec->devices[0].access == "rwm");
  CHECK(spec->devices[1].access == "rw");
  REQUIRE(spec->network.egress.size() == 3);
  CHECK(spec->network.egress[0].port_first == 8000);
  CHECK(spec->network.egress[0].port_last == 8100);
  CHECK(spec->network.egress[1].proto == "any");
  CHECK(spec->network.publish.at(1).proto == "udp");
  CHECK(spec->network.dns.size() == 2);
  CHECK(spec->net == policy::NetMode::kLoopback);
  // Egress rules on a loopback-only jail have nowhere to go: refused when enforcing.
  auto loopback = *spec;
  loopback.cgroup = {};
  auto ok = policy::check_enforceable(loopback);
  REQUIRE_FALSE(ok);
  CHECK_THAT(ok.error().what, Catch::Contains("need network mode \"bridge\""));
}

TEST_CASE("network mode bridge parses with its bridge and networks, and is enforceable",
          "[policy]") {
  auto spec = policy::load_policy(kPolicies + "/good/bridge.toml");
  REQUIRE(spec);
  CHECK(spec->net == policy::NetMode::kBridge);
  CHECK(spec->network.bridge == "stockade0");
  CHECK(spec->network.subnet4 == "10.231.0.0/16");
  CHECK(policy::check_enforceable(*spec));
}

TEST_CASE("to_toml output loads back to the same spec", "[policy]") {
  std::vector<std::string> files = files_in(kPolicies + "/good", ".toml");
  for (auto& f : files_in(kExamples, ".toml")) files.push_back(f);
  test::TempDir dir;
  for (const auto& path : files) {
    INFO(path);
    auto spec = policy::load_policy(path);
    REQUIRE(spec);
    std::string out = dir.path() + "/effective.toml";
    std::ofstream(out) << policy::to_toml(*spec);
    auto again = policy::load_policy(out);
    INFO(policy::to_toml(*spec));
    REQUIRE(again);
    require_same(*spec, *again);
    CHECK(policy::to_toml(*again) == policy::to_toml(*spec));
  }
}

TEST_CASE("flags override a policy; lists append; a command replaces the policy's", "[policy]") {
  auto base = policy::load_policy(kPolicies + "/good/child.toml");
  REQUIRE(base);
  policy::RunFlags f;
  f.user = "3000:3000";
  f.caps = {"CHOWN"};
  f.env = {"MODE=flag"};
  f.mounts = {{policy::RunFlags::MountFlag::kTmpfs, "/extra"}};
  f.rlimits = {"nofile=64"};
  auto spec = policy::apply_flags(*base, f);
  REQUIRE(spec);
  CHECK(spec->argv == base->argv);
  CHECK(spec->uid == 3000);
  CHECK(spec->caps == std::vector<int>{CAP_NET_BIND_SERVICE, CAP_CHOWN});
  CHECK(std::count(spec->env.begin(), spec->env.end(), "MODE=flag") == 1);
  CHECK(std::count(spec->env.begin(), spec->env.end(), "MODE=child") == 0);
  CHECK(spec->mounts.size() == 3);
  for (auto& r : spec->rlimits)
    if (r.resource == RLIMIT_NOFILE) CHECK(r.hard == 64);
  f.command = {"/bin/echo", "hi"};
  CHECK(policy::apply_flags(*base, f)->argv == f.command);
  f.user = "nobody";
  CHECK_THAT(policy::apply_flags(*base, f).error().what, Catch::Contains("--user 'nobody'"));
  auto empty = policy::load_policy(kPolicies + "/good/empty.toml");
  REQUIRE(empty);
  CHECK_THAT(policy::apply_flags(*empty, policy::RunFlags()).error().what,
             Catch::Contains("no command given"));
}

TEST_CASE("a missing policy file is named with the reason", "[policy]") {
  auto spec = policy::load_policy("/nonexistent/stockade.toml");
  REQUIRE_FALSE(spec);
  CHECK(spec.error().message() ==
        "/nonexistent/stockade.toml: cannot read the policy: No such file or directory");
}

// Found by fuzzing (fuzz/policy_fuzz.cpp): include = ["/dev/zero"] read until memory ran out, and a
// FIFO blocked the loader in open().
TEST_CASE("only regular policy files of at most 1 MiB are read, so none can block or never end",
          "[policy]") {
  test::TempDir dir;
  const std::string fifo = dir.path() + "/fifo.toml";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string big = dir.path() + "/big.toml";
  std::ofstream(big) << std::string((1 << 20) + 1, '#');
  for (const std::string& target : {fifo, std::string("/dev/zero"), dir.path(), big}) {
    INFO(target);
    auto direct = policy::load_policy(target);
    REQUIRE_FALSE(direct);
    CHECK_THAT(direct.error().message(), Catch::StartsWith(target + ": cannot read the policy: "));
    const std::string including = dir.path() + "/including.toml";
    std::ofstream(including) << "include = [\"" << target << "\"]\n";
    auto included = policy::load_policy(including);
    REQUIRE_FALSE(included);
    CHECK_THAT(included.error().message(),
               Catch::StartsWith(including + ":1:12: cannot include '" + target + "': "));
  }
  CHECK(policy::load_policy(fifo).error().message() ==
        fifo + ": cannot read the policy: not a regular file");
  CHECK(policy::load_policy(big).error().message() ==
        big + ": cannot read the policy: larger than 1 MiB, too large for a policy");
  std::ofstream(big, std::ios::trunc) << std::string(1 << 20, '#');
  CHECK(policy::load_policy(big));
}

TEST_CASE("stockade check prints the effective policy, or the error with exit 2", "[policy]") {
  for (const auto& path : files_in(kExamples, ".toml")) {
    INFO(path);
    auto r = test::stockade({"check", path});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("[process]"));
    auto j = test::stockade({"check", "--json", path});
    CHECK(j.exit_code == 0);
    CHECK_THAT(j.out, Catch::Contains("\"seccomp\""));
  }
  auto bad = test::stockade({"check", kPolicies + "/bad/cap_unknown.toml"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("did you mean 'NET_BIND_SERVICE'?"));
  auto tenant = test::stockade({"check", kExamples + "/tenant-a.toml"});
  CHECK_THAT(tenant.out, Catch::Contains("203.0.113.0/24"));
  CHECK_THAT(tenant.out, Catch::Contains("pids = 512"));
}

TEST_CASE("the policy digest is the SHA-256 of the effective policy without its command",
          "[policy]") {
  test::TempDir dir;
  for (const auto& path : files_in(kExamples, ".toml")) {
    INFO(path);
    auto spec = policy::load_policy(path);
    REQUIRE(spec);
    // The definition, computed here by coreutils: compact JSON of to_json, command removed.
    auto j = nlohmann::json::parse(policy::to_json(*spec));
    j["process"].erase("command");
    std::string text_file = dir.path() + "/policy.json";
    std::ofstream(text_file) << j.dump();
    auto sum = test::run({"/usr/bin/sha256sum", text_file});
    REQUIRE(sum.exit_code == 0);
    CHECK(policy::digest(*spec) == "sha256:" + sum.out.substr(0, 64));
    // Another command, the same policy; another capability, another policy.
    auto other = *spec;
    other.argv = {"/bin/other", "--flag"};
    CHECK(policy::digest(other) == policy::digest(*spec));
    int extra = CAP_SYS_NICE;
    while (std::find(other.caps.begin(), other.caps.end(), extra) != other.caps.end()) ++extra;
    other.caps.push_back(extra);
    CHECK(policy::digest(other) != policy::digest(*spec));
  }
}

TEST_CASE("a rejected policy changes nothing on the host", "[policy]") {
  auto jails = test::registry_entries_left_behind();
  auto leases = test::leases_left_behind();
  for (const char* name :
       {"bad/mount_src_missing.toml", "bad/network_none_egress.toml", "good/everything.toml"}) {
    INFO(name);
    auto r = test::stockade({"run", "--policy", kPolicies + "/" + name, "--", "true"});
    CHECK(r.exit_code == 2);
    CHECK(test::registry_entries_left_behind() == jails);
    CHECK(test::leases_left_behind() == leases);
  }
  // Tenant A's mirror is a name this machine cannot resolve: refused at start, nothing built.
  auto r = test::stockade({"run", "--policy", kExamples + "/tenant-a.toml"});
  if (::geteuid() == 0) {
    CHECK(r.exit_code == 125);
    CHECK_THAT(r.err, Catch::Contains("resolve 'mirror.example.org'"));
  } else {
    CHECK(r.exit_code == 2);  // its cgroup limits need root
  }
  CHECK(test::registry_entries_left_behind() == jails);
  CHECK(test::leases_left_behind() == leases);
}

TEST_CASE("the example policies run as they say", "[policy][root]") {
  SKIP_UNLESS_ROOT();
  auto web = test::stockade({"run", "-q", "--policy", kExamples + "/web.toml"});
  CHECK(web.exit_code == 0);
  CHECK(web.out == "listening on 80\n");
  // The same jail without the capability cannot bind port 80.
  auto no_cap =
      test::stockade({"run", "-q", "--policy", kExamples + "/untrusted.toml", "--", "python3", "-c",
                      "import socket; socket.socket().bind(('127.0.0.1', 80))"});
  CHECK(no_cap.exit_code != 0);
  auto untrusted = test::stockade({"run", "-q", "--policy", kExamples + "/untrusted.toml"});
  CHECK(untrusted.exit_code == 0);
  CHECK(untrusted.out == "hello from an untrusted jail\n");
  auto limited = test::stockade(
      {"run", "-q", "--policy", kExamples + "/untrusted.toml", "--", "/bin/sleep", "60"});
  CHECK(limited.exit_code != 0);  // the policy's 10 s time limit
  CHECK(test::registry_entries_left_behind().empty());
}
