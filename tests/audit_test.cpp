// stockade watch and stockade alerts: the jail's audit identity, rules that leave nothing
// behind, detectors proven by real attacks from inside jails, replay and review of alerts.
#include "audit/audit.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "audit/detail/event.hpp"
#include "support.hpp"

namespace {

using nlohmann::json;

const std::string kRecorded = std::string(AUDIT_FIXTURES) + "/recorded.log";

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l)) out.push_back(l);
  return out;
}

std::vector<audit::Alert> replay_lines(const std::vector<std::string>& lines,
                                       audit::EngineStats* stats = nullptr) {
  std::vector<audit::Alert> out;
  audit::Engine engine({}, [&](const audit::Alert& a) { out.push_back(a); });
  for (const auto& l : lines) engine.feed_line(l);
  engine.flush();
  if (stats) *stats = engine.stats();
  return out;
}

std::vector<std::string> rules_of(const std::vector<audit::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(a.rule);
  return out;
}

std::string audit_rules_listed() { return test::run({"/usr/sbin/auditctl", "-l"}).out; }

std::string audit_status_field(const std::string& name) {
  std::istringstream in(test::run({"/usr/sbin/auditctl", "-s"}).out);
  std::string k, v;
  while (in >> k >> v)
    if (k == name) return v;
  return "";
}

