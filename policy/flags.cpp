// make_spec: command-line values -> a validated JailSpec.
#include <arpa/inet.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "policy/detail/parse.hpp"
#include "policy/spec.hpp"

namespace policy {
namespace {

using common::fail;
using common::Result;
using detail::absolute_host_path;
using detail::normalize_jail_path;
using detail::parse_number;

// SRC[:DST] for --bind/--ro-bind.
Result<Mount> parse_bind(const std::string& flag, const std::string& arg, bool read_only) {
  Mount m;
  m.kind = Mount::Kind::kBind;
  m.read_only = read_only;
  auto colon = arg.find(':');
  std::string src = arg.substr(0, colon);
  std::string dst = colon == std::string::npos ? src : arg.substr(colon + 1);
  m.src = TRY(absolute_host_path(flag, src));
  if (colon == std::string::npos) dst = m.src;
  m.dst = TRY(normalize_jail_path(flag, dst));
  if (m.dst == "/")
    return fail(0, "{} '{}': cannot mount over the jail's root; use --chroot for a prepared rootfs",
                flag, arg);
  return m;
}

Result<Mount> parse_tmpfs(const std::string& arg) {
  Mount m;
  m.kind = Mount::Kind::kTmpfs;
  m.read_only = false;
  auto colon = arg.find(':');
  m.dst = TRY(normalize_jail_path("--tmpfs", arg.substr(0, colon)));
  m.size = 64ull << 20;
  if (colon != std::string::npos) m.size = TRY(parse_size(arg.substr(colon + 1)));
  if (m.dst == "/") return fail(0, "--tmpfs '/': the jail's root is already a tmpfs");
  return m;
}

// An OCI profile over spec's seccomp base, its entries evaluated against spec's final caps.
// Warnings (skipped syscalls) travel in the profile: the run goes on without those rules.
Result<void> import_seccomp(const std::string& flag, const std::string& path, JailSpec& spec) {
  std::vector<std::string> warnings;
  SeccompPolicy imported = TRY_CTX(import_oci_seccomp(path, &warnings, spec.caps), "{}", flag);
  imported.import_warnings = std::move(warnings);  // a re-import's replace the load's
  imported.rules = std::move(spec.seccomp.rules);
  spec.seccomp = std::move(imported);
  return {};
}

Result<int> parse_cap(const std::string& name) {
  auto v = detail::cap_from_user_name(name);
  if (!v)
    return fail(0,
                "--cap '{}': unknown capability; use a name such as NET_BIND_SERVICE "
                "(see capabilities(7))",
                name);
  return *v;
}

Result<std::string> parse_env(const std::string& arg) {
  auto eq = arg.find('=');
  std::string name = arg.substr(0, eq);
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok) return fail(0, "--env '{}': '{}' is not a valid variable name", arg, name);
  if (eq != std::string::npos) return arg;
  const char* host = std::getenv(name.c_str());
  if (host == nullptr)
    return fail(0, "--env '{}': not set in stockade's environment; give {}=VALUE instead", arg,
                name);
  return name + "=" + host;
}

Result<std::uint64_t> parse_limit_value(const std::string& what, const std::string& text,
                                        bool bytes) {
  if (text == "inf" || text == "unlimited" || text == "infinity") return RLIM_INFINITY;
  if (bytes) {
    auto r = parse_size(text);
    if (!r) return fail(0, "{}: '{}' is not a size (use 4096, 64K, 512M, 2G or inf)", what, text);
    return *r;
  }
  auto n = parse_number<std::uint64_t>(text);
  if (!n) return fail(0, "{}: '{}' is not a whole number (or inf)", what, text);
  return *n;
}

Result<Rlimit> parse_rlimit(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos)
    return fail(0, "--rlimit '{}': expected NAME=VALUE or NAME=SOFT:HARD, e.g. nofile=1024", arg);
  std::string name = arg.substr(0, eq);
  auto res = rlimit_from_name(name);
  if (!res)
    return fail(0,
                "--rlimit '{}': unknown limit '{}'; use one of as, core, cpu, data, fsize, "
                "memlock, nofile, nproc, stack",
                arg, name);
  bool bytes = detail::rlimit_in_bytes(*res);
  std::string value = arg.substr(eq + 1);
  auto colon = value.find(':');
  Rlimit r;
  r.resource = *res;
  std::string what = "--rlimit '" + arg + "'";
  r.soft = TRY(parse_limit_value(what, value.substr(0, colon), bytes));
  r.hard = colon == std::string::npos
               ? r.soft
               : TRY(parse_limit_value(what, value.substr(colon + 1), bytes));
  if (r.soft > r.hard) return fail(0, "{}: the soft limit is above the hard limit", what);
  return r;
}

