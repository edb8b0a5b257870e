#include <sys/capability.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>

#include "policy/spec.hpp"

using policy::make_spec;
using policy::RunFlags;

namespace {
RunFlags flags_for(std::vector<std::string> cmd) {
  RunFlags f;
  f.command = std::move(cmd);
  return f;
}
}  // namespace

TEST_CASE("a spec without options runs as uid 0 with no capabilities and a minimal environment",
          "[policy]") {
  auto spec = make_spec(flags_for({"/bin/true"}));
  REQUIRE(spec);
  CHECK(spec->uid == 0);
  CHECK(spec->caps.empty());
  CHECK(spec->net == policy::NetMode::kLoopback);
  CHECK(spec->env.size() == 2);
  bool core_zero = false;
  for (auto& r : spec->rlimits) core_zero |= r.resource == RLIMIT_CORE && r.hard == 0;
  CHECK(core_zero);
}

TEST_CASE("an empty command is refused with the usage", "[policy]") {
  auto spec = make_spec(flags_for({}));
  REQUIRE_FALSE(spec);
  CHECK_THAT(spec.error().what, Catch::Contains("no command given"));
}

TEST_CASE("capabilities are named through libcap, with or without the CAP_ prefix", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.caps = {"NET_BIND_SERVICE", "cap_chown", "NET_BIND_SERVICE"};
  auto spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->caps == std::vector<int>{CAP_NET_BIND_SERVICE, CAP_CHOWN});
  f.caps = {"NET_BIND_SERVIC"};
  auto bad = make_spec(f);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().what, Catch::Contains("unknown capability"));
}

TEST_CASE("--user takes UID[:GID] and refuses the overflow ids", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.user = "1000";
  auto spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->uid == 1000);
  CHECK(spec->gid == 1000);
  f.user = "1000:50";
  CHECK(make_spec(f)->gid == 50);
  for (const char* bad : {"65534", "abc", "1000:", "-1", "1000:70000"}) {
    f.user = bad;
    CHECK_FALSE(make_spec(f));
  }
}

TEST_CASE("bind destinations must be absolute, without '..', and never the root", "[policy]") {
  auto f = flags_for({"/bin/true"});
  using K = RunFlags::MountFlag;
  f.mounts = {{K::kBind, "/srv:/data/./x//"}};
  auto spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->mounts.at(0).dst == "/data/x");
  CHECK_FALSE(spec->mounts.at(0).read_only);
  f.mounts = {{K::kBind, "/srv:data"}};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("must be absolute"));
  f.mounts = {{K::kBind, "/srv:/data/../etc"}};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("'..'"));
  f.mounts = {{K::kBind, "/srv:/"}};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("--chroot"));
}

TEST_CASE("rlimits parse sizes, soft:hard and inf, and reject unknown names", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.rlimits = {"as=512M", "nofile=64:128", "cpu=inf"};
  auto spec = make_spec(f);
  REQUIRE(spec);
  auto find = [&](int res) {
    for (auto& r : spec->rlimits)
      if (r.resource == res) return r;
    return policy::Rlimit{};
  };
  CHECK(find(RLIMIT_AS).soft == 512ull << 20);
  CHECK(find(RLIMIT_NOFILE).soft == 64);
  CHECK(find(RLIMIT_NOFILE).hard == 128);
  CHECK(find(RLIMIT_CPU).soft == RLIM_INFINITY);
  f.rlimits = {"bogus=1"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("unknown limit 'bogus'"));
  f.rlimits = {"nofile=10:5"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("soft limit is above"));
}

TEST_CASE("--env sets, overrides and passes variables, and names a missing one", "[policy]") {
  auto f = flags_for({"/bin/true"});
  ::setenv("STOCKADE_TEST_VAR", "hello", 1);
  f.env = {"PATH=/bin", "STOCKADE_TEST_VAR", "X=1"};
  auto spec = make_spec(f);
  REQUIRE(spec);
  CHECK(std::count(spec->env.begin(), spec->env.end(), "PATH=/bin") == 1);
  CHECK(std::count(spec->env.begin(), spec->env.end(), "STOCKADE_TEST_VAR=hello") == 1);
  CHECK(std::count(spec->env.begin(), spec->env.end(), "X=1") == 1);
  f.env = {"STOCKADE_SURELY_UNSET_VAR"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("give STOCKADE_SURELY_UNSET_VAR=VALUE"));
  f.env = {"1BAD=x"};
  CHECK_FALSE(make_spec(f));
}

