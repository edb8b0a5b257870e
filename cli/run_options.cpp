#include "cli/run_options.hpp"

#include "cli/detail/option_builder.hpp"

namespace cli {
namespace detail {

OptionFilter::OptionFilter(std::span<const char* const> words, bool all) : all_(all) {
  for (std::string_view w : words) {
    if (w.size() < 2 || w[0] != '-') continue;  // a value, a command word, or "-"
    if (asks_for_help(w)) all_ = true;
    if (w.starts_with("--")) {
      std::string_view name = w.substr(2);
      words_.push_back({name.substr(0, name.find('=')), true, false});
    } else {  // short flags may be combined (-qB) or carry a value (-B/src)
      words_.push_back({w.substr(1), false, false});
    }
  }
}

bool OptionFilter::operator()(std::string_view names) {
  bool named = false;
  for (auto& w : words_) {
    for (std::string_view rest = names; !rest.empty();) {
      std::string_view n = rest.substr(0, rest.find(','));
      rest.remove_prefix(std::min(rest.size(), n.size() + 1));
      if (n.starts_with("--")
              ? w.is_long && w.text == n.substr(2)
              : !w.is_long && n.size() == 2 && w.text.find(n[1]) != std::string_view::npos) {
        named = true;
        // A short word is an option's only if its first letter is one; the rest may be a value.
        if (w.is_long || w.text[0] == n[1]) w.claimed = true;
      }
    }
  }
  return !probing_ && (all_ || named);
}

void OptionFilter::end_probe() {
  probing_ = false;
  for (auto& w : words_) all_ = all_ || !w.claimed;
}

}  // namespace detail

namespace {

// Each option is declared once; the builder adds it to `run` only if the filter wants it.
void define(CLI::App* run, RunOptions& o, detail::OptionFilter& want) {
  policy::RunFlags& f = o.flags;
  detail::Builder b(run, want);
  b.value("--user", f.user, "UID[:GID] inside the jail (default 0:0)");
  o.bind_opt = b.list("-B,--bind", o.bind, "SRC[:DST] read-write bind mount", "SRC[:DST]");
  o.ro_bind_opt = b.list("-R,--ro-bind", o.ro_bind, "SRC[:DST] read-only bind mount", "SRC[:DST]");
  o.tmpfs_opt =
      b.list("-T,--tmpfs", o.tmpfs, "DST[:SIZE] a fresh tmpfs (default 64M)", "DST[:SIZE]");
  b.value("-c,--chroot", f.chroot, "use DIR, read-only, as the jail's root", "DIR");
  b.value("-D,--cwd", f.cwd, "working directory inside the jail (default /)");
  b.list("--cap", f.caps, "keep this capability, e.g. NET_BIND_SERVICE (default none)");
  b.list("-E,--env", f.env, "NAME=VALUE, or NAME to pass the host's value", "NAME[=VALUE]");
  b.value("-H,--hostname", f.hostname, "hostname inside the jail (default stockade)");
  b.list("--rlimit", f.rlimits, "as|core|cpu|data|fsize|memlock|nofile|nproc|stack=N[:HARD]",
         "NAME=VALUE");
  b.value("-t,--time-limit", f.time_limit, "kill the whole jail after SECONDS", "SECONDS");
  b.value("--kill-grace", f.kill_grace,
          "after a forwarded SIGTERM, SIGKILL the jail after SECONDS (default 5)", "SECONDS");
  b.value("--net", f.net,
          "none | loopback | bridge (default loopback; bridge: a veth on a shared bridge, NAT "
          "out, egress policy on the host side; needs root)");
  b.value("--bridge", f.bridge, "bridge NAME for --net bridge (default stockade0)", "NAME");
  b.list("--subnet", f.subnets,
         "the bridge's IPv4 or IPv6 network (default 10.231.0.0/16, fd5e:a7c0:de00::/64)", "CIDR");
  b.list("--egress", f.egress,
         "allow CIDR[,tcp|udp|icmp|any[,PORT[-PORT]]] out, e.g. 203.0.113.0/24,tcp,443", "RULE");
  b.list("--dns", f.dns, "a resolver the jail may query (goes into its resolv.conf)", "IP");
  b.list("--allow-host", f.allow_hosts,
         "allow NAME, resolved when the jail starts (pinned in its /etc/hosts)", "NAME");
  b.list("-p,--publish", f.publish, "HOST_PORT:JAIL_PORT[/tcp|udp] published port", "PORTS");
  b.value("--host-ids", f.host_ids,
          "START[:COUNT] host uids/gids leased to jails (default 1879048192:65536)");
  b.value("--tmp-size", f.tmp_size, "size of the jail's /tmp (default 256M)");
  b.function<std::string>(
      "--memory-max",
      [&f](const std::string& v) {
        auto bytes = policy::parse_size(v);
        f.cgroup.memory_bytes = bytes ? *bytes : 0;  // 0 is refused with a message by apply_flags
      },
      "hard memory limit of the jail's cgroup, e.g. 512M (swap off; needs root)", "SIZE");
  b.function<std::uint64_t>(
      "--pids-max", [&f](std::uint64_t v) { f.cgroup.pids = v; },
      "most processes and threads in the jail at once (cgroup; as root the default is 4096)", "N");
  b.function<std::uint64_t>(
      "--cpu-ms-per-sec", [&f](std::uint64_t v) { f.cgroup.cpu_ms_per_sec = v; },
      "CPU time per second of wall time, 1000 = one CPU (cgroup; needs root)", "MS");
  b.list("--device", f.devices,
         "expose a host device node at the same path; the device controller allows exactly it "
         "(access letters from rwm, default rw; needs root, cgroup v1)",
         "PATH[:rwm]");
  b.value("--cgroup-parent", f.cgroup_parent,
          "put the jail's cgroup under PARENT/stockade/ID (relative to each cgroup root; e.g. a "
          "delegated systemd slice)",
          "PARENT");
  b.value("--seccomp", f.seccomp,
          "default | strict | a Docker/OCI profile (FILE.json); default: default");
  b.flag("-q,--quiet", o.quiet, "print only errors");
  b.value("--policy", o.policy_file, "policy file (TOML, see docs/policy.md); flags override it",
          "FILE");
  define_nsjail_flags(b, o.nsjail);
}

}  // namespace

bool asks_for_help(std::string_view w) {
  if (w.starts_with("--")) return w == "--help" || w.starts_with("--help=");
  return w.size() > 1 && w[0] == '-' && w.find('h') != std::string_view::npos;
}

void add_run_options(CLI::App* run, RunOptions& o, std::span<const char* const> words, bool all) {
  detail::OptionFilter want(words, all);
  define(nullptr, o, want);
  want.end_probe();
  define(run, o, want);
}

// Later mounts land on earlier ones, so their order is the user's, not the option kind's.
void finish_run_options(const CLI::App* run, RunOptions& o) {
  using Kind = policy::RunFlags::MountFlag;
  size_t next_bind = 0, next_ro = 0, next_tmpfs = 0;
  for (const CLI::Option* opt : run->parse_order()) {
    if (opt == o.bind_opt && next_bind < o.bind.size())
      o.flags.mounts.emplace_back(Kind::kBind, o.bind[next_bind++]);
    else if (opt == o.ro_bind_opt && next_ro < o.ro_bind.size())
      o.flags.mounts.emplace_back(Kind::kRoBind, o.ro_bind[next_ro++]);
    else if (opt == o.tmpfs_opt && next_tmpfs < o.tmpfs.size())
      o.flags.mounts.emplace_back(Kind::kTmpfs, o.tmpfs[next_tmpfs++]);
  }
}

}  // namespace cli