Result<void> parse_user(const std::string& arg, JailSpec& spec) {
  auto colon = arg.find(':');
  auto uid = parse_number<std::uint32_t>(arg.substr(0, colon));
  std::optional<std::uint32_t> gid = uid;
  if (colon != std::string::npos) gid = parse_number<std::uint32_t>(arg.substr(colon + 1));
  // 65534 and above are the kernel's overflow and invalid ids.
  if (!uid || !gid || *uid >= 65534 || *gid >= 65534)
    return fail(0, "--user '{}': expected UID[:GID] as numbers below 65534, e.g. 1000:1000", arg);
  spec.uid = *uid;
  spec.gid = *gid;
  return {};
}

Result<IdRange> parse_id_range(const std::string& arg) {
  auto colon = arg.find(':');
  auto first = parse_number<std::uint32_t>(arg.substr(0, colon));
  std::optional<std::uint32_t> count = 65536;
  if (colon != std::string::npos) count = parse_number<std::uint32_t>(arg.substr(colon + 1));
  if (!first || !count || *first < 65536 || *count == 0 ||
      std::uint64_t{*first} + *count >= std::numeric_limits<std::uint32_t>::max())
    return fail(0,
                "--host-ids '{}': expected START[:COUNT] with START at least 65536 and the range "
                "below 4294967295, e.g. 1879048192:65536",
                arg);
  return IdRange{*first, *count};
}

}  // namespace

namespace detail {

// "/a/./b//c/" -> "/a/b/c"; rejects relative paths and "..".
Result<std::string> normalize_jail_path(const std::string& what, const std::string& path) {
  if (path.empty() || path[0] != '/')
    return fail(0, "{} '{}': the path inside the jail must be absolute (start with '/')", what,
                path);
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string_view comp(path.data() + i, j - i);
    if (comp == "..")
      return fail(0, "{} '{}': '..' is not allowed in a path inside the jail", what, path);
    if (!comp.empty() && comp != ".") {
      out += '/';
      out += comp;
    }
    i = j + 1;
  }
  return out.empty() ? std::string("/") : out;
}

Result<std::string> absolute_host_path(const std::string& what, const std::string& path) {
  if (path.empty()) return fail(0, "{}: the host path is empty", what);
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  if (ec) return fail(ec.value(), "{} '{}'", what, path);
  return abs.lexically_normal().string();
}

std::optional<int> cap_from_user_name(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!lower.starts_with("cap_")) lower = "cap_" + lower;
  cap_value_t v;
  if (cap_from_name(lower.c_str(), &v) != 0) return std::nullopt;
  return static_cast<int>(v);
}

std::string cap_display_name(int cap) {
  // cap_to_name allocates; libcap wants the result back through cap_free.
  char* name = cap_to_name(static_cast<cap_value_t>(cap));
  if (name == nullptr) return std::to_string(cap);
  std::string_view n(name);
  if (n.starts_with("cap_")) n.remove_prefix(4);
  std::string out;
  for (char c : n) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  cap_free(name);
  return out;
}

std::vector<std::string> all_cap_names() {
  std::vector<std::string> out;
  for (int c = 0; c <= CAP_LAST_CAP; ++c) out.push_back(cap_display_name(c));
  return out;
}

bool rlimit_in_bytes(int r) {
  return r == RLIMIT_AS || r == RLIMIT_CORE || r == RLIMIT_FSIZE || r == RLIMIT_DATA ||
         r == RLIMIT_STACK || r == RLIMIT_MEMLOCK;
}

std::string rlimit_name(int resource) {
  for (const char* n :
       {"as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc", "stack"})
    if (rlimit_from_name(n) == resource) return n;
  return std::to_string(resource);
}