// stockade watch in the background with its own rule key and alert file; stopped with SIGTERM.
class Watcher {
 public:
  explicit Watcher(const std::string& alerts, const std::vector<std::string>& extra = {})
      : key_(test::unique_name("stockade-test")) {
    std::vector<std::string> argv = {test::stockade_bin(), "watch", "--key", key_, "-o", alerts};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<test::Process>(argv);
    for (int i = 0; i < 200 && proc_->err().find("watching") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // A watcher a failed REQUIRE leaves behind is stopped the proper way, so it removes its rules
  // and restores the audit switch (a SIGKILL would leave both).
  ~Watcher() {
    if (proc_ && !proc_->done()) (void)stop();
  }
  bool ready() const { return proc_->err().find("watching") != std::string::npos; }
  int stop() {
    proc_->signal(SIGTERM);
    return proc_->wait(20);
  }
  const std::string& key() const { return key_; }
  std::string err() const { return proc_->err(); }
  // SIGSTOP / SIGCONT: a watcher that falls behind, as on a busy host.
  void pause() const { proc_->signal(SIGSTOP); }
  void resume() const { proc_->signal(SIGCONT); }

 private:
  std::string key_;
  std::unique_ptr<test::Process> proc_;
};

std::vector<json> alert_lines(const std::string& path) {
  std::vector<json> out;
  for (const auto& l : read_lines(path)) out.push_back(json::parse(l));
  return out;
}

const json* find_rule(const std::vector<json>& alerts, const std::string& rule) {
  for (const auto& a : alerts)
    if (a["rule"] == rule) return &a;
  return nullptr;
}

// Hands one fd of the host's network namespace to whoever connects to PATH (SCM_RIGHTS).
class NsFdPasser {
 public:
  explicit NsFdPasser(const std::string& path) {
    sock_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ok_ = ::bind(sock_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::chmod(path.c_str(), 0777) == 0 && ::listen(sock_, 1) == 0;
    if (ok_) thread_ = std::thread([this] { serve(); });
  }
  ~NsFdPasser() {
    ::shutdown(sock_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(sock_);
  }
  bool ok() const { return ok_; }

 private:
  void serve() {
    int c = ::accept4(sock_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    int fd = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    (void)::sendmsg(c, &msg, MSG_NOSIGNAL);
    ::close(fd);
    ::close(c);
  }
  int sock_ = -1;
  bool ok_ = false;
  std::thread thread_;
};

}  // namespace

TEST_CASE("an audit record's stamp and fields are read, quoted values included", "[audit]") {
  audit::detail::Record r;
  std::int64_t ms = 0;
  std::uint64_t serial = 0;
  REQUIRE(audit::detail::parse_body(
      "audit(1795657455.312:1660): auid=1879105775 uid=1879105775 gid=1879105775 ses=11 "
      "pid=9472 comm=\"attack\" exe=\"/attack\" sig=0 arch=c000003e syscall=308 compat=0 "
      "ip=0x4a1d2b code=0x50000",
      &ms, &serial, &r));
  CHECK(ms == 1795657455312);
  CHECK(serial == 1660);
  REQUIRE(r.get("comm"));
  CHECK(*r.get("comm") == "attack");
  CHECK(*r.get("syscall") == "308");
  CHECK(audit::detail::syscall_name("c000003e", 308) == "setns");
  CHECK(audit::detail::syscall_name("40000003", 346) == "setns");
  CHECK_FALSE(audit::detail::parse_body("audit(12:", &ms, &serial, &r));
  CHECK_FALSE(audit::detail::parse_body("garbage", &ms, &serial, &r));
}

TEST_CASE("replaying a recorded audit log raises one alert per escape attempt", "[audit]") {
  audit::EngineStats stats;
  auto alerts = replay_lines(read_lines(kRecorded), &stats);
  CHECK(stats.records == 74);
  CHECK(stats.malformed == 0);
  // Six attempts from jails: core_pattern write, unshare (twice), setns, bpf, init_module. The
  // watcher's own records (auid unset) and the jails' setup raise nothing.
  CHECK(rules_of(alerts) ==
        std::vector<std::string>{"Stockade write to host kernel settings attempt",
                                 "Stockade namespace creation attempt", "Stockade setns attempt",
                                 "Stockade namespace creation attempt", "Stockade bpf attempt",
                                 "Stockade kernel module load attempt"});
  for (const auto& a : alerts) {
    CHECK(a.fields["stockade.blocked"] == true);
    CHECK(a.fields["user.loginuid"].get<long>() >= 1879048192L);
    CHECK(a.fields["stockade.jail.id"] == "unknown");  // no registry in a replay here
  }
  CHECK(alerts[0].fields["fd.name"] == "/proc/sys/kernel/core_pattern");
  CHECK(alerts[0].fields["evt.res"] == "EROFS");
  CHECK(alerts[2].fields["evt.type"] == "setns");
  CHECK(alerts[2].fields["stockade.blocked_by"] == "seccomp:errno");
}

TEST_CASE("a packet a jail's egress policy dropped is one alert naming the jail by its mark",
          "[audit]") {
  std::vector<std::string> log;
  for (int i = 0; i < 5; ++i)  // a jail retrying: one finding
    log.push_back(fmt::format(
        "type=NETFILTER_PKT msg=audit(1795659178.{:03}:{}): mark=0x7000ed84 saddr=10.219.0.215 "
        "daddr=203.0.113.9 proto=6",
        100 + i, 583592 + i));
  log.push_back(
      "type=NETFILTER_PKT msg=audit(1795659179.000:583600): mark=0x7000ed84 saddr=10.219.0.215 "
      "daddr=203.0.113.10 proto=17");
  // Another host's packet, marked by someone else: not a jail's.
  log.push_back(
      "type=NETFILTER_PKT msg=audit(1795659179.100:583601): mark=0x2000 saddr=192.0.2.7 "
      "daddr=203.0.113.9 proto=6");
  auto alerts = replay_lines(log);
  REQUIRE(alerts.size() == 2);
  CHECK(alerts[0].rule == "Stockade egress denied");
  CHECK(alerts[0].fields["stockade.jail.host_uid"] == 0x7000ed84u);
  CHECK(alerts[0].fields["fd.rip"] == "203.0.113.9");
  CHECK(alerts[0].fields["fd.l4proto"] == "tcp");
  CHECK(alerts[0].fields["stockade.blocked"] == true);
  CHECK(alerts[1].fields["fd.l4proto"] == "udp");
}

TEST_CASE("mangled and truncated audit records never crash the assembly", "[audit]") {
  auto lines = read_lines(kRecorded);
  std::mt19937 rng(42);
  std::vector<std::string> mangled;
  for (const auto& l : lines) {
    for (size_t cut = 0; cut < l.size(); cut += 7) mangled.push_back(l.substr(0, cut));
    for (int k = 0; k < 8; ++k) {
      std::string m = l;
      for (int flips = 0; flips < 4 && !m.empty(); ++flips)
        m[rng() % m.size()] = static_cast<char>(rng() % 256);
      mangled.push_back(m);
    }
    mangled.push_back(l + std::string(3000, 'A'));
    mangled.push_back(l);
  }
  audit::EngineStats stats;
  auto alerts = replay_lines(mangled, &stats);
  CHECK(stats.records > 0);
  CHECK(stats.malformed > 0);
  // Every alert still names a rule and a process.
  for (const auto& a : alerts) {
    CHECK_FALSE(a.rule.empty());
    CHECK(a.fields.contains("proc.pid"));
  }
  // Records fed one by one through the kernel path, with types that do not exist.
  std::vector<audit::Alert> out;
  audit::Engine engine({}, [&](const audit::Alert& a) { out.push_back(a); });
  for (const auto& l : mangled) {
    engine.feed_record(static_cast<int>(rng() % 3000), l);
    engine.feed_record(1326, l);
  }
  engine.age();
  engine.flush();
  SUCCEED("no crash");
}

TEST_CASE("alerts are Falco JSON lines with the keys falcosidekick requires", "[audit]") {
  audit::Alert a;
  a.time_ns = 1795657455312000000;
  a.rule = "Stockade setns attempt";
  a.priority = "Warning";
  a.text = "Jailed process tried to join another namespace";
  a.fields["proc.pid"] = 42;
  a.tags = {"T1611", "stockade"};
  json j = json::parse(audit::to_falco_json(a, "host-1"));
  CHECK(j["time"] == "2026-11-26T01:44:15.312000000Z");
  CHECK(j["rule"] == "Stockade setns attempt");
  CHECK(j["priority"] == "Warning");
  CHECK(j["source"] == "stockade");
  CHECK(j["hostname"] == "host-1");
  CHECK(j["output"] ==
        "01:44:15.312000000: Warning Jailed process tried to join another namespace");
  CHECK(j["output_fields"]["proc.pid"] == 42);
  CHECK(j["tags"] == json::array({"T1611", "stockade"}));
}

TEST_CASE("an alert line is byte for byte the JSON nlohmann would print for it, odd bytes included",
          "[audit]") {
  audit::Alert a;
  a.time_ns = 1795657455312000000;
  a.rule = "Stockade setns attempt";
  a.priority = "Warning";
  a.text = "tab\there \"quoted\" back\\slash caf\xc3\xa9 bad\xff\x01 del\x7f";
  a.fields["proc.cmdline"] = "/bin/sh -c 'x\ny'";
  a.fields["proc.name"] = "\xe2\x82";  // truncated UTF-8: replaced, as nlohmann does
  a.fields["proc.pid"] = 42;
  a.fields["stockade.blocked"] = true;
  a.fields["stockade.ns.now"] = json::array({"net:[1]", "mnt:[2]"});
  a.fields["stockade.nested"] = {{"b", 1}, {"a", "\"x\""}};
  a.tags = {"T1611", "stock\"ade"};
  std::string t = "2026-11-26T01:44:15.312000000Z";
  json j = {{"time", t},
            {"rule", a.rule},
            {"priority", a.priority},
            {"source", "stockade"},
            {"output", "01:44:15.312000000: Warning " + a.text},
            {"output_fields", a.fields},
            {"tags", a.tags},
            {"hostname", "h\xc3\xb6st"}};
  CHECK(audit::to_falco_json(a, "h\xc3\xb6st") ==
        j.dump(-1, ' ', false, json::error_handler_t::replace));
}

TEST_CASE("alerts added to a batch are written whole by flush, and by the writer's end",
          "[audit]") {
  test::TempDir dir;
  std::string path = dir.path() + "/alerts.jsonl";
  audit::Alert a;
  a.rule = "Stockade setns attempt";
  a.priority = "Warning";
  {
    auto w = audit::AlertWriter::open(path);
    REQUIRE(w);
    for (int i = 0; i < 3; ++i) REQUIRE(w->add(a));
    CHECK(read_lines(path).empty());  // one write(2) for the batch, not one per alert
    REQUIRE(w->flush());
    CHECK(read_lines(path).size() == 3);
    CHECK(w->written() == 3);
    REQUIRE(w->add(a));
  }
  auto lines = read_lines(path);
  CHECK(lines.size() == 4);
  for (const auto& l : lines) CHECK_FALSE(json::parse(l, nullptr, false).is_discarded());
}

TEST_CASE("two watchers appending to one alert file never interleave their lines", "[audit]") {
  test::TempDir dir;
  std::string path = dir.path() + "/alerts.jsonl";
  audit::Alert a;
  a.rule = "Stockade setns attempt";
  a.priority = "Warning";
  a.text = std::string(20000, 'x');  // longer than a pipe buffer: one write may be split
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t p = ::fork();
    if (p == 0) {
      auto w = audit::AlertWriter::open(path);
      for (int i = 0; i < 200 && w; ++i) (void)w->write(a);
      ::_exit(0);
    }
    kids.push_back(p);
  }
  for (pid_t p : kids) ::waitpid(p, nullptr, 0);
  auto lines = read_lines(path);
  CHECK(lines.size() == 400);
  for (const auto& l : lines) CHECK_FALSE(json::parse(l, nullptr, false).is_discarded());
}

TEST_CASE("stockade alerts filters by jail, rule, priority and age, and sums up each jail",
          "[audit]") {
  test::TempDir dir;
  std::string path = dir.path() + "/alerts.jsonl";
  {
    auto w = audit::AlertWriter::open(path);
    REQUIRE(w);
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    for (int i = 0; i < 3; ++i) {
      audit::Alert a;
      a.time_ns = i == 0 ? now - 7200LL * 1000000000 : now;
      a.rule = i == 2 ? "Stockade namespace fd passed into jail" : "Stockade setns attempt";
      a.priority = i == 2 ? "Critical" : "Warning";
      a.fields["stockade.jail.id"] = i == 1 ? "bbbb" : "aaaa";
      a.fields["stockade.blocked"] = true;
      a.fields["evt.type"] = "setns";
      REQUIRE(w->write(a));
    }
  }
  auto all = test::stockade({"alerts", path});
  CHECK(all.exit_code == 0);
  CHECK(all.out.find("3 alert(s)") != std::string::npos);
  CHECK(all.out.find("jail aaaa: 2 alert(s), 2 blocked, worst Critical") != std::string::npos);
  auto recent = test::stockade({"alerts", path, "--since", "1h"});
  CHECK(recent.out.find("2 alert(s)") != std::string::npos);
  auto jail = test::stockade({"alerts", path, "--jail", "bbbb", "--json"});
  CHECK(read_lines(path).size() == 3);
  CHECK(std::count(jail.out.begin(), jail.out.end(), '\n') == 1);
  auto crit = test::stockade({"alerts", path, "--priority", "critical"});
  CHECK(crit.out.find("1 alert(s)") != std::string::npos);
  auto rule = test::stockade({"alerts", path, "--rule", "FD PASSED"});
  CHECK(rule.out.find("1 alert(s)") != std::string::npos);
  auto bad = test::stockade({"alerts", path, "--since", "soon"});
  CHECK(bad.exit_code == 2);
}

TEST_CASE("stockade watch --replay re-derives the alerts of a recorded attack", "[audit]") {
  auto r = test::stockade({"watch", "--replay", kRecorded, "--registry", "/nonexistent"});
  CHECK(r.exit_code == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 6);
  CHECK(r.err.find("replayed 74 records") != std::string::npos);
}

TEST_CASE("a jailed process carries its jail's audit id and cannot change it", "[root][audit]") {
  SKIP_UNLESS_ROOT();
  // Inside, the id reads as the jail's own uid: the only id that maps to the jail's host uid.
  auto r = test::attack({"--user", "1000"}, "loginuid");
  CHECK(test::line(r.out) == "loginuid=1000");
  r = test::attack({}, "loginuid-write", {"0"});
  CHECK(test::line(r.out) == "errno=EPERM");
  // Not even as root of its user namespace with every capability the jail may keep.
  r = test::attack({"--cap", "SYS_ADMIN", "--cap", "AUDIT_CONTROL"}, "loginuid-write", {"0"});
  CHECK(test::line(r.out) == "errno=EPERM");
  r = test::attack({"--cap", "AUDIT_CONTROL"}, "loginuid-write", {"4294967295"});
  CHECK(test::line(r.out) == "errno=EPERM");

  // The host sees the jail's host uid as its audit id, and the registry says so.
  test::Process sup({test::stockade_bin(), "run", "-q", "--", "/bin/sleep", "5"});
  auto jail = test::wait_for_jail(sup);
  REQUIRE(jail);
  CHECK(jail->json.find(fmt::format("\"audit_id\":{}", jail->host_uid)) != std::string::npos);
  // Set once the workload is released, just after the registry entry is written.
  std::string id;
  for (int i = 0; i < 100 && (id.empty() || id == "4294967295"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f(fmt::format("/proc/{}/loginuid", jail->init_pid));
    f >> id;
  }
  CHECK(id == std::to_string(jail->host_uid));
  sup.signal(SIGTERM);
  CHECK(sup.wait(10) >= 0);
}

TEST_CASE("a supervisor started from a login session still gives its jail the jail's audit id",
          "[root][audit]") {
  SKIP_UNLESS_ROOT();
  // The shell sets its own loginuid (as a login does), then runs the supervisor.
  std::string script = fmt::format(
      "echo 4242 > /proc/self/loginuid && {} run -q --ro-bind {}:/attack -- /attack loginuid && "
      "cat /proc/self/loginuid",
      test::stockade_bin(), test::attack_bin());
  auto r = test::run({"/bin/sh", "-c", script});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "loginuid=0\n4242");  // the jail's id inside; the session's back afterwards
}

TEST_CASE("stockade watch removes exactly the rules it added, and restores the audit switch",
          "[root][audit]") {
  SKIP_UNLESS_ROOT();
  std::string enabled = audit_status_field("enabled");
  std::string other = test::unique_name("not-stockade");
  // Somebody else's rule must survive the watch.
  REQUIRE(test::run({"/usr/sbin/auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "getppid",
                     "-F", "auid=4000000000", "-k", other})
              .exit_code == 0);
  test::TempDir dir;
  Watcher w(dir.path() + "/alerts.jsonl");
  REQUIRE(w.ready());
  std::string during = audit_rules_listed();
  CHECK(during.find("key=" + w.key()) != std::string::npos);
  CHECK(during.find("arch=b32") != std::string::npos);
  CHECK(during.find("auid>=1879048192 -F auid<=1879113727") != std::string::npos);
  CHECK(audit_status_field("enabled") == "1");
  CHECK(w.stop() == 0);
  std::string after = audit_rules_listed();
  CHECK(after.find(w.key()) == std::string::npos);
  CHECK(after.find(other) != std::string::npos);
  CHECK(audit_status_field("enabled") == enabled);
  if (enabled == "0") CHECK(w.err().find("switched it on") != std::string::npos);
  (void)test::run({"/usr/sbin/auditctl", "-d", "always,exit", "-F", "arch=b64", "-S", "getppid",
                   "-F", "auid=4000000000", "-k", other});
  CHECK(audit_rules_listed().find(other) == std::string::npos);
}

namespace {

// The attacks and their alerts, watched live: shared by the tests with and without auditd.
void watch_attacks() {
  test::TempDir dir;
  std::string alerts = dir.path() + "/alerts.jsonl";
  ::chmod(dir.path().c_str(), 0755);  // the jail's host uid must reach the socket
  std::string sock_dir = dir.path() + "/pass";
  ::mkdir(sock_dir.c_str(), 0755);
  NsFdPasser passer(sock_dir + "/sock");
  REQUIRE(passer.ok());
  Watcher w(alerts);
  REQUIRE(w.ready());

  auto passed = test::attack({"--bind", sock_dir + ":/pass"}, "recv-setns", {"/pass/sock"});
  CHECK(test::line(passed.out) == "errno=EPERM");
  auto own = test::attack({}, "setns", {"/proc/self/ns/net"});
  CHECK(test::line(own.out) == "errno=EPERM");
  auto login = test::attack({}, "loginuid-write", {"0"});
  CHECK(test::line(login.out) == "errno=EPERM");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(w.stop() == 0);
  INFO(w.err());
  auto got = alert_lines(alerts);
  CHECK(audit_rules_listed().find(w.key()) == std::string::npos);

  const json* fd = find_rule(got, "Stockade namespace fd passed into jail");
  REQUIRE(fd);
  const json& f = (*fd)["output_fields"];
  CHECK((*fd)["priority"] == "Critical");
  CHECK(f["evt.type"] == "setns");
  CHECK(f["stockade.blocked"] == true);
  CHECK(f["stockade.ns.type"] == "net");
  CHECK(f["stockade.jail.id"] != "unknown");
  CHECK(f["proc.name"] == "attack");
  CHECK(f["proc.vpid"] == 2);
  struct stat host_net;
  REQUIRE(::stat("/proc/self/ns/net", &host_net) == 0);
  CHECK(f["stockade.ns.target"] == fmt::format("net:[{}]", host_net.st_ino));

  const json* attempt = find_rule(got, "Stockade setns attempt");
  REQUIRE(attempt);
  CHECK((*attempt)["output_fields"]["stockade.blocked"] == true);
  const json* tamper = find_rule(got, "Stockade audit identity tampering");
  REQUIRE(tamper);
  CHECK((*tamper)["output_fields"]["proc.name"] == "attack");
  // One alert per attempt, not one per record.
  CHECK(got.size() == 3);
}

}  // namespace

TEST_CASE("stockade watch alerts when a bridged jail's egress policy drops its traffic",
          "[root][audit][net]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string alerts = dir.path() + "/alerts.jsonl";
  std::string bridge = "skau" + std::to_string(::getpid() % 100000);
  int n = ::getpid() % 200 + 20;
  Watcher w(alerts);
  REQUIRE(w.ready());
  // 203.0.113.9 (TEST-NET-3) is not allowed: the SYN is dropped on the host, never sent on.
  auto r = test::attack(
      {"--net", "bridge", "--bridge", bridge, "--subnet", fmt::format("10.211.{}.0/24", n),
       "--subnet", fmt::format("fd00:211:{}::/64", n)},
      "connect", {"203.0.113.9", "9"});
  CHECK(test::line(r.out) == "errno=ETIMEDOUT");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(w.stop() == 0);
  INFO(w.err());
  auto got = alert_lines(alerts);
  const json* egress = find_rule(got, "Stockade egress denied");
  REQUIRE(egress);
  const json& f = (*egress)["output_fields"];
  CHECK(f["fd.rip"] == "203.0.113.9");
  CHECK(f["fd.l4proto"] == "tcp");
  CHECK(f["stockade.jail.id"] != "unknown");
  // The SYN and its retransmission are one finding.
  CHECK(std::count_if(got.begin(), got.end(),
                      [](const json& a) { return a["rule"] == "Stockade egress denied"; }) == 1);
  CHECK(test::stockade({"gc", "--bridge", bridge}).exit_code == 0);
}

TEST_CASE(
    "stockade watch alerts on a namespace fd passed into a jail, setns and loginuid "
    "attempts",
    "[root][audit]") {
  SKIP_UNLESS_ROOT();
  watch_attacks();
}

TEST_CASE("stockade watch sees the same attacks while auditd runs beside it", "[root][audit]") {
  SKIP_UNLESS_ROOT();
  if (::access("/usr/sbin/auditd", X_OK) != 0) {
    WARN("skipped: auditd is not installed");
    return;
  }
  if (!test::run({"/usr/bin/pgrep", "-x", "auditd"}).out.empty()) {
    WARN("auditd already runs: testing beside it");
    watch_attacks();
    return;
  }
  std::string enabled = audit_status_field("enabled");
  std::string rules_before = audit_rules_listed();
  test::TempDir dir;
  // A private configuration and log: the host's auditd settings are not touched.
  std::string conf = dir.path() + "/auditd.conf";
  {
    std::ofstream c(conf);
    c << "log_file = " << dir.path() << "/audit.log\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\n"
      << "freq = 50\nmax_log_file = 50\nmax_log_file_action = ROTATE\nspace_left = 2\n"
      << "admin_space_left = 1\ndisk_full_action = SUSPEND\ndisk_error_action = SUSPEND\n"
      << "write_logs = yes\nlocal_events = yes\n";
  }
  ::chmod(conf.c_str(), 0640);
  test::Process auditd({"/usr/sbin/auditd", "-f", "-n", "-c", dir.path()});
  for (int i = 0; i < 100 && audit_status_field("pid") != std::to_string(auditd.pid()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(audit_status_field("pid") == std::to_string(auditd.pid()));
  watch_attacks();
  auditd.signal(SIGTERM);
  CHECK(auditd.wait(10) >= 0);
  // auditd got the same attempts (in the foreground it writes its log to stderr).
  CHECK((auditd.out() + auditd.err()).find("type=SECCOMP") != std::string::npos);
  if (audit_status_field("enabled") != enabled)
    (void)test::run({"/usr/sbin/auditctl", "-e", enabled});
  CHECK(audit_status_field("enabled") == enabled);
  CHECK(audit_rules_listed() == rules_before);
}

TEST_CASE("stockade watch tells a setns the kernel refused from one that worked", "[root][audit]") {
  SKIP_UNLESS_ROOT();
  // A jail whose policy lets setns through seccomp and keeps CAP_SYS_ADMIN: now the kernel
  // decides, and our audit rule records the call with its arguments.
  test::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  std::string policy = dir.path() + "/allow-setns.toml";
  {
    std::ofstream p(policy);
    p << "[[seccomp.rule]]\nsyscall = \"setns\"\naction = \"allow\"\n";
  }
  std::string sock_dir = dir.path() + "/pass";
  ::mkdir(sock_dir.c_str(), 0755);
  NsFdPasser passer(sock_dir + "/sock");
  REQUIRE(passer.ok());
  std::string alerts = dir.path() + "/alerts.jsonl";
  Watcher w(alerts);
  REQUIRE(w.ready());
  std::vector<std::string> opts = {"--policy", policy, "--cap", "SYS_ADMIN"};
  auto own = test::attack(opts, "setns", {"/proc/self/ns/net"});
  CHECK(test::line(own.out) == "ok");
  opts.insert(opts.end(), {"--bind", sock_dir + ":/pass"});
  auto passed = test::attack(opts, "recv-setns", {"/pass/sock"});
  CHECK(test::line(passed.out) == "errno=EPERM");  // the host's netns is not the jail's to join
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(w.stop() == 0);
  auto got = alert_lines(alerts);
  INFO(w.err());

  const json* ok = find_rule(got, "Stockade setns into own namespace");
  REQUIRE(ok);
  CHECK((*ok)["output_fields"]["evt.res"] == "SUCCESS");
  CHECK((*ok)["output_fields"]["stockade.blocked"] == false);
  CHECK((*ok)["output_fields"]["evt.arg.nstype"] == "any");

  const json* fd = find_rule(got, "Stockade namespace fd passed into jail");
  REQUIRE(fd);
  const json& f = (*fd)["output_fields"];
  CHECK(f["evt.res"] == "EPERM");
  CHECK(f["stockade.blocked"] == true);
  CHECK(f["stockade.blocked_by"] == "kernel");
  CHECK(f["stockade.ns.type"] == "net");
  CHECK(f["evt.arg.fd"].get<int>() >= 3);
  CHECK(got.size() == 2);
}

TEST_CASE("stockade watch raises an alert when the kernel loses audit records",
          "[root][audit][slow]") {
  SKIP_UNLESS_ROOT();
  std::string limit = audit_status_field("backlog_limit");
  std::string wait = audit_status_field("backlog_wait_time");
  test::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  std::string policy = dir.path() + "/allow-setns.toml";
  {
    std::ofstream p(policy);
    p << "[[seccomp.rule]]\nsyscall = \"setns\"\naction = \"allow\"\n";
  }
  std::string alerts = dir.path() + "/alerts.jsonl";
  Watcher w(alerts);
  REQUIRE(w.ready());
  // A tiny backlog and no waiting: the kernel drops records instead of slowing the jail.
  REQUIRE(test::run({"/usr/sbin/auditctl", "-b", "2", "--backlog_wait_time", "0"}).exit_code == 0);
  auto storm = test::attack({"--policy", policy}, "storm", {"100000", "0"});
  (void)test::run({"/usr/sbin/auditctl", "-b", limit, "--backlog_wait_time", wait});
  CHECK(audit_status_field("backlog_limit") == limit);
  CHECK(audit_status_field("backlog_wait_time") == wait);
  CHECK(test::line(storm.out) == "storm=100000");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(w.stop() == 0);
  auto got = alert_lines(alerts);
  const json* lost = find_rule(got, "Stockade audit records lost");
  REQUIRE(lost);
  CHECK((*lost)["priority"] == "Critical");
  CHECK((*lost)["output_fields"]["stockade.lost"].get<long>() > 0);
}

// The watcher learns of a jail from its registry entry, which goes when the jail ends. A
// watcher that falls behind must still name a jail that came and went meanwhile: its records
// wait in the audit socket, and its entry must not be lost with the file.
TEST_CASE("stockade watch names a jail that ended before the watcher caught up", "[root][audit]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string alerts = dir.path() + "/alerts.jsonl";
  Watcher w(alerts);
  REQUIRE(w.ready());
  w.pause();
  auto r = test::attack({}, "ptrace", {"1"});
  w.resume();
  CHECK(test::line(r.out) == "errno=EPERM");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(w.stop() == 0);
  auto got = alert_lines(alerts);
  INFO(w.err());
  const json* a = find_rule(got, "Stockade ptrace attempt");
  REQUIRE(a);
  const json& f = (*a)["output_fields"];
  CHECK(f["stockade.jail.id"] != "unknown");
  CHECK(f["stockade.jail.id"].get<std::string>().size() == 12);
  CHECK(f["proc.exepath"] == "/attack");
}

TEST_CASE("stockade watch names each escape syscall a jail tries, and which barrier stopped it",
          "[root][audit]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  // A policy that lets unshare through seccomp: the jail's own user-namespace limit refuses a
  // nested user namespace (ENOSPC), and our audit rule records it with its flags.
  std::string policy = dir.path() + "/allow-unshare.toml";
  {
    std::ofstream p(policy);
    p << "[[seccomp.rule]]\nsyscall = \"unshare\"\naction = \"allow\"\n";
  }
  std::string alerts = dir.path() + "/alerts.jsonl";
  Watcher w(alerts);
  REQUIRE(w.ready());
  // Under the default policy, seccomp refuses each of these (SECCOMP records).
  for (auto [name, args] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{{"ptrace", {"1"}},
                                                                     {"open-by-handle", {}},
                                                                     {"mount-tmpfs", {"/tmp"}},
                                                                     {"init-module", {}},
                                                                     {"bpf", {}}}) {
    auto r = test::attack({}, name, args);
    CHECK(test::line(r.out) == "errno=EPERM");
  }
  // The kernel refuses these (SYSCALL records from our rules).
  auto nested = test::attack({"--policy", policy}, "unshare-user");
  CHECK(test::line(nested.out) == "errno=ENOSPC");
  auto sysctl = test::attack({}, "sysctl-write", {"/proc/sys/kernel/core_pattern", "|/x"});
  std::string refused = test::line(sysctl.out);  // not its file, and read-only
  CHECK((refused == "errno=EACCES" || refused == "errno=EROFS"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(w.stop() == 0);
  auto got = alert_lines(alerts);
  INFO(w.err());
  struct Want {
    const char* rule;
    const char* syscall;
    const char* by;
  };
  for (const Want& want : std::vector<Want>{
           {"Stockade ptrace attempt", "ptrace", "seccomp:errno"},
           {"Stockade open_by_handle_at attempt", "open_by_handle_at", "seccomp:errno"},
           {"Stockade mount attempt", "mount", "seccomp:errno"},
           {"Stockade kernel module load attempt", "init_module", "seccomp:errno"},
           {"Stockade bpf attempt", "bpf", "seccomp:errno"},
           {"Stockade nested user namespace attempt", "unshare", "kernel"},
           {"Stockade write to host kernel settings attempt", "openat", "kernel"}}) {
    INFO(want.rule);
    const json* a = find_rule(got, want.rule);
    REQUIRE(a);
    const json& f = (*a)["output_fields"];
    CHECK(f["evt.type"] == want.syscall);
    CHECK(f["stockade.blocked"] == true);
    CHECK(f["stockade.blocked_by"] == want.by);
    CHECK(f["stockade.jail.id"] != "unknown");
    CHECK(f["proc.exepath"] == "/attack");
  }
  CHECK(find_rule(got, "Stockade nested user namespace attempt")->at("output_fields")["evt.res"] ==
        "ENOSPC");
  CHECK(find_rule(got, "Stockade nested user namespace attempt")
            ->at("output_fields")["evt.arg.flags"] == "user");
  CHECK(got.size() == 7);
}

TEST_CASE(
    "stockade ps and inspect show the alerts raised for a running jail, and its policy digest",
    "[root][audit]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  std::string alerts = dir.path() + "/alerts.jsonl";
  Watcher w(alerts);
  REQUIRE(w.ready());
  // stockade run with the attack binary bound in, OPTIONS, running CMD.
  auto jail_argv = [](const std::vector<std::string>& options,
                      const std::vector<std::string>& cmd) {
    auto argv = test::attack_argv(options, "setns");
    argv.insert(argv.begin(), test::stockade_bin());
    argv.erase(std::find(argv.begin(), argv.end(), "--") + 1, argv.end());
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  };
  test::Process jail_proc(jail_argv(
      {}, {"/bin/sh", "-c",
           "/attack setns /proc/self/ns/net; /attack open-by-handle; echo done; sleep 30"}));
  auto jail = test::wait_for_jail(jail_proc);
  INFO(jail_proc.err());
  REQUIRE(jail);

  json tally;
  for (int i = 0; i < 100; ++i) {
    auto r = test::stockade({"inspect", "--json", jail->id});
    REQUIRE(r.exit_code == 0);
    tally = json::parse(r.out)["alerts"];
    if (tally.value("count", 0) >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(tally.dump() << w.err());
  CHECK(tally.value("count", 0) == 2);
  CHECK(tally["by_rule"].size() == 2);
  CHECK(tally["last"].value("rule", "").starts_with("Stockade"));
  auto text = test::stockade({"inspect", jail->id});
  CHECK(text.out.find("alerts           2 (last: ") != std::string::npos);
  auto ps = test::stockade({"ps", "--json"});
  for (auto& e : json::parse(ps.out))
    if (e.value("id", "") == jail->id) CHECK(e["alerts"].value("count", 0) == 2);
  CHECK(test::stockade({"ps"}).out.find("ALERTS") != std::string::npos);

  // The registry names the policy by digest: the same policy with another command shares it.
  auto entry = json::parse(test::stockade({"inspect", "--json", jail->id}).out);
  std::string digest = entry.value("policy_digest", "");
  CHECK(digest.starts_with("sha256:"));
  CHECK(digest.size() == 7 + 64);
  test::Process same(jail_argv({}, {"/bin/sleep", "30"}));
  test::Process other(jail_argv({"--cap", "NET_BIND_SERVICE"}, {"/bin/sleep", "30"}));
  auto sj = test::wait_for_jail(same), oj = test::wait_for_jail(other);
  REQUIRE(sj);
  REQUIRE(oj);
  auto digest_of = [](const std::string& id) {
    return json::parse(test::stockade({"inspect", "--json", id}).out).value("policy_digest", "");
  };
  CHECK(digest_of(sj->id) == digest);
  CHECK(digest_of(oj->id) != digest);
  CHECK(digest_of(oj->id).starts_with("sha256:"));
  same.signal(SIGTERM);
  other.signal(SIGTERM);
  CHECK(same.wait(10) == 128 + SIGTERM);
  CHECK(other.wait(10) == 128 + SIGTERM);

  // The tally goes with the jail.
  std::string tally_file = "/run/stockade/alerts/" + jail->id + ".json";
  CHECK(::access(tally_file.c_str(), F_OK) == 0);
  jail_proc.signal(SIGTERM);
  CHECK(jail_proc.wait(10) == 128 + SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // one publish round
  CHECK(::access(tally_file.c_str(), F_OK) != 0);
  CHECK(w.stop() == 0);
}
