// The command-line layer: parses arguments, calls the modules, logs each error once.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "audit/audit.hpp"
#include "cli/nsjail_flags.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
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

// The values of --bind, --ro-bind and --tmpfs, each option's in its own order; mount_order()
// interleaves them as they stood on the command line.
struct MountOptions {
  std::vector<std::string> bind, ro_bind, tmpfs;
  CLI::Option *bind_opt = nullptr, *ro_bind_opt = nullptr, *tmpfs_opt = nullptr;
};

void add_run_options(CLI::App* run, policy::RunFlags& f, MountOptions& m, bool& quiet) {
  run->add_option("--user", f.user, "UID[:GID] inside the jail (default 0:0)");
  m.bind_opt = run->add_option("-B,--bind", m.bind, "SRC[:DST] read-write bind mount")
                   ->type_name("SRC[:DST]");
  m.ro_bind_opt = run->add_option("-R,--ro-bind", m.ro_bind, "SRC[:DST] read-only bind mount")
                      ->type_name("SRC[:DST]");
  m.tmpfs_opt = run->add_option("-T,--tmpfs", m.tmpfs, "DST[:SIZE] a fresh tmpfs (default 64M)")
                    ->type_name("DST[:SIZE]");
  run->add_option("-c,--chroot", f.chroot, "use DIR, read-only, as the jail's root")
      ->type_name("DIR");
  run->add_option("-D,--cwd", f.cwd, "working directory inside the jail (default /)");
  run->add_option("--cap", f.caps, "keep this capability, e.g. NET_BIND_SERVICE (default none)");
  run->add_option("-E,--env", f.env, "NAME=VALUE, or NAME to pass the host's value")
      ->type_name("NAME[=VALUE]");
  run->add_option("-H,--hostname", f.hostname, "hostname inside the jail (default stockade)");
  run->add_option("--rlimit", f.rlimits,
                  "as|core|cpu|data|fsize|memlock|nofile|nproc|stack=N[:HARD]")
      ->type_name("NAME=VALUE");
  run->add_option("-t,--time-limit", f.time_limit, "kill the whole jail after SECONDS")
      ->type_name("SECONDS");
  run->add_option("--kill-grace", f.kill_grace,
                  "after a forwarded SIGTERM, SIGKILL the jail after SECONDS (default 5)")
      ->type_name("SECONDS");
  run->add_option("--net", f.net, "none | loopback (default loopback)");
  run->add_option("--host-ids", f.host_ids,
                  "START[:COUNT] host uids/gids leased to jails (default 1879048192:65536)");
  run->add_option("--tmp-size", f.tmp_size, "size of the jail's /tmp (default 256M)");
  run->add_option("--seccomp", f.seccomp,
                  "default | strict | a Docker/OCI profile (FILE.json); default: default");
  run->add_flag("-q,--quiet", quiet, "print only errors");
  run->prefix_command();
  run->footer(
      "Exit status: the workload's own, 128+N if it was killed by signal N, 125 if the sandbox\n"
      "could not be set up, 126 if the command cannot be executed, 127 if it is not found,\n"
      "2 for bad options.");
}

// Later mounts land on earlier ones, so their order is the user's, not the option kind's.
void mount_order(const CLI::App* run, const MountOptions& m, policy::RunFlags& f) {
  using Kind = policy::RunFlags::MountFlag;
  size_t next_bind = 0, next_ro = 0, next_tmpfs = 0;
  for (const CLI::Option* opt : run->parse_order()) {
    if (opt == m.bind_opt && next_bind < m.bind.size())
      f.mounts.emplace_back(Kind::kBind, m.bind[next_bind++]);
    else if (opt == m.ro_bind_opt && next_ro < m.ro_bind.size())
      f.mounts.emplace_back(Kind::kRoBind, m.ro_bind[next_ro++]);
    else if (opt == m.tmpfs_opt && next_tmpfs < m.tmpfs.size())
      f.mounts.emplace_back(Kind::kTmpfs, m.tmpfs[next_tmpfs++]);
  }
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
        "running without root: the jail maps to your own uid (no host uid lease) and only "
        "--net none|loopback is available");
  auto outcome = supervisor::run(*spec);
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

int cmd_ps(bool json) {
  auto dir = registry::default_dir();
  auto recs = dir.empty() ? std::vector<registry::JailRecord>{} : registry::list(dir);
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& r : recs) {
      auto j = nlohmann::json::parse(registry::to_json(r));
      j["state"] = registry::supervisor_alive(r) ? "running" : "stale";
      arr.push_back(j);
    }
    fmt::print("{}\n", arr.dump(2));
    return 0;
  }
  fmt::print("{:<12}  {:>8}  {:>10}  {:>7}  {:<8}  {}\n", "ID", "PID", "HOST-UID", "UPTIME",
             "STATE", "COMMAND");
  for (auto& r : recs)
    fmt::print("{:<12}  {:>8}  {:>10}  {:>7}  {:<8}  {}\n", r.id, r.init_pid, r.host_uid,
               uptime(r.started_unix_ms), registry::supervisor_alive(r) ? "running" : "stale",
               join(r.command));
  return 0;
}