bool valid_hostname(const std::string& h) {
  if (h.empty() || h.size() > 64) return false;
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

std::optional<std::string> bad_bridge_name(const std::string& name) {
  if (name.empty() || name.size() > 15) return "must be 1 to 15 characters (an interface name)";
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return "may hold only letters, digits, '-', '_' and '.'";
  if (name.starts_with("stk")) return "starts with 'stk', which names jail ports; choose another";
  return std::nullopt;
}

std::optional<std::string> bad_subnet(const std::string& cidr, bool v6) {
  bool is6 = cidr.find(':') != std::string::npos;
  if (is6 != v6) return v6 ? "is not an IPv6 network" : "is not an IPv4 network";
  auto prefix = parse_number<int>(cidr.substr(cidr.find('/') + 1));
  if (!prefix) return "needs a prefix length, e.g. /16";
  if (!v6 && (*prefix < 8 || *prefix > 29)) return "must have a prefix from /8 to /29";
  if (v6 && (*prefix < 48 || *prefix > 120)) return "must have a prefix from /48 to /120";
  return std::nullopt;
}

std::vector<std::string> default_env() {
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"};
}

}  // namespace detail

Result<Device> parse_device(const std::string& text) {
  Device d;
  d.path = text;
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    d.path = text.substr(0, colon);
    d.access = text.substr(colon + 1);
    bool ok = !d.access.empty() && d.access.size() <= 3;
    for (char c : d.access)
      ok = ok && (c == 'r' || c == 'w' || c == 'm') &&
           std::count(d.access.begin(), d.access.end(), c) == 1;
    if (!ok)
      return fail(0, "device '{}': access must be letters from 'rwm', e.g. /dev/dri/card0:rw",
                  text);
  }
  // Usually under /dev; the node appears at the same path in the jail.
  if (!d.path.starts_with("/") || d.path.find("/..") != std::string::npos || d.path.size() < 2 ||
      d.path.ends_with("/"))
    return fail(0, "device '{}': give the absolute path of a device node, e.g. /dev/dri/card0[:rw]",
                text);
  return d;
}

Result<std::uint64_t> parse_size(const std::string& text) {
  if (text.empty()) return fail(0, "empty size");
  std::uint64_t mult = 1;
  std::string digits = text;
  switch (std::toupper(static_cast<unsigned char>(text.back()))) {
    case 'K':
      mult = 1ull << 10;
      break;
    case 'M':
      mult = 1ull << 20;
      break;
    case 'G':
      mult = 1ull << 30;
      break;
    case 'T':
      mult = 1ull << 40;
      break;
    default:
      break;
  }
  if (mult != 1) digits.pop_back();
  auto n = parse_number<std::uint64_t>(digits);
  if (!n || *n > std::numeric_limits<std::uint64_t>::max() / mult)
    return fail(0, "'{}' is not a size (use 4096, 64K, 512M or 2G)", text);
  return *n * mult;
}

std::optional<int> rlimit_from_name(const std::string& name) {
  static const std::pair<const char*, int> kNames[] = {
      {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},   {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE}, {"memlock", RLIMIT_MEMLOCK},
      {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC}, {"stack", RLIMIT_STACK},
  };
  for (auto& [n, r] : kNames)
    if (name == n) return r;
  return std::nullopt;
}

std::vector<Rlimit> default_rlimits() {
  // No core dumps (they can leak memory contents to the host); a cap on processes, which the
  // kernel counts per host uid, and each jail has a host uid of its own.
  return {{RLIMIT_CORE, 0, 0}, {RLIMIT_NPROC, 4096, 4096}};
}

JailSpec default_spec() {
  JailSpec spec;
  spec.env = detail::default_env();
  spec.rlimits = default_rlimits();
  return spec;
}

Result<JailSpec> make_spec(const RunFlags& f) { return apply_flags(default_spec(), f); }