TEST_CASE("--net takes none, loopback and bridge, and never the host's network", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.net = "none";
  CHECK(make_spec(f)->net == policy::NetMode::kNone);
  f.net = "bridge";
  CHECK(make_spec(f)->net == policy::NetMode::kBridge);
  f.net = "host";
  CHECK_FALSE(make_spec(f));
}

TEST_CASE("network flags are checked and need a bridged jail", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.egress = {"203.0.113.0/24,tcp,443"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("--net bridge"));
  f.net = "bridge";
  auto spec = make_spec(f);
  REQUIRE(spec);
  REQUIRE(spec->network.egress.size() == 1);
  CHECK(spec->network.egress[0].proto == "tcp");
  CHECK(spec->network.egress[0].port_first == 443);
  f.egress = {"2001:db8::/32,udp,8000-8100"};
  spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->network.egress[0].port_last == 8100);
  for (const char* bad :
       {"203.0.113.1/24", "203.0.113.0/33", "10.0.0.0/8,sctp", "10.0.0.0/8,icmp,1",
        "10.0.0.0/8,tcp,0", "10.0.0.0/8,tcp,9-3", "nonsense"}) {
    f.egress = {bad};
    INFO(bad);
    CHECK_FALSE(make_spec(f));
  }
  f.egress.clear();
  f.publish = {"8080:80", "5353:53/udp"};
  spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->network.publish[1].proto == "udp");
  f.publish = {"8080:80", "8080:81"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("published twice"));
  f.publish = {"0:80"};
  CHECK_FALSE(make_spec(f));
  f.publish.clear();
  f.bridge = "stk0";
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("names jail ports"));
  f.bridge = "a-bridge-name-too-long";
  CHECK_FALSE(make_spec(f));
  f.bridge = "br-test";
  f.subnets = {"10.9.0.0/30"};
  CHECK_THAT(make_spec(f).error().what, Catch::Contains("/8 to /29"));
  f.subnets = {"10.9.0.0/24", "fd00:9::/64"};
  spec = make_spec(f);
  REQUIRE(spec);
  CHECK(spec->network.subnet4 == "10.9.0.0/24");
  CHECK(spec->network.subnet6 == "fd00:9::/64");
  f.dns = {"not-an-ip"};
  CHECK_FALSE(make_spec(f));
}

TEST_CASE("sizes accept K, M, G suffixes and reject garbage", "[policy]") {
  CHECK(*policy::parse_size("4096") == 4096);
  CHECK(*policy::parse_size("64k") == 64 << 10);
  CHECK(*policy::parse_size("2G") == 2ull << 30);
  CHECK_FALSE(policy::parse_size(""));
  CHECK_FALSE(policy::parse_size("12Q"));
  CHECK_FALSE(policy::parse_size("99999999999999999999G"));
}

TEST_CASE("--host-ids refuses ranges that overlap login ids or wrap", "[policy]") {
  auto f = flags_for({"/bin/true"});
  f.host_ids = "2000000000:1000";
  CHECK(make_spec(f)->host_ids.first == 2000000000u);
  for (const char* bad : {"1000:10", "4294967000:1000", "x", "2000000000:0"}) {
    f.host_ids = bad;
    CHECK_FALSE(make_spec(f));
  }
}

TEST_CASE("mounts keep their command-line order across option kinds", "[policy]") {
  using K = RunFlags::MountFlag;
  auto f = flags_for({"/bin/true"});
  f.mounts = {{K::kTmpfs, "/d"}, {K::kRoBind, "/srv:/d/x"}, {K::kBind, "/opt:/d/y"}};
  auto spec = make_spec(f);
  REQUIRE(spec);
  REQUIRE(spec->mounts.size() == 3);
  CHECK(spec->mounts[0].kind == policy::Mount::Kind::kTmpfs);
  CHECK(spec->mounts[1].dst == "/d/x");
  CHECK(spec->mounts[1].read_only);
  CHECK(spec->mounts[2].dst == "/d/y");
  CHECK_FALSE(spec->mounts[2].read_only);
}
