// Seccomp programs, compiled by libseccomp in the parent before clone(); the child only loads them.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "common/result.hpp"
#include "policy/spec.hpp"

namespace supervisor::detail {

// One program, loaded with SECCOMP_FILTER_FLAG_LOG: every denial reaches the audit stream.
// clone3 is allowed (its flags sit behind a pointer no filter can read): nested user namespaces
// are stopped for every syscall by user.max_user_namespaces = 0 in the jail's user namespace,
// and the other namespace kinds need capabilities the jail does not have.
using SeccompProgram = std::vector<sock_filter>;

// The program for a policy: its profile ("default": everything allowed but the escape and
// kernel-attack surface, EPERM; "strict": an allowlist, the rest EPERM) with the policy's own
// rules on top. The built-in profiles without extra rules come precompiled from the build.
common::Result<SeccompProgram> build_profile(const policy::SeccompPolicy& policy);

// Compiles with libseccomp now (the build uses this to precompile the built-in profiles).
common::Result<SeccompProgram> compile_profile(const policy::SeccompPolicy& policy);

// For jails granted CAP_SYS_ADMIN, which may create every namespace but a user namespace: a
// program answering clone3 with ENOSYS (libc then falls back to clone, whose flags the profile
// checks). Loaded without the log flag: a thread start is no attack. Precompiled as well.
common::Result<SeccompProgram> clone3_guard();
common::Result<SeccompProgram> compile_clone3_guard();

// Whether an imported ("oci:") profile lets some clone3 call through, which then needs the clone3
// guard: the profile may check clone's namespace flags, and clone3 would route around that.
bool imported_allows_clone3(const policy::SeccompPolicy& policy);

// Syscall names the default profile denies outright (for docs and tests).
const std::vector<const char*>& default_denied_syscalls();
// Syscall names the strict profile allows outright (clone, unshare, ioctl, socket and
// personality are allowed with argument checks besides).
const std::vector<const char*>& strict_allowed_syscalls();

}  // namespace supervisor::detail