// Flags land on top of what the policy (or the defaults) gave: scalars replace, lists (mounts,
// capabilities) append, env and rlimits override by name.
// A CIDR ("10.0.0.0/8", "2001:db8::/32", or a bare address) checked the way policy files are.
Result<std::string> parse_cidr_flag(const std::string& flag, const std::string& text) {
  std::string cidr = text;
  if (cidr.find('/') == std::string::npos)
    cidr += cidr.find(':') != std::string::npos ? "/128" : "/32";
  auto slash = cidr.find('/');
  std::string addr = cidr.substr(0, slash);
  unsigned char buf[16] = {};
  int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  unsigned max = family == AF_INET6 ? 128 : 32;
  auto prefix = parse_number<unsigned>(cidr.substr(slash + 1));
  if (inet_pton(family, addr.c_str(), buf) != 1 || !prefix || *prefix > max)
    return fail(0, "{} '{}': not an address or network; use e.g. 203.0.113.0/24 or 2001:db8::/32",
                flag, text);
  for (unsigned bit = *prefix; bit < max; ++bit)
    if (buf[bit / 8] & (0x80 >> (bit % 8)))
      return fail(0, "{} '{}': host bits set after the /{} prefix", flag, text, *prefix);
  return cidr;
}

// --egress CIDR[,PROTO[,PORTS]]: "203.0.113.0/24,tcp,443", "2001:db8::/32,udp,8000-8100".
Result<EgressRule> parse_egress(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  for (std::size_t j; (j = text.find(',', i)) != std::string::npos; i = j + 1)
    parts.push_back(text.substr(i, j - i));
  parts.push_back(text.substr(i));
  if (parts.size() > 3)
    return fail(0, "--egress '{}': use CIDR[,PROTO[,PORTS]], e.g. 203.0.113.0/24,tcp,443", text);
  EgressRule r;
  r.cidr = TRY(parse_cidr_flag("--egress", parts[0]));
  if (parts.size() > 1) {
    r.proto = parts[1];
    if (r.proto != "tcp" && r.proto != "udp" && r.proto != "icmp" && r.proto != "any")
      return fail(0, "--egress '{}': protocol '{}' unknown; use tcp, udp, icmp or any", text,
                  r.proto);
  }
  if (parts.size() > 2) {
    if (r.proto == "icmp") return fail(0, "--egress '{}': icmp has no ports", text);
    auto dash = parts[2].find('-');
    auto first = parse_number<std::uint16_t>(parts[2].substr(0, dash));
    auto last =
        dash == std::string::npos ? first : parse_number<std::uint16_t>(parts[2].substr(dash + 1));
    if (!first || !last || *first == 0 || *first > *last)
      return fail(0, "--egress '{}': ports '{}' is not a port or range (443, 8000-8100)", text,
                  parts[2]);
    r.port_first = *first;
    r.port_last = *last;
  }
  return r;
}

// --publish HOST_PORT:JAIL_PORT[/tcp|udp].
Result<PublishedPort> parse_publish(const std::string& text) {
  PublishedPort p;
  std::string ports = text;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    p.proto = text.substr(slash + 1);
    ports = text.substr(0, slash);
    if (p.proto != "tcp" && p.proto != "udp")
      return fail(0, "--publish '{}': protocol '{}' unknown; use tcp or udp", text, p.proto);
  }
  auto colon = ports.find(':');
  auto host = parse_number<std::uint16_t>(ports.substr(0, colon));
  auto jail =
      colon == std::string::npos ? host : parse_number<std::uint16_t>(ports.substr(colon + 1));
  if (!host || !jail || *host == 0 || *jail == 0)
    return fail(0, "--publish '{}': use HOST_PORT:JAIL_PORT[/tcp|udp], e.g. 8080:80", text);
  p.host_port = *host;
  p.jail_port = *jail;
  return p;
}

