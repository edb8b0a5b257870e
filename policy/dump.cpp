// to_toml / to_json: the effective policy, for `stockade check` and for people reviewing it.
#include <sha2.h>
#include <sys/resource.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "policy/detail/parse.hpp"
#include "policy/spec.hpp"

namespace policy {
namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string quote_all(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + quote(s);
  return "[" + out + "]";
}

// 268435456 -> "256M": the largest suffix that divides exactly.
std::string size_text(std::uint64_t n) {
  static const std::pair<char, int> kUnits[] = {{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}};
  for (auto [unit, shift] : kUnits)
    if (n != 0 && n % (1ull << shift) == 0) return fmt::format("{}{}", n >> shift, unit);
  return std::to_string(n);
}

std::string limit_text(int resource, std::uint64_t v) {
  if (v == RLIM_INFINITY) return "\"inf\"";
  if (detail::rlimit_in_bytes(resource)) return quote(size_text(v));
  return std::to_string(v);
}

const char* action_name(SeccompAction a) {
  switch (a) {
    case SeccompAction::kAllow:
      return "allow";
    case SeccompAction::kErrno:
      return "errno";
    case SeccompAction::kKill:
      return "kill";
    case SeccompAction::kLog:
      return "log";
  }
  return "errno";
}

const char* op_name(SyscallArg::Op op) {
  switch (op) {
    case SyscallArg::Op::kEq:
      return "eq";
    case SyscallArg::Op::kNe:
      return "ne";
    case SyscallArg::Op::kLt:
      return "lt";
    case SyscallArg::Op::kLe:
      return "le";
    case SyscallArg::Op::kGt:
      return "gt";
    case SyscallArg::Op::kGe:
      return "ge";
    case SyscallArg::Op::kMaskedEq:
      return "masked_eq";
  }
  return "eq";
}

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : std::to_string(e);
}

const char* mode_name(const JailSpec& s) {
  if (s.net == NetMode::kBridge) return "bridge";
  return s.net == NetMode::kNone ? "none" : "loopback";
}

std::string ports_text(const EgressRule& r) {
  if (r.port_first == r.port_last) return quote(std::to_string(r.port_first));
  return quote(fmt::format("{}-{}", r.port_first, r.port_last));
}

bool all_ports(const EgressRule& r) { return r.port_first == 0 && r.port_last == 65535; }

}  // namespace

