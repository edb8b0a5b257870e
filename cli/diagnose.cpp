// stockade diagnose ID [HOST[:PORT]]: "why can't my jail reach X?", answered by walking the layers
// of the jail's network from the inside out and stopping at the first that fails, with a hint.
#include "cli/diagnose.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"
#include "netjail/netjail.hpp"
#include "netjail/probe.hpp"

namespace cli {

namespace {

namespace registry = common::registry;
namespace log = common::log;

constexpr int kTimeoutMs = 2000;

struct Layer {
  std::string name;
  bool ok = true;
  std::string detail;
  std::string hint;  // only for the failing layer
};

struct Target {
  std::string host;  // name or address, as given
  std::optional<std::uint16_t> port;
};

bool is_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// HOST, HOST:PORT, ADDR, ADDR:PORT, [V6ADDR]:PORT, V6ADDR.
std::optional<Target> parse_target(const std::string& text) {
  Target t;
  std::string port;
  if (text.starts_with("[")) {
    auto close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    t.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return std::nullopt;
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    t.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    t.host = text;
  }
  if (t.host.empty()) return std::nullopt;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    int p = std::stoi(port);
    if (p < 1 || p > 65535) return std::nullopt;
    t.port = static_cast<std::uint16_t>(p);
  }
  return t;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> nameservers(const std::string& resolv_conf) {
  std::vector<std::string> out;
  std::istringstream in(resolv_conf);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver") out.push_back(value);
  }
  return out;
}

// The addresses /etc/hosts gives name.
std::vector<std::string> hosts_lookup(const std::string& hosts, const std::string& name) {
  std::vector<std::string> out;
  std::istringstream in(hosts);
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string addr, n;
    if (!(words >> addr)) continue;
    while (words >> n)
      if (n == name) out.push_back(addr);
  }
  return out;
}

std::string flag_text(const netjail::LinkInfo& l) {
  if (!l.exists) return "missing";
  return fmt::format("{}, {}", l.up ? "up" : "DOWN", l.carrier ? "carrier" : "NO CARRIER");
}

char read_sysctl(const char* path) {
  char c = '?';
  common::UniqueFd fd{sys::open(path, O_RDONLY | O_CLOEXEC)};
  if (fd && sys::read(fd.get(), &c, 1) != 1) c = '?';
  return c;
}

// Counters of the jail's egress chain, by position (comments repeat: "dns", "DNS only to ...").
std::vector<netjail::Counter> egress_counters(const std::string& id) {
  auto c = netjail::counters(id);
  return c ? *c : std::vector<netjail::Counter>{};
}

// The layers, in order; the walk stops at the first that fails.
class Walk {
 public:
  explicit Walk(std::vector<Layer>& out) : out_(out) {}
  bool ok(const std::string& name, const std::string& detail) {
    out_.push_back({name, true, detail, ""});
    return true;
  }
  bool fail(const std::string& name, const std::string& detail, const std::string& hint) {
    out_.push_back({name, false, detail, hint});
    return false;
  }

 private:
  std::vector<Layer>& out_;
};