Result<void> apply_network_flags(JailSpec& spec, const RunFlags& f) {
  if (f.bridge) {
    if (auto why = detail::bad_bridge_name(*f.bridge))
      return fail(0, "--bridge '{}' {}", *f.bridge, *why);
    spec.network.bridge = *f.bridge;
    spec.net = NetMode::kBridge;
  }
  for (auto& c : f.subnets) {
    bool six = c.find(':') != std::string::npos;
    std::string cidr = TRY(parse_cidr_flag("--subnet", c));
    if (auto why = detail::bad_subnet(cidr, six)) return fail(0, "--subnet '{}' {}", c, *why);
    (six ? spec.network.subnet6 : spec.network.subnet4) = cidr;
  }
  for (auto& e : f.egress) spec.network.egress.push_back(TRY(parse_egress(e)));
  for (auto& p : f.publish) {
    PublishedPort port = TRY(parse_publish(p));
    for (const auto& q : spec.network.publish)
      if (q.host_port == port.host_port && q.proto == port.proto)
        return fail(0, "--publish '{}': host port {}/{} is published twice", p, port.host_port,
                    port.proto);
    spec.network.publish.push_back(port);
  }
  for (auto& d : f.dns) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, d.c_str(), buf) != 1 && inet_pton(AF_INET6, d.c_str(), buf) != 1)
      return fail(0, "--dns '{}': not an IP address", d);
    spec.network.dns.push_back(d);
  }
  for (auto& h : f.allow_hosts) {
    if (h.empty() || h.size() > 253 || !detail::valid_hostname(h.substr(0, 64)))
      return fail(0, "--allow-host '{}': not a host name", h);
    spec.network.hosts.push_back(h);
  }
  return {};
}