std::string to_toml(const JailSpec& s) {
  std::string o = "# The effective policy: includes applied, defaults filled in.\n\n[process]\n";
  if (!s.argv.empty()) o += fmt::format("command = {}\n", quote_all(s.argv));
  o += fmt::format("user = {}\ngroup = {}\ncwd = {}\nhostname = {}\n", s.uid, s.gid, quote(s.cwd),
                   quote(s.hostname));
  o += fmt::format("time_limit = {}  # seconds, 0: none\nkill_grace = {}\n", s.time_limit,
                   s.kill_grace);
  o += "\n[process.env]\n";
  for (const auto& e : s.env) {
    auto eq = e.find('=');
    o += fmt::format("{} = {}\n", e.substr(0, eq),
                     quote(eq == std::string::npos ? "" : e.substr(eq + 1)));
  }

  o += "\n[filesystem]\n";
  if (s.chroot) o += fmt::format("chroot = {}\n", quote(*s.chroot));
  o += fmt::format("tmp_size = {}\n", quote(size_text(s.tmp_size)));
  if (!s.devices.empty()) {
    std::vector<std::string> devs;
    for (const auto& d : s.devices) devs.push_back(d.path + ":" + d.access);
    o += fmt::format("devices = {}\n", quote_all(devs));
  }
  for (const auto& m : s.mounts) {
    o += "\n[[filesystem.mount]]\n";
    if (m.kind == Mount::Kind::kTmpfs) {
      o += fmt::format("type = \"tmpfs\"\ndst = {}\nsize = {}\n", quote(m.dst),
                       quote(size_text(m.size)));
    } else {
      o += fmt::format("type = {}\nsrc = {}\ndst = {}\n", m.read_only ? "\"ro-bind\"" : "\"bind\"",
                       quote(m.src), quote(m.dst));
    }
  }

  std::vector<std::string> caps;
  for (int c : s.caps) caps.push_back(detail::cap_display_name(c));
  o += fmt::format("\n[capabilities]\nallow = {}\n", quote_all(caps));

  o += fmt::format("\n[seccomp]\nprofile = {}\n", quote(s.seccomp.profile));
  for (const auto& r : s.seccomp.rules) {
    o += fmt::format("\n[[seccomp.rule]]\nsyscall = {}\naction = \"{}\"\n", quote(r.syscall),
                     action_name(r.action));
    if (r.action == SeccompAction::kErrno)
      o += fmt::format("errno = {}\n", quote(errno_name(r.errno_value)));
    if (!r.args.empty()) {
      std::string args;
      for (const auto& a : r.args) {
        args += args.empty() ? "" : ", ";
        args +=
            fmt::format("{{ index = {}, op = \"{}\", value = {}", a.index, op_name(a.op), a.value);
        if (a.op == SyscallArg::Op::kMaskedEq) args += fmt::format(", mask = {:#x}", a.mask);
        args += " }";
      }
      o += fmt::format("args = [{}]\n", args);
    }
  }

  o += "\n[limits]\n";
  for (const auto& r : s.rlimits) {
    std::string name = detail::rlimit_name(r.resource);
    if (r.soft == r.hard)
      o += fmt::format("{} = {}\n", name, limit_text(r.resource, r.soft));
    else
      o += fmt::format("{} = {{ soft = {}, hard = {} }}\n", name, limit_text(r.resource, r.soft),
                       limit_text(r.resource, r.hard));
  }

  if (s.cgroup.any()) {
    o += "\n[cgroup]\n";
    if (s.cgroup.memory_bytes)
      o += fmt::format("memory = {}\n", quote(size_text(*s.cgroup.memory_bytes)));
    if (s.cgroup.pids) o += fmt::format("pids = {}\n", *s.cgroup.pids);
    if (s.cgroup.cpu_ms_per_sec)
      o += fmt::format("cpu_ms_per_sec = {}\n", *s.cgroup.cpu_ms_per_sec);
  }

  const NetworkPolicy& n = s.network;
  o += fmt::format("\n[network]\nmode = \"{}\"\n", mode_name(s));
  if (s.net == NetMode::kBridge)
    o += fmt::format("bridge = {}\nsubnet4 = {}\nsubnet6 = {}\n", quote(n.bridge), quote(n.subnet4),
                     quote(n.subnet6));
  if (!n.dns.empty()) o += fmt::format("dns = {}\n", quote_all(n.dns));
  if (!n.hosts.empty()) o += fmt::format("hosts = {}\n", quote_all(n.hosts));
  for (const auto& r : n.egress) {
    o +=
        fmt::format("\n[[network.egress]]\ncidr = {}\nproto = {}\n", quote(r.cidr), quote(r.proto));
    if (!all_ports(r)) o += fmt::format("ports = {}\n", ports_text(r));
  }
  for (const auto& p : n.publish)
    o += fmt::format("\n[[network.publish]]\nhost_port = {}\njail_port = {}\nproto = {}\n",
                     p.host_port, p.jail_port, quote(p.proto));
  return o;
}