bool walk(const registry::JailRecord& rec, const std::optional<Target>& target,
          std::vector<Layer>& layers) {
  Walk w(layers);
  if (!registry::supervisor_alive(rec))
    return w.fail("jail", fmt::format("'{}' is not running (its supervisor is gone)", rec.id),
                  "a stale entry: stockade gc removes what the jail left behind");
  w.ok("jail",
       fmt::format("running, supervisor pid {}, init pid {}", rec.supervisor_pid, rec.init_pid));

  bool local = target && (target->host == "localhost" || target->host == "127.0.0.1" ||
                          target->host == "::1");
  if (rec.net == "none")
    return w.fail("network", "none: the jail has no network interface, not even loopback",
                  "start the jail with --net loopback (itself only) or --net bridge with "
                  "--egress rules for what it may reach");
  if (rec.net == "loopback") {
    if (local) return w.ok("network", "loopback: the jail reaches itself, and only itself");
    return w.fail("network", "loopback: the jail has only its own 127.0.0.1 and ::1",
                  "to reach other hosts start the jail with --net bridge and an --egress rule "
                  "(or [network] egress in its policy) for the destination");
  }
  w.ok("network", fmt::format("bridge {}, addresses {} {}, mark {:#x}", rec.bridge, rec.ipv4,
                              rec.ipv6, rec.mark));

  // The host's side: the bridge and the jail's port on it.
  auto bridge = netjail::host_link(rec.bridge);
  auto port = netjail::host_link(rec.veth);
  if (!bridge || !port)
    return w.fail("host link", (bridge ? port : bridge).error().message(),
                  "run stockade diagnose as root");
  if (!bridge->exists || !bridge->up)
    return w.fail("host link", fmt::format("bridge {} is {}", rec.bridge, flag_text(*bridge)),
                  fmt::format("bring it back up (ip link set {} up); something on the host took it "
                              "down or deleted it",
                              rec.bridge));
  if (!port->exists || !port->up || port->master != rec.bridge)
    return w.fail(
        "host link",
        fmt::format("the jail's port {} is {}{}", rec.veth, flag_text(*port),
                    port->exists && port->master != rec.bridge
                        ? fmt::format(", attached to '{}' instead of {}", port->master, rec.bridge)
                        : ""),
        port->exists ? fmt::format("ip link set {} up master {}", rec.veth, rec.bridge)
                     : "the port is gone: restart the jail");
  w.ok("host link", fmt::format("bridge {} up; port {} {}, on {}", rec.bridge, rec.veth,
                                flag_text(*port), port->master));

  // Inside the jail's netns: the registry's inode guards against a recycled pid.
  std::string ns_path = fmt::format("/proc/{}/ns/net", rec.init_pid);
  common::UniqueFd netns{sys::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC)};
  struct stat st {};
  if (!netns || ::fstat(netns.get(), &st) != 0 ||
      (rec.namespaces.contains("net") && st.st_ino != rec.namespaces.at("net")))
    return w.fail("jail link",
                  fmt::format("cannot enter the jail's network namespace ({})", ns_path),
                  "the jail is ending; see stockade ps");
  auto state = netjail::jail_net_state(netns.get());
  if (!state) return w.fail("jail link", state.error().message(), "run stockade diagnose as root");
  if (!state->link.exists || !state->link.up || !state->link.carrier)
    return w.fail("jail link", fmt::format("eth0 is {}", flag_text(state->link)),
                  "the jail's end of the veth is down: a process in the jail with CAP_NET_ADMIN "
                  "may have taken it down; stockade exec ID -- ip link set eth0 up, or restart");
  if (!state->loopback.up)
    return w.fail("jail link", "lo is down", "stockade exec ID -- ip link set lo up");
  w.ok("jail link", fmt::format("eth0 {}; lo up", flag_text(state->link)));

  std::vector<std::string> missing;
  for (const auto& want : {rec.ipv4 + "/32", rec.ipv6 + "/128"}) {
    bool found = false;
    for (auto& a : state->addresses) found = found || a == want;
    if (!found) missing.push_back(want);
  }
  std::string have;
  for (auto& a : state->addresses) have += (have.empty() ? "" : " ") + a;
  if (!missing.empty())
    return w.fail("addresses",
                  fmt::format("eth0 has [{}], missing {}", have, fmt::join(missing, " ")),
                  "the jail's addresses were removed from inside the jail; restart it (its "
                  "egress rules only accept its own addresses)");
  w.ok("addresses", have);

  bool v6 = target && !target->host.empty() && target->host.find(':') != std::string::npos;
  if (!state->gateway4 || !state->gateway6) {
    bool needed = v6 ? !state->gateway6 : !state->gateway4;
    if (needed || !target)
      return w.fail("routes",
                    fmt::format("default route: v4 {}, v6 {}", state->gateway4.value_or("none"),
                                state->gateway6.value_or("none")),
                    "the jail's default route is gone; stockade exec ID -- ip route add default "
                    "via GATEWAY, or restart the jail");
  }
  w.ok("routes", fmt::format("default via {} (v4), via {} (v6)", state->gateway4.value_or("-"),
                             state->gateway6.value_or("-")));

  // Names: /etc/hosts first (names pinned at start), then the resolvers of resolv.conf.
  std::string root = fmt::format("/proc/{}/root/etc/", rec.init_pid);
  auto servers = nameservers(read_text(root + "resolv.conf"));
  std::string address = target ? target->host : "";
  if (target && !is_address(target->host) && !local) {
    auto pinned = hosts_lookup(read_text(root + "hosts"), target->host);
    if (!pinned.empty()) {
      address = pinned.front();
      w.ok("name",
           fmt::format("{} is {} (pinned in the jail's /etc/hosts)", target->host, address));
      servers.clear();  // no resolver needed
    } else if (servers.empty()) {
      return w.fail("resolv.conf", "no nameserver: the jail cannot resolve names",
                    fmt::format("start the jail with --dns RESOLVER, or pin the name with "
                                "--allow-host {}",
                                target->host));
    }
  }
  if (target && is_address(target->host)) {
    // An address needs no resolver: resolv.conf is shown, not tried.
    w.ok("resolv.conf", servers.empty() ? std::string("no nameserver (not needed for an address)")
                                        : fmt::format("nameserver {}", fmt::join(servers, ", ")));
    servers.clear();
  } else if (!target && servers.empty()) {
    return w.fail("resolv.conf", "no nameserver: the jail cannot resolve names",
                  "start the jail with --dns RESOLVER, or pin names with --allow-host NAME");
  }
  if (!servers.empty()) {
    w.ok("resolv.conf", fmt::format("nameserver {}", fmt::join(servers, ", ")));
    std::string question = target && !is_address(target->host) ? target->host : ".";
    auto before = egress_counters(rec.id);
    auto dns = netjail::dns_probe(netns.get(), servers.front(), question, kTimeoutMs);
    if (!dns) return w.fail("resolver", dns.error().message(), "");
    if (!dns->answered) {
      auto after = egress_counters(rec.id);
      std::string counted;
      for (size_t i = 0; i < before.size() && i < after.size(); ++i)
        if (after[i].packets > before[i].packets) counted = after[i].rule;
      return w.fail(
          "resolver",
          fmt::format("{} did not answer within {} ms{}", servers.front(), kTimeoutMs,
                      counted.empty() ? "" : fmt::format(" (the query passed rule '{}')", counted)),
          counted.starts_with("dns")
              ? "the jail's policy lets the query out: check that the resolver runs and that the "
                "host routes and NATs to it (net.ipv4.ip_forward)"
              : "the query did not leave the jail: is the resolver in --dns?");
    }
    if (question != ".") {
      if (dns->addresses.empty())
        return w.fail("name",
                      fmt::format("{} answered for {} with no address (rcode {})", servers.front(),
                                  question, dns->rcode),
                      "the name does not exist for that resolver; check the spelling, or pin it "
                      "with --allow-host");
      address = dns->addresses.front();
      w.ok("name", fmt::format("{} is {} (from {})", question, address, servers.front()));
    } else {
      w.ok("resolver", fmt::format("{} answers (rcode {})", servers.front(), dns->rcode));
    }
  }
  if (!target) return true;
  if (local) address = target->host == "localhost" ? "127.0.0.1" : target->host;

  // A route to the destination (no packet sent), then the connection itself.
  auto route = netjail::connect_probe(netns.get(), address, target->port.value_or(9), 0, true);
  if (!route) return w.fail("route", route.error().message(), "");
  if (route->err != 0)
    return w.fail("route", fmt::format("no route to {}: {}", address, std::strerror(route->err)),
                  "the jail's routing table has no way there: restart the jail");
  w.ok("route", fmt::format("to {} from {}", address, route->source));
  if (!target->port) return true;

  auto before = egress_counters(rec.id);
  auto conn = netjail::connect_probe(netns.get(), address, *target->port, kTimeoutMs);
  auto after = egress_counters(rec.id);
  if (!conn) return w.fail("egress", conn.error().message(), "");
  std::vector<std::string> rose;
  bool denied = false;
  for (size_t i = 0; i < before.size() && i < after.size(); ++i)
    if (after[i].packets > before[i].packets) {
      rose.push_back(
          fmt::format("'{}' (+{})", after[i].rule, after[i].packets - before[i].packets));
      denied = denied || after[i].rule == "denied" || after[i].rule.starts_with("DNS only");
    }
  std::string dest = address.find(':') != std::string::npos
                         ? fmt::format("[{}]:{}", address, *target->port)
                         : fmt::format("{}:{}", address, *target->port);
  if (!local) {
    if (denied)
      return w.fail(
          "egress",
          fmt::format("tcp to {} is denied by the jail's egress policy (rule {})", dest,
                      fmt::join(rose, ", ")),
          fmt::format("allow it with --egress {}/{},tcp,{} (or an [[network.egress]] "
                      "entry in the policy) and restart the jail",
                      address, address.find(':') != std::string::npos ? 128 : 32, *target->port));
    if (rose.empty() && conn->err != 0)
      return w.fail("egress",
                    fmt::format("tcp to {}: no rule of the jail counted the attempt", dest),
                    "the packets did not reach the host's side: check the jail's link and "
                    "routes inside it");
    w.ok("egress", rose.empty() ? "allowed (an established flow)"
                                : fmt::format("allowed by rule {}", fmt::join(rose, ", ")));
  }
  if (conn->err == 0)
    return w.ok("connect", fmt::format("tcp to {} connected in {:.1f} ms from {}", dest, conn->ms,
                                       conn->source));
  if (conn->err == ECONNREFUSED)
    return w.fail("connect",
                  fmt::format("{} answered: nothing listens on port {}", address, *target->port),
                  "the network path works: the service is down, or listens on another port");
  char fwd = read_sysctl("/proc/sys/net/ipv4/ip_forward");
  return w.fail(
      "connect",
      fmt::format("tcp to {}: {} after {:.0f} ms", dest, std::strerror(conn->err), conn->ms),
      fmt::format("the jail's policy allows it, so the packets leave the bridge: check "
                  "the path beyond the host (net.ipv4.ip_forward is {}, routes, NAT, the "
                  "destination's firewall)",
                  fwd));
}

}  // namespace

