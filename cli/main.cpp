// The command-line layer: parses arguments, calls the modules, logs each error once.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "audit/audit.hpp"
#include "cgroup/cgroup.hpp"
#include "cli/diagnose.hpp"
#include "cli/run_options.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
#include "netjail/netjail.hpp"
#include "policy/spec.hpp"
#include "supervisor/supervisor.hpp"

namespace {

namespace log = common::log;
namespace registry = common::registry;

constexpr int kExitUsage = 2;
constexpr int kExitSetup = 125;

// A closed stdin/stdout/stderr would let the next open() take its number.
void ensure_stdio() {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    int n = ::open("/dev/null", O_RDWR);
    if (n >= 0 && n != fd) {
      ::dup2(n, fd);
      ::close(n);
    }
  }
}

// NAT out needs forwarding on the host's uplink; stockade turns it on only on its own bridge.
void warn_if_not_forwarding() {
  char c = '1';
  int fd = ::open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (::read(fd, &c, 1) != 1) c = '1';
    ::close(fd);
  }
  if (c == '0')
    log::debug(
        "net.ipv4.ip_forward is 0: the jail reaches the host's other networks only through "
        "interfaces with forwarding on; stockade leaves host-wide sysctls alone");
}

int cmd_run(policy::RunFlags f, const std::vector<std::string>& rest,
            const std::string& policy_file) {
  f.command = rest;
  // Flags land on the policy file's spec, or on the defaults: one validation path either way.
  auto base = policy_file.empty() ? common::Result<policy::JailSpec>(policy::default_spec())
                                  : policy::load_policy(policy_file);
  if (!base) {
    log::error("{}", base.error().message());
    return kExitUsage;
  }
  auto spec = policy::apply_flags(std::move(*base), f);
  if (!spec) {
    log::error("{}", spec.error().message());
    return kExitUsage;
  }
  for (const auto& w : spec->seccomp.import_warnings) log::warn("{}", w);
  if (auto ok = policy::check_enforceable(*spec); !ok) {
    log::error("{}", ok.error().message());
    return kExitUsage;
  }
  if (::geteuid() != 0)
    log::info(
        "running without root: the jail maps to your own uid (no host uid lease), has no cgroup "
        "(no pids limit but RLIMIT_NPROC over all your processes) and only --net "
        "none|loopback is available");
  if (spec->net == policy::NetMode::kBridge) warn_if_not_forwarding();
  auto outcome = supervisor::run(*spec);
  if (!outcome) {
    log::error("{}", outcome.error().message());
    return kExitSetup;
  }
  if (!outcome->note.empty()) log::error("{}", outcome->note);
  return outcome->exit_code;
}

int cmd_exec(const std::string& id, std::vector<std::string> rest,
             const std::vector<std::string>& command) {
  rest.insert(rest.end(), command.begin(), command.end());
  if (rest.empty()) {
    log::error("exec: no command; usage: stockade exec ID -- CMD [ARGS...]");
    return kExitUsage;
  }
  auto outcome = supervisor::exec(id, rest);
  if (!outcome) {
    log::error("{}", outcome.error().message());
    return kExitSetup;
  }
  if (!outcome->note.empty()) log::error("{}", outcome->note);
  return outcome->exit_code;
}

// Prints the effective policy (or why it is refused). Validation only: nothing is enforced, so
// what this build cannot enforce yet (cgroup limits, egress) is accepted here.
int cmd_check(const std::string& file, bool json) {
  auto spec = policy::load_policy(file);
  if (!spec) {
    log::error("{}", spec.error().message());
    return kExitUsage;
  }
  for (const auto& w : spec->seccomp.import_warnings) log::warn("{}", w);
  fmt::print("{}", json ? policy::to_json(*spec) : policy::to_toml(*spec));
  return 0;
}

