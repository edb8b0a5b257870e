// Flags familiar to nsjail users, mapped onto stockade's own (or refused with the reason).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "policy/spec.hpp"

namespace cli {

struct NsjailFlags {
  std::vector<std::string> refusals;  // "--keep_caps: ..." lines; any of them fails the run
  std::vector<std::string> rlimits;   // in stockade's NAME=VALUE form
  std::optional<std::string> uid, gid;
  policy::CgroupLimits cgroup;
  bool iface_no_lo = false;
  std::optional<std::string> seccomp_file;  // --seccomp_policy FILE.json
};

// Whether a command line may use an nsjail flag (or asks for help, which lists them): a long
// option with '_' in its name (all of nsjail's but three: --mode --rw --daemon), or a short one
// that has one of nsjail's letters (M u g P N e d). It may say yes when none is there; never no
// when one is. Building ~40 more options costs a launch ~0.25 ms, so main adds them only then.
bool wants_nsjail_flags(int argc, const char* const* argv);

// Adds nsjail's flags to `run`. The short forms of options stockade also has (-R -B -T -E -H -t
// -D -q) are names of those options, added where they are defined.
void add_nsjail_flags(CLI::App* run, NsjailFlags& n);

// Folds what was given into the run flags (called after parsing). Returns false if a flag must
// be refused; the reasons are in n.refusals.
bool apply_nsjail_flags(NsjailFlags& n, policy::RunFlags& f);

}  // namespace cli
