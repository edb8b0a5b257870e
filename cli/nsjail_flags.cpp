#include "cli/nsjail_flags.hpp"

#include "cli/run_options.hpp"

namespace cli {
namespace {

// nsjail gives memory rlimits in MiB; "max", "hard", "inf" mean no limit.
std::string nsjail_limit(const std::string& v, bool mib) {
  if (v == "max" || v == "hard" || v == "inf") return "inf";
  return mib ? v + "M" : v;
}

void refuse(CLI::App* run, NsjailFlags& n, const std::string& flag, const std::string& why) {
  run->add_flag_callback(
         flag, [&n, flag, why] { n.refusals.push_back(flag + ": " + why); }, "refused: " + why)
      ->group("nsjail flags stockade refuses");
}

}  // namespace

bool wants_nsjail_flags(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view t = argv[i];
    if (!t.starts_with("-") || t.size() < 2) continue;
    if (asks_for_help(t)) return true;
    t = t.substr(0, t.find('='));
    if (t == "--mode" || t == "--rw" || t == "--daemon") return true;
    if (t.starts_with("--")) {
      if (t.find('_') != std::string_view::npos) return true;
    } else if (t.find_first_of("MugPNed") != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

void add_nsjail_flags(CLI::App* run, NsjailFlags& n) {
  const std::string group = "nsjail-compatible flags";
  run->add_option_function<std::string>(
         "-M,--mode",
         [&n](const std::string& m) {
           if (m != "o")
             n.refusals.push_back("-M " + m +
                                  ": stockade runs one command in one jail and waits for it "
                                  "(nsjail's -Mo); it has no listen, execve-only or rerun mode");
         },
         "nsjail mode: only o (once) exists")
      ->group(group);
  run->add_option("-u", n.uid, "nsjail: uid inside the jail (the host side is leased)")
      ->group(group);
  run->add_option("-g", n.gid, "nsjail: gid inside the jail")->group(group);
  struct Rl {
    const char* flag;
    const char* name;
    bool mib;
  };
  for (Rl r : {Rl{"--rlimit_as", "as", true}, Rl{"--rlimit_core", "core", true},
               Rl{"--rlimit_cpu", "cpu", false}, Rl{"--rlimit_fsize", "fsize", true},
               Rl{"--rlimit_nofile", "nofile", false}, Rl{"--rlimit_nproc", "nproc", false},
               Rl{"--rlimit_stack", "stack", true}}) {
    run->add_option_function<std::string>(
           r.flag,
           [&n, r](const std::string& v) {
             n.rlimits.push_back(std::string(r.name) + "=" + nsjail_limit(v, r.mib));
           },
           std::string("nsjail: RLIMIT_") + r.name + (r.mib ? " in MiB" : ""))
        ->group(group);
  }
  run->add_option_function<std::uint64_t>(
         "--cgroup_mem_max", [&n](std::uint64_t v) { n.cgroup.memory_bytes = v; },
         "nsjail: memory limit in bytes (needs cgroup support)")
      ->group(group);
  run->add_option_function<std::uint64_t>(
         "--cgroup_pids_max", [&n](std::uint64_t v) { n.cgroup.pids = v; },
         "nsjail: process limit (needs cgroup support)")
      ->group(group);
  run->add_option_function<std::uint64_t>(
         "--cgroup_cpu_ms_per_sec", [&n](std::uint64_t v) { n.cgroup.cpu_ms_per_sec = v; },
         "nsjail: CPU time per second (needs cgroup support)")
      ->group(group);
  run->add_flag("--iface_no_lo", n.iface_no_lo, "nsjail: leave lo down (same as --net none)")
      ->group(group);

  // nsjail reads kafel here. stockade reads Docker/OCI JSON profiles instead (the format teams
  // already keep); a kafel file is refused with what to do, never guessed at.
  run->add_option_function<std::string>(
         "-P,--seccomp_policy",
         [&n](const std::string& v) {
           if (v.size() > 5 && v.ends_with(".json"))
             n.seccomp_file = v;
           else
             n.refusals.push_back("--seccomp_policy '" + v +
                                  "': kafel policies are not read; give a Docker/OCI JSON "
                                  "profile (FILE.json), --seccomp default|strict, or [seccomp] "
                                  "rules in a policy file (docs/policy.md)");
         },
         "a Docker/OCI seccomp profile (FILE.json); kafel files are refused")
      ->group(group);
  refuse(run, n, "--seccomp_string",
         "inline kafel is not read; use [seccomp] rules in a policy file (docs/policy.md)");
  refuse(run, n, "--keep_caps",
         "stockade never hands a jail all capabilities; name each one it needs with --cap");
  refuse(run, n, "--disable_clone_newnet,-N",
         "the host's network namespace is never shared; use --net loopback (default) or none");
  refuse(run, n, "--disable_clone_newuser",
         "a jail always has its own user namespace, mapped to a host uid of its own");
  refuse(run, n,
         "--disable_clone_newns,--disable_clone_newpid,--disable_clone_newipc,"
         "--disable_clone_newuts,--disable_clone_newcgroup",
         "every jail gets all of these namespaces");
  refuse(run, n, "--disable_proc", "a jail always gets its own /proc (with /proc/sys read-only)");
  refuse(run, n, "--disable_no_new_privs", "no_new_privs is always set");
  refuse(run, n, "--rw", "the chroot is mounted read-only; bind writable directories with -B");
  refuse(run, n, "-e,--keep_env",
         "the environment is cleared; pass what the jail needs with -E NAME or -E NAME=VALUE");
  refuse(run, n, "-d,--daemon", "stockade stays in the foreground and returns the exit status");
}

bool apply_nsjail_flags(NsjailFlags& n, policy::RunFlags& f) {
  if (n.uid || n.gid) {
    for (const auto* id : {&n.uid, &n.gid})
      if (*id && id->value().find(':') != std::string::npos)
        n.refusals.push_back("-u/-g '" + id->value() +
                             "': give only the id inside the jail; stockade leases the host id");
    if (f.user) n.refusals.push_back("-u/-g: give the ids with either --user or -u/-g, not both");
    f.user = n.uid.value_or("0") + ":" + n.gid.value_or(n.uid.value_or("0"));
  }
  f.rlimits.insert(f.rlimits.begin(), n.rlimits.begin(), n.rlimits.end());
  if (n.cgroup.any()) f.cgroup = n.cgroup;
  if (n.iface_no_lo) f.net = "none";
  if (n.seccomp_file) {
    if (f.seccomp) n.refusals.push_back("--seccomp_policy: give either it or --seccomp, not both");
    f.seccomp = n.seccomp_file;
  }
  return n.refusals.empty();
}

}  // namespace cli