std::string uptime(std::int64_t started_ms) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto s = std::max<std::int64_t>(0, (now - started_ms) / 1000);
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  return fmt::format("{}h", s / 3600);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string bytes_text(std::optional<std::uint64_t> b) {
  if (!b) return "-";
  if (*b >= (1ull << 30)) return fmt::format("{:.1f}G", static_cast<double>(*b) / (1ull << 30));
  if (*b >= (1ull << 20)) return fmt::format("{:.1f}M", static_cast<double>(*b) / (1ull << 20));
  return fmt::format("{}K", *b >> 10);
}

// A v1 "no limit" reads as a huge number; v2 writes "max" (read as unset).
nlohmann::json limit_json(std::optional<std::uint64_t> v) {
  if (!v || *v >= (1ull << 62)) return nullptr;
  return *v;
}

nlohmann::json usage_json(const registry::JailRecord& r) {
  if (r.cgroups.empty()) return nullptr;
  auto u = cgroup::read_usage(r.cgroups);
  auto opt = [](std::optional<std::uint64_t> v) { return v ? nlohmann::json(*v) : nullptr; };
  return {{"memory_current_bytes", opt(u.memory_current)},
          {"memory_peak_bytes", opt(u.memory_peak)},
          {"memory_max_bytes", limit_json(u.memory_max)},
          {"pids_current", opt(u.pids_current)},
          {"pids_max", limit_json(u.pids_max)},
          {"cpu_usage_usec", opt(u.cpu_usage_us)},
          {"oom_kills", opt(u.oom_kills)}};
}

// "3 (last: Critical 'Stockade setns into a foreign namespace')", or "none raised".
std::string alerts_text(const nlohmann::json& tally) {
  if (!tally.is_object() || tally.value("count", 0) == 0)
    return "none raised (while stockade watch runs)";
  auto last = tally.value("last", nlohmann::json::object());
  return fmt::format("{} (last: {} '{}')", tally.value("count", 0), last.value("priority", "?"),
                     last.value("rule", "?"));
}

int cmd_ps(bool json) {
  auto dir = registry::default_dir();
  auto recs = dir.empty() ? std::vector<registry::JailRecord>{} : registry::list(dir);
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& r : recs) {
      auto j = nlohmann::json::parse(registry::to_json(r));
      j["state"] = registry::supervisor_alive(r) ? "running" : "stale";
      j["usage"] = usage_json(r);
      auto tally = registry::read_alert_tally(dir, r.id);
      j["alerts"] = tally.is_object() ? tally : nlohmann::json{{"count", 0}};
      arr.push_back(j);
    }
    fmt::print("{}\n", arr.dump(2));
    return 0;
  }
  fmt::print("{:<12}  {:>8}  {:>10}  {:>7}  {:<8}  {:>8}  {:>5}  {:>6}  {}\n", "ID", "PID",
             "HOST-UID", "UPTIME", "STATE", "MEM", "PIDS", "ALERTS", "COMMAND");
  for (auto& r : recs) {
    auto u = cgroup::read_usage(r.cgroups);
    auto tally = registry::read_alert_tally(dir, r.id);
    fmt::print("{:<12}  {:>8}  {:>10}  {:>7}  {:<8}  {:>8}  {:>5}  {:>6}  {}\n", r.id, r.init_pid,
               r.host_uid, uptime(r.started_unix_ms),
               registry::supervisor_alive(r) ? "running" : "stale", bytes_text(u.memory_current),
               u.pids_current ? std::to_string(*u.pids_current) : "-",
               tally.is_object() ? tally.value("count", 0) : 0, join(r.command));
  }
  return 0;
}