namespace {

// The effective policy as JSON: to_json prints it, digest hashes it.
nlohmann::json spec_json(const JailSpec& s) {
  using nlohmann::json;
  json j;
  j["process"] = {{"command", s.argv},
                  {"user", s.uid},
                  {"group", s.gid},
                  {"cwd", s.cwd},
                  {"hostname", s.hostname},
                  {"env", s.env},
                  {"time_limit", s.time_limit},
                  {"kill_grace", s.kill_grace}};
  json mounts = json::array();
  for (const auto& m : s.mounts) {
    json jm;
    if (m.kind == Mount::Kind::kTmpfs) {
      jm = {{"type", "tmpfs"}, {"dst", m.dst}, {"size", m.size}};
    } else {
      jm = {{"type", m.read_only ? "ro-bind" : "bind"}, {"src", m.src}, {"dst", m.dst}};
    }
    mounts.push_back(jm);
  }
  j["filesystem"] = {{"chroot", s.chroot ? json(*s.chroot) : json(nullptr)},
                     {"tmp_size", s.tmp_size},
                     {"mount", mounts}};
  json devices = json::array();
  for (const auto& d : s.devices) devices.push_back({{"path", d.path}, {"access", d.access}});
  j["filesystem"]["devices"] = devices;
  std::vector<std::string> caps;
  for (int c : s.caps) caps.push_back(detail::cap_display_name(c));
  j["capabilities"] = {{"allow", caps}};
  json rules = json::array();
  for (const auto& r : s.seccomp.rules) {
    json args = json::array();
    for (const auto& a : r.args) {
      json ja = {{"index", a.index}, {"op", op_name(a.op)}, {"value", a.value}};
      if (a.op == SyscallArg::Op::kMaskedEq) ja["mask"] = a.mask;
      args.push_back(ja);
    }
    json jr = {{"syscall", r.syscall}, {"action", action_name(r.action)}, {"args", args}};
    if (r.action == SeccompAction::kErrno) jr["errno"] = errno_name(r.errno_value);
    rules.push_back(jr);
  }
  j["seccomp"] = {{"profile", s.seccomp.profile}, {"rule", rules}};
  json limits = json::object();
  for (const auto& r : s.rlimits) {
    auto v = [](std::uint64_t x) { return x == RLIM_INFINITY ? json("inf") : json(x); };
    limits[detail::rlimit_name(r.resource)] = {{"soft", v(r.soft)}, {"hard", v(r.hard)}};
  }
  j["limits"] = limits;
  auto opt = [](const std::optional<std::uint64_t>& x) { return x ? json(*x) : json(nullptr); };
  j["cgroup"] = {{"memory", opt(s.cgroup.memory_bytes)},
                 {"pids", opt(s.cgroup.pids)},
                 {"cpu_ms_per_sec", opt(s.cgroup.cpu_ms_per_sec)}};
  json egress = json::array();
  for (const auto& r : s.network.egress)
    egress.push_back({{"cidr", r.cidr},
                      {"proto", r.proto},
                      {"port_first", r.port_first},
                      {"port_last", r.port_last}});
  json publish = json::array();
  for (const auto& p : s.network.publish)
    publish.push_back({{"host_port", p.host_port}, {"jail_port", p.jail_port}, {"proto", p.proto}});
  j["network"] = {{"mode", mode_name(s)},
                  {"bridge", s.network.bridge},
                  {"subnet4", s.network.subnet4},
                  {"subnet6", s.network.subnet6},
                  {"dns", s.network.dns},
                  {"hosts", s.network.hosts},
                  {"egress", egress},
                  {"publish", publish}};
  j["host_ids"] = {{"first", s.host_ids.first}, {"count", s.host_ids.count}};
  return j;
}

}  // namespace

std::string to_json(const JailSpec& s) { return spec_json(s).dump(2) + "\n"; }

// Hashed with libmd, which has no start-up work: nettle's CPU-dispatch constructor ran CPUID
// several times in every stockade process, ~50 µs on the test VM, where each CPUID is 7.5 µs.
std::string digest(const JailSpec& spec) {
  auto j = spec_json(spec);
  j["process"].erase("command");
  std::string text = j.dump();
  SHA2_CTX ctx;
  SHA256Init(&ctx);
  SHA256Update(&ctx, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  std::uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256Final(d, &ctx);
  std::string out = "sha256:";
  for (std::uint8_t b : d) out += fmt::format("{:02x}", b);
  return out;
}

}  // namespace policy
