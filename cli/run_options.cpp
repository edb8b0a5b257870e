#include "cli/run_options.hpp"

namespace cli {
namespace {

// Which options to build. While probing it answers no and notes which words the names claim;
// then it answers yes for the names the words name, or for all if a word was left unclaimed.
class OptionFilter {
 public:
  OptionFilter(std::span<const char* const> words, bool all) : all_(all) {
    for (std::string_view w : words) {
      if (w.size() < 2 || w[0] != '-') continue;  // a value, a command word, or "-"
      if (w.starts_with("--")) {
        std::string_view name = w.substr(2);
        name = name.substr(0, name.find('='));
        if (name == "help") all_ = true;
        words_.push_back({name, true, false});
      } else {
        w.remove_prefix(1);  // short flags may be combined (-qB) or carry a value (-B/src)
        if (w.find('h') != w.npos) all_ = true;
        words_.push_back({w, false, false});
      }
    }
  }

  bool operator()(std::string_view names) {
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

  void end_probe() {
    probing_ = false;
    for (auto& w : words_) all_ = all_ || !w.claimed;
  }

 private:
  struct Word {
    std::string_view text;  // without its dashes and any "=value"
    bool is_long, claimed;
  };
  std::vector<Word> words_;
  bool all_, probing_ = true;
};

// A repeatable option: one value each time it is given (-B /a -B /b), as nsjail's are, not every
// word up to the next option, so `stockade run -B /src /bin/ls` runs /bin/ls.
CLI::Option* add_list(CLI::App* run, const char* names, std::vector<std::string>& values,
                      const char* description) {
  return run->add_option(names, values, description)->allow_extra_args(false);
}

// Each option is built only if want(its names); `run` is not touched while want() says no.
void define(CLI::App* run, RunOptions& o, OptionFilter& want) {
  policy::RunFlags& f = o.flags;
  if (want("--user")) run->add_option("--user", f.user, "UID[:GID] inside the jail (default 0:0)");
  if (want("-B,--bind"))
    o.bind_opt = add_list(run, "-B,--bind", o.bind, "SRC[:DST] read-write bind mount")
                     ->type_name("SRC[:DST]");
  if (want("-R,--ro-bind"))
    o.ro_bind_opt = add_list(run, "-R,--ro-bind", o.ro_bind, "SRC[:DST] read-only bind mount")
                        ->type_name("SRC[:DST]");
  if (want("-T,--tmpfs"))
    o.tmpfs_opt = add_list(run, "-T,--tmpfs", o.tmpfs, "DST[:SIZE] a fresh tmpfs (default 64M)")
                      ->type_name("DST[:SIZE]");
  if (want("-c,--chroot"))
    run->add_option("-c,--chroot", f.chroot, "use DIR, read-only, as the jail's root")
        ->type_name("DIR");
  if (want("-D,--cwd"))
    run->add_option("-D,--cwd", f.cwd, "working directory inside the jail (default /)");
  if (want("--cap"))
    add_list(run, "--cap", f.caps, "keep this capability, e.g. NET_BIND_SERVICE (default none)");
  if (want("-E,--env"))
    add_list(run, "-E,--env", f.env, "NAME=VALUE, or NAME to pass the host's value")
        ->type_name("NAME[=VALUE]");
  if (want("-H,--hostname"))
    run->add_option("-H,--hostname", f.hostname, "hostname inside the jail (default stockade)");
  if (want("--rlimit"))
    add_list(run, "--rlimit", f.rlimits,
             "as|core|cpu|data|fsize|memlock|nofile|nproc|stack=N[:HARD]")
        ->type_name("NAME=VALUE");
  if (want("-t,--time-limit"))
    run->add_option("-t,--time-limit", f.time_limit, "kill the whole jail after SECONDS")
        ->type_name("SECONDS");
  if (want("--kill-grace"))
    run->add_option("--kill-grace", f.kill_grace,
                    "after a forwarded SIGTERM, SIGKILL the jail after SECONDS (default 5)")
        ->type_name("SECONDS");
  if (want("--net"))
    run->add_option("--net", f.net,
                    "none | loopback | bridge (default loopback; bridge: a veth on a shared "
                    "bridge, NAT out, egress policy on the host side; needs root)");
  if (want("--bridge"))
    run->add_option("--bridge", f.bridge, "bridge NAME for --net bridge (default stockade0)")
        ->type_name("NAME");
  if (want("--subnet"))
    add_list(run, "--subnet", f.subnets,
             "the bridge's IPv4 or IPv6 network (default 10.231.0.0/16, "
             "fd5e:a7c0:de00::/64)")
        ->type_name("CIDR");
  if (want("--egress"))
    add_list(run, "--egress", f.egress,
             "allow CIDR[,tcp|udp|icmp|any[,PORT[-PORT]]] out, e.g. 203.0.113.0/24,tcp,443")
        ->type_name("RULE");
  if (want("--dns"))
    add_list(run, "--dns", f.dns, "a resolver the jail may query (goes into its resolv.conf)")
        ->type_name("IP");
  if (want("--allow-host"))
    add_list(run, "--allow-host", f.allow_hosts,
             "allow NAME, resolved when the jail starts (pinned in its /etc/hosts)")
        ->type_name("NAME");
  if (want("-p,--publish"))
    add_list(run, "-p,--publish", f.publish, "HOST_PORT:JAIL_PORT[/tcp|udp] published port")
        ->type_name("PORTS");
  if (want("--host-ids"))
    run->add_option("--host-ids", f.host_ids,
                    "START[:COUNT] host uids/gids leased to jails (default 1879048192:65536)");
  if (want("--tmp-size"))
    run->add_option("--tmp-size", f.tmp_size, "size of the jail's /tmp (default 256M)");
  if (want("--memory-max"))
    run->add_option_function<std::string>(
           "--memory-max",
           [&f](const std::string& v) {
             auto b = policy::parse_size(v);
             f.cgroup.memory_bytes = b ? *b : 0;  // 0 is refused with a message by apply_flags
           },
           "hard memory limit of the jail's cgroup, e.g. 512M (swap off; needs root)")
        ->type_name("SIZE");
  if (want("--pids-max"))
    run->add_option_function<std::uint64_t>(
           "--pids-max", [&f](std::uint64_t v) { f.cgroup.pids = v; },
           "most processes and threads in the jail at once (cgroup; as root the default is 4096)")
        ->type_name("N");
  if (want("--cpu-ms-per-sec"))
    run->add_option_function<std::uint64_t>(
           "--cpu-ms-per-sec", [&f](std::uint64_t v) { f.cgroup.cpu_ms_per_sec = v; },
           "CPU time per second of wall time, 1000 = one CPU (cgroup; needs root)")
        ->type_name("MS");
  if (want("--device"))
    add_list(run, "--device", f.devices,
             "expose a host device node at the same path; the device controller allows "
             "exactly it (access letters from rwm, default rw; needs root, cgroup v1)")
        ->type_name("PATH[:rwm]");
  if (want("--cgroup-parent"))
    run->add_option("--cgroup-parent", f.cgroup_parent,
                    "put the jail's cgroup under PARENT/stockade/ID (relative to each cgroup "
                    "root; e.g. a delegated systemd slice)")
        ->type_name("PARENT");
  if (want("--seccomp"))
    run->add_option("--seccomp", f.seccomp,
                    "default | strict | a Docker/OCI profile (FILE.json); default: default");
  if (want("-q,--quiet")) run->add_flag("-q,--quiet", o.quiet, "print only errors");
  if (want("--policy"))
    run->add_option("--policy", o.policy_file,
                    "policy file (TOML, see docs/policy.md); flags override it")
        ->type_name("FILE");
}

}  // namespace

void add_run_options(CLI::App* run, RunOptions& o, std::span<const char* const> words, bool all) {
  OptionFilter want(words, all);
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