int cmd_inspect(const std::string& id, bool json) {
  auto dir = registry::default_dir();
  auto rec = registry::read(dir, id);
  if (!rec) {
    log::error("inspect: {}", rec.error().message());
    return 1;
  }
  auto j = nlohmann::json::parse(registry::to_json(*rec));
  j["state"] = registry::supervisor_alive(*rec) ? "running" : "stale";
  j["usage"] = usage_json(*rec);
  auto tally = registry::read_alert_tally(dir, rec->id);
  j["alerts"] = tally.is_object() ? tally : nlohmann::json{{"count", 0}};
  std::vector<netjail::Counter> counters;
  if (rec->net == "bridge") {
    if (auto c = netjail::counters(rec->id)) counters = *c;
    nlohmann::json arr = nlohmann::json::array();
    for (auto& x : counters)
      arr.push_back({{"rule", x.rule}, {"packets", x.packets}, {"bytes", x.bytes}});
    j["network"]["egress_counters"] = arr;
  }
  if (json) {
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  const auto& r = *rec;
  auto row = [](const char* k, const std::string& v) { fmt::print("{:<16} {}\n", k, v); };
  row("id", r.id);
  row("state", j["state"].get<std::string>());
  row("command", join(r.command));
  row("supervisor pid", std::to_string(r.supervisor_pid));
  row("init pid", std::to_string(r.init_pid));
  row("host uid/gid", fmt::format("{}/{}", r.host_uid, r.host_gid));
  row("uid/gid inside", fmt::format("{}/{}", r.uid, r.gid));
  row("hostname", r.hostname);
  row("net", r.net);
  if (r.net == "bridge") {
    row("bridge", fmt::format("{} (veth {}, mark {:#x})", r.bridge, r.veth, r.mark));
    row("addresses", fmt::format("{} {}", r.ipv4, r.ipv6));
    for (auto& c : counters)
      row(c.rule == counters.front().rule ? "egress" : "",
          fmt::format("{:>10} packets {:>12} bytes  {}", c.packets, c.bytes, c.rule));
  }
  row("alerts", alerts_text(tally));
  if (tally.is_object() && tally.contains("by_rule") && tally["by_rule"].is_object()) {
    const nlohmann::json& by_rule = tally["by_rule"];
    for (auto it = by_rule.begin(); it != by_rule.end(); ++it)
      row("", fmt::format("{:>6}  {}", it.value().get<std::uint64_t>(), it.key()));
  }
  row("uptime", uptime(r.started_unix_ms));
  row("policy digest", r.policy_digest.empty() ? "-" : r.policy_digest);
  std::string ns;
  for (auto& [k, v] : r.namespaces) ns += fmt::format("{}{}:{}", ns.empty() ? "" : " ", k, v);
  row("namespaces", ns);
  row("cgroup", r.cgroups.empty() ? "none" : r.cgroup_version);
  for (auto& d : r.cgroups) row("", d);
  if (!r.cgroups.empty()) {
    auto u = cgroup::read_usage(r.cgroups);
    auto lim = [](std::optional<std::uint64_t> v, bool bytes) -> std::string {
      if (!v || *v >= (1ull << 62)) return "no limit";
      return bytes ? bytes_text(v) : std::to_string(*v);
    };
    if (u.memory_current)
      row("memory", fmt::format("{} (peak {}, limit {})", bytes_text(u.memory_current),
                                bytes_text(u.memory_peak), lim(u.memory_max, true)));
    if (u.pids_current)
      row("pids", fmt::format("{} (limit {})", *u.pids_current, lim(u.pids_max, false)));
    if (u.cpu_usage_us) row("cpu", fmt::format("{:.3f}s", *u.cpu_usage_us / 1e6));
    if (u.oom_kills) row("oom kills", std::to_string(*u.oom_kills));
  }
  return 0;
}

// netjail's leftovers as gc objects: data flows supervisor -> netjail, so the CLI joins them.
supervisor::GcReconciler network_reconciler() {
  return [](const supervisor::GcOptions&) {
    std::vector<supervisor::GcObject> out;
    for (auto& l : netjail::leftovers()) out.push_back({l.kind, l.jail_id, l.name, l.remove});
    return out;
  };
}

int cmd_gc(const supervisor::GcOptions& options, bool json, bool bridges,
           const std::string& only_bridge) {
  auto result = supervisor::gc(options, {network_reconciler()});
  if (!result) {
    log::error("{}", result.error().message());
    return 1;
  }
  const char* verb = options.dry_run ? "would remove" : "removed";
  std::vector<std::string> idle;
  if (bridges || !only_bridge.empty()) {
    auto r = netjail::remove_idle_bridges({options.dry_run, only_bridge});
    if (!r) {
      log::error("gc: {}", r.error().message());
      return 1;
    }
    idle = *r;
  }
  if (json) {
    nlohmann::json out = {{"dry_run", options.dry_run},
                          {"removed", nlohmann::json::array()},
                          {"failed", nlohmann::json::array()},
                          {"live", result->live},
                          {"bridges", idle}};
    for (auto& o : result->removed)
      out["removed"].push_back({{"kind", o.kind}, {"jail", o.jail_id}, {"name", o.name}});
    for (auto& [o, e] : result->failed)
      out["failed"].push_back(
          {{"kind", o.kind}, {"jail", o.jail_id}, {"name", o.name}, {"error", e.message()}});
    fmt::print("{}\n", out.dump(2));
  } else {
    for (auto& o : result->removed)
      fmt::print("{} {} '{}'{}\n", verb, o.kind, o.name,
                 o.jail_id.empty() ? "" : fmt::format(" (jail {})", o.jail_id));
    for (auto& [o, e] : result->failed) log::error("gc: {} '{}': {}", o.kind, o.name, e.message());
    for (auto& line : idle) fmt::print("{} {}\n", verb, line);
    if (result->removed.empty() && result->failed.empty() && idle.empty())
      log::info("gc: nothing to remove ({} running jail{})", result->live.size(),
                result->live.size() == 1 ? "" : "s");
  }
  return result->failed.empty() ? 0 : 1;
}

// "START[:COUNT]" of the jails' audit ids (= their host uids).
bool parse_id_range(const std::string& s, audit::IdRange& r) {
  if (s.empty()) return true;
  unsigned long first = 0, count = r.count;
  char extra = 0;
  int n = std::sscanf(s.c_str(), "%lu:%lu%c", &first, &count, &extra);
  if (n < 1 || n > 2 || count == 0 || first + count > 4294967295UL) return false;
  r.first = static_cast<std::uint32_t>(first);
  r.count = static_cast<std::uint32_t>(count);
  return true;
}

int cmd_watch(audit::WatchOptions& o, const std::string& ids) {
  if (!parse_id_range(ids, o.range)) {
    log::error("watch: '{}' is not START[:COUNT]", ids);
    return kExitUsage;
  }
  if (o.registry_dir.empty()) o.registry_dir = registry::default_dir();
  auto sum = audit::watch(o);
  if (!sum) {
    log::error("watch: {}", sum.error().message());
    return 1;
  }
  if (o.replay.empty())
    log::info(
        "watch: {} records received, {} events, {} alerts in {:.1f}s; {} missed "
        "(socket overflows), {} lost by the kernel; rules removed{}",
        sum->received, sum->engine.events, sum->engine.alerts, sum->seconds, sum->enobufs,
        sum->kernel_lost, sum->enabled_audit ? ", audit switched off again" : "");
  else
    log::info("watch: replayed {} records ({} unreadable), {} events, {} alerts in {:.3f}s",
              sum->engine.records, sum->engine.malformed, sum->engine.events, sum->engine.alerts,
              sum->seconds);
  return 0;
}

int cmd_alerts(audit::ReviewOptions& o, const std::string& since) {
  if (!since.empty()) {
    auto d = audit::parse_duration(since);
    if (!d) {
      log::error("alerts: {}", d.error().message());
      return kExitUsage;
    }
    o.since_s = *d;
  }
  if (auto r = audit::review(o, stdout); !r) {
    log::error("alerts: {}", r.error().message());
    return 1;
  }
  return 0;
}

// Where the subcommand the command line names is: its first word that is not an option (or the
// value of --log-format), if that is one of ours; 0 otherwise.
int subcommand_at(int argc, const char* const* argv) {
  static constexpr std::string_view kNames[] = {"run",  "check", "ps",    "inspect", "diagnose",
                                                "exec", "gc",    "watch", "alerts"};
  for (int i = 1; i < argc; ++i) {
    std::string_view w = argv[i];
    if (w == "--log-format") {
      ++i;
      continue;
    }
    if (w.starts_with("-")) continue;
    for (auto name : kNames)
      if (w == name) return i;
    return 0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_stdio();
  CLI::App app{"stockade: run untrusted programs in least-privilege Linux jails"};
  app.require_subcommand(1);
  std::string log_format = "text";
  bool verbose = false;
  app.add_option("--log-format", log_format, "text | json")->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-v,--verbose", verbose, "debug output");

  // Everything after the first "--" is the workload's command line, never our options.
  int n = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      n = i;
      break;
    }
  // Only the subcommand the command line names gets its options, and only the subcommands it
  // has as words are built (all when it names none or asks for help, so that help lists them):
  // building ~100 options is a launch's 0.4 ms, the other eight subcommands 0.05 ms. CLI11 only
  // matches a word to a subcommand or option that word names, so it parses the same.
  const int at = subcommand_at(n, argv);
  const std::string_view chosen = at ? argv[at] : "";
  auto wanted = [&](std::string_view name) { return chosen.empty() || chosen == name; };
  // Help asked of the main command (before the subcommand; after it, the subcommand's own).
  const bool help = std::any_of(argv + 1, argv + (at ? at : n), cli::asks_for_help);
  auto subcommand = [&](const char* name, const char* description) -> CLI::App* {
    bool named = std::any_of(argv + 1, argv + n, [&](std::string_view w) { return w == name; });
    return chosen.empty() || help || named ? app.add_subcommand(name, description) : nullptr;
  };
  auto parsed = [](const CLI::App* sub) { return sub != nullptr && sub->parsed(); };

  cli::RunOptions run_options;
  auto* run = subcommand("run", "run CMD in a new jail: stockade run [OPTIONS] -- CMD [ARGS...]");
  if (run && wanted("run")) {
    // Only the options the command line names, as for the subcommands (see run_options.hpp).
    // Help asked before "run" is run's help too: all of them then.
    add_run_options(run, run_options, std::span<const char* const>(argv + at + 1, argv + n),
                    chosen.empty() || help);
    run->prefix_command();
    run->footer(
        "Exit status: the workload's own, 128+N if it was killed by signal N, 125 if the sandbox\n"
        "could not be set up, 126 if the command cannot be executed, 127 if it is not found,\n"
        "2 for bad options.");
  }

  std::string check_file;
  bool check_json = false;
  auto* check = subcommand("check", "validate a policy file and print the effective policy");
  if (check && wanted("check")) {
    check->add_option("FILE", check_file, "policy file (TOML)")->required();
    check->add_flag("--json", check_json, "print JSON instead of TOML");
  }

  bool ps_json = false;
  auto* ps = subcommand("ps", "list running jails");
  if (ps && wanted("ps")) {
    ps->add_flag("--json", ps_json, "machine-readable output");
  }

  std::string inspect_id;
  bool inspect_json = false;
  auto* inspect = subcommand(
      "inspect",
      "show a jail: its registry entry, live cgroup usage and egress counters (--json: JSON)");
  if (inspect && wanted("inspect")) {
    inspect->add_option("ID", inspect_id, "jail id (see stockade ps)")->required();
    inspect->add_flag("--json", inspect_json, "machine-readable output (JSON)");
  }

  std::string diagnose_id, diagnose_target;
  bool diagnose_json = false;
  auto* diagnose = subcommand(
      "diagnose",
      "why can't my jail reach X? walks the jail's network layers from the inside out and stops "
      "at the first that fails, with a hint");
  if (diagnose && wanted("diagnose")) {
    diagnose->add_option("ID", diagnose_id, "jail id (see stockade ps)")->required();
    diagnose->add_option("TARGET", diagnose_target,
                         "HOST[:PORT] to try from inside the jail (a name, an address, [v6]:port)");
    diagnose->add_flag("--json", diagnose_json, "machine-readable output");
    diagnose->footer(
        "Layers: jail, network mode, host link (bridge and the jail's port), jail link (eth0, "
        "lo),\n"
        "addresses, default routes, the name (the jail's /etc/hosts, then resolv.conf and a query\n"
        "to its resolver from inside the jail), the route, the egress rule that counted a TCP\n"
        "connection made from inside the jail (nftables counters before and after), and the\n"
        "connection itself. Needs root. Exit status 0 if every layer passed, 1 otherwise.");
  }

  std::string exec_id;
  auto* exec = subcommand(
      "exec",
      "run a command inside a running jail: stockade exec ID -- CMD [ARGS...] (same namespaces, "
      "ids, capabilities, limits, seccomp filter and audit id as the jail's workload)");
  if (exec && wanted("exec")) {
    exec->add_option("ID", exec_id, "jail id (see stockade ps)")->required();
    exec->prefix_command();
    exec->footer(
        "The command gets this terminal's stdin, stdout and stderr and the jail's environment and\n"
        "working directory. SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to stockade exec reach the "
        "command;\n"
        "if stockade exec dies, the command is killed. Exit status: the command's own, 128+N when\n"
        "killed by signal N, 126/127 when it cannot be executed or is not found, 125 when the "
        "jail\n"
        "could not be asked (not running, refused).");
  }

  supervisor::GcOptions gc_options;
  bool gc_json = false;
  auto* gc = subcommand(
      "gc",
      "remove what jails whose supervisor died left behind (registry entries, leases, cgroups, "
      "nftables objects, neighbour entries, veths); running jails are never touched");
  bool gc_bridges = false;
  std::string gc_bridge;
  if (gc && wanted("gc")) {
    gc->add_flag("-n,--dry-run", gc_options.dry_run, "only print what would be removed");
    gc->add_flag("--json", gc_json, "machine-readable output");
    gc->add_option("--cgroup-parent", gc_options.cgroup_parent,
                   "also look under PARENT/stockade (as given to stockade run)")
        ->type_name("PARENT");
    gc->add_flag("--bridges", gc_bridges,
                 "also remove stockade bridges no jail uses (recreated on demand), and stockade's "
                 "nftables tables once no bridge is left");
    gc->add_option("--bridge", gc_bridge, "only this bridge: remove it if no jail uses it")
        ->type_name("NAME");
  }

  audit::WatchOptions watch_opts;
  std::string watch_ids;
  auto* watch = subcommand(
      "watch",
      "raise alerts when jailed processes try to escape (reads the kernel's audit stream)");
  if (watch && wanted("watch")) {
    watch
        ->add_option("-o,--output", watch_opts.output,
                     "append alerts (Falco JSON lines) to FILE instead of stdout")
        ->type_name("FILE");
    watch
        ->add_option("--replay", watch_opts.replay,
                     "run the detectors over a raw audit log (auditd's log, ausearch --raw) "
                     "instead of watching")
        ->type_name("FILE");
    watch
        ->add_option("--save-raw", watch_opts.save_raw,
                     "also append every audit record received to FILE, in auditd's raw format")
        ->type_name("FILE");
    watch
        ->add_option("--audit-ids", watch_ids,
                     "START[:COUNT] the jails' audit ids = host uids (default 1879048192:65536)")
        ->type_name("START[:COUNT]");
    watch->add_option("--key", watch_opts.key, "key of the audit rules (default stockade-PID)");
    watch
        ->add_option("--registry", watch_opts.registry_dir,
                     "jail registry directory (default /run/stockade/jails)")
        ->type_name("DIR");
    watch->add_option("--stop-after", watch_opts.stop_after, "stop after SECONDS")
        ->type_name("SECONDS");
    watch->footer(
        "Needs root (CAP_AUDIT_CONTROL, CAP_AUDIT_READ). Installs audit rules filtered on the "
        "jails'\n"
        "audit ids (arch b64 and b32) and removes exactly those when it stops (SIGTERM, SIGINT,\n"
        "SIGHUP, error). If audit is off it is switched on for the watch, and off again after; it\n"
        "says so. Reads the multicast audit stream, so auditd may run beside it. Alerts name the\n"
        "jail, the process, the syscall, whether it was blocked; lost records raise their own.");
  }

  audit::ReviewOptions review_opts;
  std::string alerts_since;
  auto* alerts = subcommand("alerts", "review alerts written by stockade watch");
  if (alerts && wanted("alerts")) {
    alerts->add_option("FILE", review_opts.file, "alert file (default stdin)");
    alerts->add_option("--since", alerts_since, "only alerts of the last 90s, 15m, 1h, 2d")
        ->type_name("DURATION");
    alerts->add_option("--jail", review_opts.jail, "only this jail id");
    alerts->add_option("--rule", review_opts.rule, "only rules containing this text");
    alerts->add_option("--priority", review_opts.priority,
                       "only this priority and worse (Critical, Error, Warning, Notice, ...)");
    alerts->add_flag("--json", review_opts.json, "print the matching alert lines unchanged");
  }

  std::vector<std::string> command;
  if (n < argc) command.assign(argv + n + 1, argv + argc);
  try {
    app.parse(n, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  log::set_format(log_format == "json" ? log::Format::kJson : log::Format::kText);
  log::set_level(verbose             ? log::Level::kDebug
                 : run_options.quiet ? log::Level::kWarn
                                     : log::Level::kInfo);

  if (parsed(run)) {
    // Without "--" the command starts at the first word that is not an option of ours; a word
    // that looks like an option there is a misspelt one, not a program to run.
    auto rest = run->remaining();
    if (!rest.empty() && rest.front().starts_with("-")) {
      log::error("run: unknown option '{}'; see stockade run --help (put the command after '--')",
                 rest.front());
      return kExitUsage;
    }
    rest.insert(rest.end(), command.begin(), command.end());
    cli::finish_run_options(run, run_options);
    if (!cli::apply_nsjail_flags(run_options.nsjail, run_options.flags)) {
      for (auto& why : run_options.nsjail.refusals) log::error("run: {}", why);
      return kExitUsage;
    }
    int rc = cmd_run(run_options.flags, rest, run_options.policy_file);
#ifndef __SANITIZE_ADDRESS__
    // The jail and all it had on the host are gone: skip the destructors (the command line's
    // options, the policy) and the C++ runtime's exit work, ~0.1 ms of every launch.
    std::fflush(nullptr);
    ::_exit(rc);
#endif
    return rc;
  }
  if (parsed(diagnose)) return cli::cmd_diagnose(diagnose_id, diagnose_target, diagnose_json);
  if (parsed(exec)) return cmd_exec(exec_id, exec->remaining(), command);
  if (parsed(check)) return cmd_check(check_file, check_json);
  if (parsed(ps)) return cmd_ps(ps_json);
  if (parsed(inspect)) return cmd_inspect(inspect_id, inspect_json);
  if (parsed(gc)) return cmd_gc(gc_options, gc_json, gc_bridges, gc_bridge);
  if (parsed(watch)) return cmd_watch(watch_opts, watch_ids);
  if (parsed(alerts)) return cmd_alerts(review_opts, alerts_since);
  return kExitUsage;
}