int cmd_diagnose(const std::string& id, const std::string& target_text, bool json) {
  std::optional<Target> target;
  if (!target_text.empty()) {
    target = parse_target(target_text);
    if (!target) {
      log::error("diagnose: '{}' is not HOST, HOST:PORT, ADDRESS or [V6ADDRESS]:PORT", target_text);
      return 2;
    }
  }
  auto dir = registry::default_dir();
  auto rec = registry::read(dir, id);
  if (!rec) {
    log::error("diagnose: {} (see stockade ps)", rec.error().message());
    return 2;
  }
  std::vector<Layer> layers;
  bool all_ok = walk(*rec, target, layers);
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& l : layers) {
      nlohmann::json j{{"layer", l.name}, {"ok", l.ok}, {"detail", l.detail}};
      if (!l.ok) j["hint"] = l.hint;
      arr.push_back(j);
    }
    nlohmann::json out{{"jail", rec->id}, {"target", target_text}, {"layers", arr}};
    out["first_failure"] = all_ok ? nlohmann::json(nullptr) : nlohmann::json(layers.back().name);
    fmt::print("{}\n", out.dump(2));
    return all_ok ? 0 : 1;
  }
  for (auto& l : layers) fmt::print("{:<4} {:<12} {}\n", l.ok ? "ok" : "FAIL", l.name, l.detail);
  if (!all_ok && !layers.back().hint.empty()) fmt::print("hint: {}\n", layers.back().hint);
  return all_ok ? 0 : 1;
}

}  // namespace cli
