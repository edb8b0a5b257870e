// Flags familiar to nsjail users, mapped onto stockade's own (or refused with the reason).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/spec.hpp"

namespace cli {

namespace detail {
class Builder;
}

struct NsjailFlags {
  std::vector<std::string> refusals;  // "--keep_caps: ..." lines; any of them fails the run
  std::vector<std::string> rlimits;   // in stockade's NAME=VALUE form
  std::optional<std::string> uid, gid;
  policy::CgroupLimits cgroup;
  bool iface_no_lo = false;
  std::optional<std::string> seccomp_file;  // --seccomp_policy FILE.json
  bool operator==(const NsjailFlags&) const = default;
};

// Declares nsjail's flags to `b` (cli/detail/option_builder.hpp), which builds those the
// command line names. The short forms of options stockade also has (-R -B -T -E -H -t -D -q) are
// names of those options, declared where they are.
void define_nsjail_flags(detail::Builder& b, NsjailFlags& n);

// Folds what was given into the run flags (called after parsing). Returns false if a flag must
// be refused; the reasons are in n.refusals.
bool apply_nsjail_flags(NsjailFlags& n, policy::RunFlags& f);

}  // namespace cli
