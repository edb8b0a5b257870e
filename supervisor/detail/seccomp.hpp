// Seccomp programs, compiled by libseccomp in the parent before clone(); the child only loads them.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace supervisor::detail {

// One program, loaded with SECCOMP_FILTER_FLAG_LOG: every denial reaches the audit stream.
// clone3 is allowed (its flags sit behind a pointer no filter can read): nested user namespaces
// are stopped for every syscall by user.max_user_namespaces = 0 in the jail's user namespace,
// and the other namespace kinds need capabilities the jail does not have.
using SeccompProgram = std::vector<sock_filter>;

// The programs for a profile. "default" (everything allowed except the escape and kernel-attack
// surface, which fails with EPERM) comes precompiled from the build; see compile_profile.
common::Result<SeccompProgram> build_profile(const std::string& name);

// Compiles a profile with libseccomp now (the build uses this to precompile "default").
common::Result<SeccompProgram> compile_profile(const std::string& name);

// For jails granted CAP_SYS_ADMIN, which may create every namespace but a user namespace: a
// program answering clone3 with ENOSYS (libc then falls back to clone, whose flags the profile
// checks). Loaded without the log flag: a thread start is no attack. Precompiled as well.
common::Result<SeccompProgram> clone3_guard();
common::Result<SeccompProgram> compile_clone3_guard();

// Syscall names the default profile denies outright (for docs and tests).
const std::vector<const char*>& default_denied_syscalls();

}  // namespace supervisor::detail
