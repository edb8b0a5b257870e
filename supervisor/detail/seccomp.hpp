// Seccomp programs, compiled by libseccomp in the parent before clone(); the child only loads them.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace supervisor::detail {

struct SeccompPrograms {
  // Loaded first, without SECCOMP_FILTER_FLAG_LOG: answers clone3 with ENOSYS so libc falls back
  // to clone(), whose flags a filter can inspect. Not an attack, so not logged.
  std::vector<sock_filter> quiet;
  // The deny list, loaded with SECCOMP_FILTER_FLAG_LOG: every denial reaches the audit stream.
  std::vector<sock_filter> logged;
};

// The programs for a profile. "default" (everything allowed except the escape and kernel-attack
// surface, which fails with EPERM) comes precompiled from the build; see compile_profile.
common::Result<SeccompPrograms> build_profile(const std::string& name);

// Compiles a profile with libseccomp now (the build uses this to precompile "default").
common::Result<SeccompPrograms> compile_profile(const std::string& name);

// Syscall names the default profile denies outright (for docs and tests).
const std::vector<const char*>& default_denied_syscalls();

}  // namespace supervisor::detail