Result<JailSpec> apply_flags(JailSpec spec, const RunFlags& f) {
  // A command on the command line replaces the policy's process.command.
  if (!f.command.empty()) spec.argv = f.command;
  if (spec.argv.empty())
    return fail(0,
                "no command given; usage: stockade run [OPTIONS] -- CMD [ARGS...] (or set "
                "process.command in the policy)");
  if (f.user) TRY(parse_user(*f.user, spec));
  if (f.cgroup.memory_bytes) spec.cgroup.memory_bytes = f.cgroup.memory_bytes;
  if (f.cgroup.pids) spec.cgroup.pids = f.cgroup.pids;
  if (f.cgroup.cpu_ms_per_sec) spec.cgroup.cpu_ms_per_sec = f.cgroup.cpu_ms_per_sec;
  if (f.cgroup.memory_bytes && *f.cgroup.memory_bytes == 0)
    return fail(0, "--memory-max: give a size above 0, such as 512M");
  if (f.cgroup.pids && (*f.cgroup.pids == 0 || *f.cgroup.pids > 4194304))
    return fail(0, "--pids-max: give a number of processes from 1 to 4194304");
  if (f.cgroup.cpu_ms_per_sec &&
      (*f.cgroup.cpu_ms_per_sec == 0 || *f.cgroup.cpu_ms_per_sec > 1000000))
    return fail(0,
                "--cpu-ms-per-sec: give milliseconds of CPU per second from 1 to 1000000 (1000 = "
                "one CPU)");
  for (auto& d : f.devices) {
    Device dev = TRY_CTX(parse_device(d), "--device");
    std::erase_if(spec.devices, [&](const Device& x) { return x.path == dev.path; });
    spec.devices.push_back(dev);
  }
  if (f.cgroup_parent) {
    const std::string& p = *f.cgroup_parent;
    if (p.starts_with("/") || p.find("..") != std::string::npos || p.ends_with("/"))
      return fail(0,
                  "--cgroup-parent '{}': give a path relative to the cgroup root, e.g. "
                  "system.slice/stockade.slice",
                  p);
    spec.cgroup_parent = p;
  }
  if (f.hostname) {
    if (!detail::valid_hostname(*f.hostname))
      return fail(0, "--hostname '{}': use up to 64 letters, digits, '-' and '.'", *f.hostname);
    spec.hostname = *f.hostname;
  }
  if (f.chroot) {
    auto root = TRY(absolute_host_path("--chroot", *f.chroot));
    spec.chroot = root;
  }
  for (auto& [kind, arg] : f.mounts) {
    switch (kind) {
      case RunFlags::MountFlag::kBind:
        spec.mounts.push_back(TRY(parse_bind("--bind", arg, false)));
        break;
      case RunFlags::MountFlag::kRoBind:
        spec.mounts.push_back(TRY(parse_bind("--ro-bind", arg, true)));
        break;
      case RunFlags::MountFlag::kTmpfs:
        spec.mounts.push_back(TRY(parse_tmpfs(arg)));
        break;
    }
  }
  if (f.cwd) spec.cwd = TRY(normalize_jail_path("--cwd", *f.cwd));
  for (auto& c : f.caps) {
    int v = TRY(parse_cap(c));
    if (std::find(spec.caps.begin(), spec.caps.end(), v) == spec.caps.end()) spec.caps.push_back(v);
  }
  // --env entries override the policy's environment (or the minimal default) by name.
  for (auto& e : f.env) {
    std::string kv = TRY(parse_env(e));
    std::string name = kv.substr(0, kv.find('='));
    std::erase_if(spec.env, [&](const std::string& s) { return s.starts_with(name + "="); });
    spec.env.push_back(kv);
  }
  for (auto& r : f.rlimits) {
    Rlimit lim = TRY(parse_rlimit(r));
    std::erase_if(spec.rlimits, [&](const Rlimit& x) { return x.resource == lim.resource; });
    spec.rlimits.push_back(lim);
  }
  if (f.time_limit) {
    if (*f.time_limit < 0) return fail(0, "--time-limit: give a number of seconds (0: no limit)");
    spec.time_limit = *f.time_limit;
  }
  if (f.kill_grace) {
    if (*f.kill_grace < 0) return fail(0, "--kill-grace: give a number of seconds, 0 or more");
    spec.kill_grace = *f.kill_grace;
  }
  if (f.net) {
    if (*f.net == "none")
      spec.net = NetMode::kNone;
    else if (*f.net == "loopback")
      spec.net = NetMode::kLoopback;
    else if (*f.net == "bridge")
      spec.net = NetMode::kBridge;
    else
      return fail(0, "--net '{}': use none, loopback or bridge", *f.net);
  }
  TRY(apply_network_flags(spec, f));
  if (spec.net != NetMode::kBridge && spec.network.any())
    return fail(0,
                "egress, dns, hosts and published ports need a bridged network: add --net "
                "bridge (or mode = \"bridge\" in the policy)");
  if (f.host_ids) spec.host_ids = TRY(parse_id_range(*f.host_ids));
  if (f.tmp_size) {
    auto size = parse_size(*f.tmp_size);
    if (!size) return fail(0, "--tmp-size '{}': use a size such as 64M or 1G", *f.tmp_size);
    spec.tmp_size = *size;
  }
  if (f.seccomp && f.seccomp->ends_with(".json")) {
    std::string path = TRY(absolute_host_path("--seccomp", *f.seccomp));
    TRY(import_seccomp("--seccomp", path, spec));
  } else if (f.seccomp) {
    if (*f.seccomp != "default" && *f.seccomp != "strict")
      return fail(0, "--seccomp '{}': use default, strict or the path of an OCI profile (.json)",
                  *f.seccomp);
    spec.seccomp.profile = *f.seccomp;
    spec.seccomp.base_rules.clear();
  } else if (spec.seccomp.profile.starts_with("oci:") && !f.caps.empty()) {
    // The policy's profile was imported against the policy's capabilities; --cap adds to them.
    TRY(import_seccomp("--cap", spec.seccomp.profile.substr(4), spec));
  }
  return spec;
}

Result<void> check_enforceable(const JailSpec& spec) {
  if (::geteuid() != 0 && (spec.cgroup.any() || !spec.devices.empty())) {
    std::vector<std::string> what;
    if (spec.cgroup.memory_bytes) what.push_back("memory");
    if (spec.cgroup.pids) what.push_back("pids");
    if (spec.cgroup.cpu_ms_per_sec) what.push_back("cpu");
    if (!spec.devices.empty()) what.push_back("device");
    std::string list;
    for (auto& w : what) list += (list.empty() ? "" : ", ") + w;
    return fail(0,
                "cannot enforce the {} limit{} without root: cgroups need root (run stockade "
                "as root, or remove the limit; rootless jails get RLIMIT_NPROC only)",
                list, what.size() > 1 ? "s" : "");
  }
  if (spec.network.any() && spec.net != NetMode::kBridge)
    return fail(0,
                "egress, dns, hosts and published ports need network mode \"bridge\": a "
                "loopback-only jail has no route out; set it or remove them");
  return {};
}

}  // namespace policy