int cmd_inspect(const std::string& id) {
  auto dir = registry::default_dir();
  auto rec = registry::read(dir, id);
  if (!rec) {
    log::error("inspect: {}", rec.error().message());
    return 1;
  }
  auto j = nlohmann::json::parse(registry::to_json(*rec));
  j["state"] = registry::supervisor_alive(*rec) ? "running" : "stale";
  fmt::print("{}\n", j.dump(2));
  return 0;
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

}  // namespace

int main(int argc, char** argv) {
  ensure_stdio();
  CLI::App app{"stockade: run untrusted programs in least-privilege Linux jails"};
  app.require_subcommand(1);
  std::string log_format = "text";
  bool verbose = false;
  app.add_option("--log-format", log_format, "text | json")->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-v,--verbose", verbose, "debug output");

  policy::RunFlags run_flags;
  MountOptions mount_options;
  bool quiet = false;
  auto* run =
      app.add_subcommand("run", "run CMD in a new jail: stockade run [OPTIONS] -- CMD [ARGS...]");
  add_run_options(run, run_flags, mount_options, quiet);
  cli::NsjailFlags nsjail;
  cli::add_nsjail_flags(run, nsjail);
  std::string policy_file;
  run->add_option("--policy", policy_file,
                  "policy file (TOML, see docs/policy.md); flags override it")
      ->type_name("FILE");

  std::string check_file;
  bool check_json = false;
  auto* check =
      app.add_subcommand("check", "validate a policy file and print the effective policy");
  check->add_option("FILE", check_file, "policy file (TOML)")->required();
  check->add_flag("--json", check_json, "print JSON instead of TOML");

  bool ps_json = false;
  auto* ps = app.add_subcommand("ps", "list running jails");
  ps->add_flag("--json", ps_json, "machine-readable output");

  std::string inspect_id;
  auto* inspect = app.add_subcommand("inspect", "show a running jail's registry entry (JSON)");
  inspect->add_option("ID", inspect_id, "jail id (see stockade ps)")->required();

  audit::WatchOptions watch_opts;
  std::string watch_ids;
  auto* watch = app.add_subcommand(
      "watch",
      "raise alerts when jailed processes try to escape (reads the kernel's audit stream)");
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

  audit::ReviewOptions review_opts;
  std::string alerts_since;
  auto* alerts = app.add_subcommand("alerts", "review alerts written by stockade watch");
  alerts->add_option("FILE", review_opts.file, "alert file (default stdin)");
  alerts->add_option("--since", alerts_since, "only alerts of the last 90s, 15m, 1h, 2d")
      ->type_name("DURATION");
  alerts->add_option("--jail", review_opts.jail, "only this jail id");
  alerts->add_option("--rule", review_opts.rule, "only rules containing this text");
  alerts->add_option("--priority", review_opts.priority,
                     "only this priority and worse (Critical, Error, Warning, Notice, ...)");
  alerts->add_flag("--json", review_opts.json, "print the matching alert lines unchanged");

  // Everything after the first "--" is the workload's command line, never our options.
  std::vector<std::string> command;
  int n = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--") {
      command.assign(argv + i + 1, argv + argc);
      n = i;
      break;
    }
  try {
    app.parse(n, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  log::set_format(log_format == "json" ? log::Format::kJson : log::Format::kText);
  log::set_level(verbose ? log::Level::kDebug : quiet ? log::Level::kWarn : log::Level::kInfo);

  if (run->parsed()) {
    // Without "--" the command starts at the first word that is not an option of ours; a word
    // that looks like an option there is a misspelt one, not a program to run.
    auto rest = run->remaining();
    if (!rest.empty() && rest.front().starts_with("-")) {
      log::error("run: unknown option '{}'; see stockade run --help (put the command after '--')",
                 rest.front());
      return kExitUsage;
    }
    rest.insert(rest.end(), command.begin(), command.end());
    mount_order(run, mount_options, run_flags);
    if (!cli::apply_nsjail_flags(nsjail, run_flags)) {
      for (auto& why : nsjail.refusals) log::error("run: {}", why);
      return kExitUsage;
    }
    return cmd_run(run_flags, rest, policy_file);
  }
  if (check->parsed()) return cmd_check(check_file, check_json);
  if (ps->parsed()) return cmd_ps(ps_json);
  if (inspect->parsed()) return cmd_inspect(inspect_id);
  if (watch->parsed()) return cmd_watch(watch_opts, watch_ids);
  if (alerts->parsed()) return cmd_alerts(review_opts, alerts_since);
  return kExitUsage;
}
