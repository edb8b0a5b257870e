// make_spec: command-line values -> a validated JailSpec.
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
    if (*f.net == "none" || *f.net == "loopback") {
      spec.net = *f.net == "none" ? NetMode::kNone : NetMode::kLoopback;
      spec.network.bridge = false;
    } else if (*f.net == "bridge")
      return fail(0,
                  "--net 'bridge': not supported yet (bridged networking comes with netjail); "
                  "use none or loopback");
    else
      return fail(0, "--net '{}': use none or loopback", *f.net);
  }
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
  if (spec.network.bridge)
    return fail(0,
                "network mode 'bridge' is not supported yet (bridged networking comes with "
                "netjail); use none or loopback (or run 'stockade check' to validate the policy "
                "only)");
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
  if (spec.network.any())
    return fail(0,
                "an egress policy (egress, hosts, dns, publish) is not supported yet: it needs "
                "bridged networking; remove it (or run 'stockade check' to validate the policy "
                "only)");
  return {};
}

}  // namespace policy
