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

// Adds nsjail's flags to `run`. The short forms of options stockade also has (-R -B -T -E -H -t
// -D -q) are names of those options, added where they are defined.
void add_nsjail_flags(CLI::App* run, NsjailFlags& n);

// Folds what was given into the run flags (called after parsing). Returns false if a flag must
// be refused; the reasons are in n.refusals.
bool apply_nsjail_flags(NsjailFlags& n, policy::RunFlags& f);

}  // namespace cli
