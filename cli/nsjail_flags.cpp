#include "cli/nsjail_flags.hpp"

#include "cli/detail/option_builder.hpp"

namespace cli {
namespace {

// nsjail gives memory rlimits in MiB; "max", "hard", "inf" mean no limit.
std::string nsjail_limit(const std::string& v, bool mib) {
  if (v == "max" || v == "hard" || v == "inf") return "inf";
  return mib ? v + "M" : v;
}

// "refused: WHY" in --help; naming it on the command line fails the run with "FLAG: WHY".
void refuse(detail::Builder& b, NsjailFlags& n, const char* flag, const char* why) {
  b.flag_callback(
      flag, [&n, flag, why] { n.refusals.push_back(std::string(flag) + ": " + why); },
      std::string("refused: ") + why);
}

}  // namespace

void define_nsjail_flags(detail::Builder& b, NsjailFlags& n) {
  b.group("nsjail-compatible flags");
  b.function<std::string>(
      "-M,--mode",
      [&n](const std::string& m) {
        if (m != "o")
          n.refusals.push_back("-M " + m +
                               ": stockade runs one command in one jail and waits for it "
                               "(nsjail's -Mo); it has no listen, execve-only or rerun mode");
      },
      "nsjail mode: only o (once) exists");
  b.value("-u", n.uid, "nsjail: uid inside the jail (the host side is leased)");
  b.value("-g", n.gid, "nsjail: gid inside the jail");
  struct Rl {
    const char* flag;
    const char* name;
    bool mib;
    const char* help;
  };
  for (Rl r : {Rl{"--rlimit_as", "as", true, "nsjail: RLIMIT_as in MiB"},
               Rl{"--rlimit_core", "core", true, "nsjail: RLIMIT_core in MiB"},
               Rl{"--rlimit_cpu", "cpu", false, "nsjail: RLIMIT_cpu"},
               Rl{"--rlimit_fsize", "fsize", true, "nsjail: RLIMIT_fsize in MiB"},
               Rl{"--rlimit_nofile", "nofile", false, "nsjail: RLIMIT_nofile"},
               Rl{"--rlimit_nproc", "nproc", false, "nsjail: RLIMIT_nproc"},
               Rl{"--rlimit_stack", "stack", true, "nsjail: RLIMIT_stack in MiB"}}) {
    b.function<std::string>(
        r.flag,
        [&n, r](const std::string& v) {
          n.rlimits.push_back(std::string(r.name) + "=" + nsjail_limit(v, r.mib));
        },
        r.help);
  }
  b.function<std::uint64_t>(
      "--cgroup_mem_max", [&n](std::uint64_t v) { n.cgroup.memory_bytes = v; },
      "nsjail: memory limit in bytes (needs cgroup support)");
  b.function<std::uint64_t>(
      "--cgroup_pids_max", [&n](std::uint64_t v) { n.cgroup.pids = v; },
      "nsjail: process limit (needs cgroup support)");
  b.function<std::uint64_t>(
      "--cgroup_cpu_ms_per_sec", [&n](std::uint64_t v) { n.cgroup.cpu_ms_per_sec = v; },
      "nsjail: CPU time per second (needs cgroup support)");
  b.flag("--iface_no_lo", n.iface_no_lo, "nsjail: leave lo down (same as --net none)");

  // nsjail reads kafel here. stockade reads Docker/OCI JSON profiles instead (the format teams
  // already keep); a kafel file is refused with what to do, never guessed at.
  b.function<std::string>(
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
      "a Docker/OCI seccomp profile (FILE.json); kafel files are refused");
  b.group("nsjail flags stockade refuses");
  refuse(b, n, "--seccomp_string",
         "inline kafel is not read; use [seccomp] rules in a policy file (docs/policy.md)");
  refuse(b, n, "--keep_caps",
         "stockade never hands a jail all capabilities; name each one it needs with --cap");
  refuse(b, n, "--disable_clone_newnet,-N",
         "the host's network namespace is never shared; use --net loopback (default) or none");
  refuse(b, n, "--disable_clone_newuser",
         "a jail always has its own user namespace, mapped to a host uid of its own");
  refuse(b, n,
         "--disable_clone_newns,--disable_clone_newpid,--disable_clone_newipc,"
         "--disable_clone_newuts,--disable_clone_newcgroup",
         "every jail gets all of these namespaces");
  refuse(b, n, "--disable_proc", "a jail always gets its own /proc (with /proc/sys read-only)");
  refuse(b, n, "--disable_no_new_privs", "no_new_privs is always set");
  refuse(b, n, "--rw", "the chroot is mounted read-only; bind writable directories with -B");
  refuse(b, n, "-e,--keep_env",
         "the environment is cleared; pass what the jail needs with -E NAME or -E NAME=VALUE");
  refuse(b, n, "-d,--daemon", "stockade stays in the foreground and returns the exit status");
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
