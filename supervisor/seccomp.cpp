#include "supervisor/detail/seccomp.hpp"

#include <linux/fs.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>

#include "common/fd.hpp"
#include "common/sys.hpp"

namespace supervisor::detail {
namespace {

using common::fail;
using common::Result;

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

constexpr unsigned long kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                          CLONE_NEWNET | 0x00000080 /* CLONE_NEWTIME */;

// Exports the compiled program through a memfd: libseccomp 2.5 only writes BPF to an fd.
Result<std::vector<sock_filter>> export_bpf(void* ctx) {
  common::UniqueFd mem{::memfd_create("stockade-bpf", MFD_CLOEXEC)};
  if (!mem) return fail(errno, "memfd_create");
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0) return fail(-rc, "seccomp_export_bpf");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return fail(EINVAL, "exported BPF size");
  std::vector<sock_filter> prog(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), prog.data(), static_cast<size_t>(size), 0) != size)
    return fail(errno, "read exported BPF");
  return prog;
}

Result<Ctx> new_ctx(std::uint32_t default_action) {
  // Only the native ABI: syscalls through the i386/x32 entry points hit the default bad-arch
  // action (kill), so a 32-bit int 0x80 cannot route around the rules.
  Ctx ctx{seccomp_init(default_action)};
  if (!ctx) return fail(ENOMEM, "seccomp_init");
  // We set no_new_privs ourselves, earlier, and load the program with seccomp(2) directly.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0)
    return fail(-rc, "seccomp_attr_set");
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
    return fail(-rc, "seccomp_attr_set");
  // A binary tree of syscall numbers instead of a chain: the kernel emulates the program for
  // every syscall number when it is loaded (to cache constant verdicts), so a short path per
  // number makes the load itself cheaper, and uncached syscalls too.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
    return fail(-rc, "seccomp_attr_set");
  return ctx;
}

// Adds rules, leaving out the profile's own for any syscall the policy has rules for: a
// policy's rules for a syscall replace what the profile says about it.
class RuleSet {
 public:
  RuleSet(void* ctx, std::uint32_t default_action, const policy::SeccompPolicy& policy)
      : ctx_(ctx), default_action_(default_action) {
    for (const auto& r : policy.rules) overridden_.insert(r.syscall);
  }

  Result<void> add(std::uint32_t action, const char* name,
                   std::initializer_list<scmp_arg_cmp> args = {}) {
    if (overridden_.count(name)) return {};
    return add_array(action, name, std::data(args), args.size());
  }

  Result<void> add_array(std::uint32_t action, const std::string& name, const scmp_arg_cmp* args,
                         size_t n) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) return {};  // not on this architecture: nothing to say about it
    // libseccomp refuses a rule that repeats the default action; it changes nothing anyway.
    if (action == default_action_ && n == 0) return {};
    int rc = seccomp_rule_add_array(ctx_, action, nr, static_cast<unsigned>(n), n ? args : nullptr);
    if (rc < 0) return fail(-rc, "seccomp rule for '{}'", name);
    return {};
  }

 private:
  void* ctx_;
  std::uint32_t default_action_;
  std::set<std::string> overridden_;
};

std::uint32_t action_of(policy::SeccompAction action, int errno_value) {
  switch (action) {
    case policy::SeccompAction::kAllow:
      return SCMP_ACT_ALLOW;
    case policy::SeccompAction::kErrno:
      return SCMP_ACT_ERRNO(static_cast<std::uint16_t>(errno_value));
    case policy::SeccompAction::kKill:
      return SCMP_ACT_KILL_PROCESS;
    case policy::SeccompAction::kLog:
      return SCMP_ACT_LOG;
  }
  return SCMP_ACT_ERRNO(EPERM);
}

std::uint32_t action_of(const policy::SyscallRule& r) { return action_of(r.action, r.errno_value); }

scmp_compare compare_of(policy::SyscallArg::Op op) {
  using Op = policy::SyscallArg::Op;
  switch (op) {
    case Op::kEq:
      return SCMP_CMP_EQ;
    case Op::kNe:
      return SCMP_CMP_NE;
    case Op::kLt:
      return SCMP_CMP_LT;
    case Op::kLe:
      return SCMP_CMP_LE;
    case Op::kGt:
      return SCMP_CMP_GT;
    case Op::kGe:
      return SCMP_CMP_GE;
    case Op::kMaskedEq:
      return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

std::vector<scmp_arg_cmp> compares_of(const policy::SyscallRule& r) {
  std::vector<scmp_arg_cmp> args;
  for (const auto& a : r.args) {
    scmp_arg_cmp c{};
    c.arg = a.index;
    c.op = compare_of(a.op);
    // For masked_eq libseccomp takes the mask first and the value second.
    bool masked = a.op == policy::SyscallArg::Op::kMaskedEq;
    c.datum_a = masked ? a.mask : a.value;
    c.datum_b = masked ? a.value : 0;
    args.push_back(c);
  }
  return args;
}

Result<void> add_policy_rules(RuleSet& rules, const policy::SeccompPolicy& policy) {
  for (const auto& r : policy.rules) {
    // Unlike the built-in lists, a policy naming a syscall this architecture lacks is a mistake.
    if (seccomp_syscall_resolve_name(r.syscall.c_str()) == __NR_SCMP_ERROR)
      return fail(EINVAL, "seccomp rule: unknown syscall '{}'", r.syscall);
    auto args = compares_of(r);
    TRY(rules.add_array(action_of(r), r.syscall, args.data(), args.size()));
  }
  return {};
}

// An imported (OCI) profile's own rules, but for syscalls the policy has rules for.
Result<void> add_imported_rules(RuleSet& rules, const policy::SeccompPolicy& policy,
                                std::uint32_t default_action) {
  std::set<std::string> overridden;
  for (const auto& r : policy.rules) overridden.insert(r.syscall);
  for (const auto& r : policy.base_rules) {
    // libseccomp refuses a rule with the default action even with arguments (EACCES); runc
    // skips those too, so a profile means the same under both.
    if (overridden.count(r.syscall) || action_of(r) == default_action) continue;
    auto args = compares_of(r);
    TRY_CTX(rules.add_array(action_of(r), r.syscall, args.data(), args.size()), "{}",
            policy.profile);
  }
  return {};
}

// The escape and kernel-attack surface, denied with EPERM; everything else allowed.
Result<void> add_default_denials(RuleSet& rules) {
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : default_denied_syscalls()) TRY(rules.add(deny, name));
  // New namespaces of any kind: one rule per flag, since a filter can only test "all bits of a
  // mask equal"; the rules are OR-ed.
  for (unsigned long bit = 1; bit != 0; bit <<= 1) {
    if ((kNamespaceFlags & bit) == 0) continue;
    TRY(rules.add(deny, "unshare", {SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)}));
    TRY(rules.add(deny, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)}));
  }
  // Terminal injection. The kernel truncates ioctl's cmd to 32 bits, so compare only those:
  // a cmd with junk in the upper half must not slip past.
  for (unsigned long cmd : {TIOCSTI, TIOCLINUX})
    TRY(rules.add(deny, "ioctl", {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, cmd)}));
  // AF_VSOCK reaches the hypervisor side.
  TRY(rules.add(deny, "socket", {SCMP_A0(SCMP_CMP_EQ, AF_VSOCK)}));
  // Turning off ASLR helps exploits and nothing a build needs.
  TRY(rules.add(deny, "personality",
                {SCMP_A0(SCMP_CMP_MASKED_EQ, ADDR_NO_RANDOMIZE, ADDR_NO_RANDOMIZE)}));
  return {};
}

// An allowlist: what is not on it fails with EPERM. The default profile's argument checks,
// written as permissions.
Result<void> add_strict_allowances(RuleSet& rules) {
  const auto allow = SCMP_ACT_ALLOW;
  for (const char* name : strict_allowed_syscalls()) TRY(rules.add(allow, name));
  // clone and unshare without any namespace flag.
  TRY(rules.add(allow, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)}));
  TRY(rules.add(allow, "unshare", {SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)}));
  // clone3's flags are out of sight: allowed here, answered with ENOSYS by the clone3 guard
  // every strict jail loads first (libc then falls back to clone).
  TRY(rules.add(allow, "clone3"));
  // ioctl: only the commands build tools use (terminal queries, non-blocking and close-on-exec
  // flags, pending bytes, reflink copies and file flags). Each compared on the low 32 bits, which
  // is all the kernel reads: junk in the upper half matches nothing.
  for (unsigned long cmd : std::initializer_list<unsigned long>{
           TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP, TIOCSPGRP, TCFLSH,
           FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, FIOASYNC, FICLONE, FICLONERANGE, FS_IOC_GETFLAGS})
    TRY(rules.add(allow, "ioctl", {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, cmd)}));
  TRY(rules.add(allow, "socket", {SCMP_A0(SCMP_CMP_NE, AF_VSOCK)}));
  TRY(rules.add(allow, "personality", {SCMP_A0(SCMP_CMP_MASKED_EQ, ADDR_NO_RANDOMIZE, 0)}));
  return {};
}

}  // namespace

const std::vector<const char*>& strict_allowed_syscalls() {
  // What compilers, linkers, make, shells, git, Python and Node use: files, memory, processes
  // and threads, signals, time, pipes and sockets, polling. Not allowed, among others: every
  // syscall of the default profile's deny list, chroot, xattr writes, mknod, sysctl-like knobs,
  // NUMA policy changes, and the rarely used (set)priority and scheduler-class calls.
  static const std::vector<const char*> kAllowed = {
      // files and directories
      "read",
      "write",
      "open",
      "openat",
      "openat2",
      "close",
      "close_range",
      "creat",
      "stat",
      "fstat",
      "lstat",
      "newfstatat",
      "statx",
      "statfs",
      "fstatfs",
      "lseek",
      "pread64",
      "pwrite64",
      "readv",
      "writev",
      "preadv",
      "pwritev",
      "preadv2",
      "pwritev2",
      "access",
      "faccessat",
      "faccessat2",
      "getdents",
      "getdents64",
      "getcwd",
      "chdir",
      "fchdir",
      "rename",
      "renameat",
      "renameat2",
      "mkdir",
      "mkdirat",
      "rmdir",
      "link",
      "linkat",
      "unlink",
      "unlinkat",
      "symlink",
      "symlinkat",
      "readlink",
      "readlinkat",
      "chmod",
      "fchmod",
      "fchmodat",
      "chown",
      "fchown",
      "lchown",
      "fchownat",
      "umask",
      "truncate",
      "ftruncate",
      "fallocate",
      "fsync",
      "fdatasync",
      "sync",
      "syncfs",
      "sync_file_range",
      "flock",
      "fcntl",
      "dup",
      "dup2",
      "dup3",
      "utime",
      "utimes",
      "utimensat",
      "futimesat",
      "fadvise64",
      "readahead",
      "sendfile",
      "copy_file_range",
      "splice",
      "tee",
      "vmsplice",
      "getxattr",
      "lgetxattr",
      "fgetxattr",
      "listxattr",
      "llistxattr",
      "flistxattr",
      "inotify_init",
      "inotify_init1",
      "inotify_add_watch",
      "inotify_rm_watch",
      "memfd_create",
      // memory
      "brk",
      "mmap",
      "munmap",
      "mremap",
      "mprotect",
      "madvise",
      "msync",
      "mincore",
      "mlock",
      "mlock2",
      "munlock",
      "mlockall",
      "munlockall",
      "membarrier",
      "get_mempolicy",
      // processes, threads, identity
      "fork",
      "vfork",
      "execve",
      "execveat",
      "exit",
      "exit_group",
      "wait4",
      "waitid",
      "kill",
      "tkill",
      "tgkill",
      "getpid",
      "getppid",
      "gettid",
      "getpgid",
      "setpgid",
      "getpgrp",
      "getsid",
      "setsid",
      "getuid",
      "geteuid",
      "getgid",
      "getegid",
      "getresuid",
      "getresgid",
      "getgroups",
      "setuid",
      "setgid",
      "setreuid",
      "setregid",
      "setresuid",
      "setresgid",
      "setgroups",
      "setfsuid",
      "setfsgid",
      "capget",
      "capset",
      "prctl",
      "arch_prctl",
      "set_tid_address",
      "set_robust_list",
      "get_robust_list",
      "rseq",
      "futex",
      "futex_waitv",
      "sched_yield",
      "sched_getaffinity",
      "sched_setaffinity",
      "sched_getparam",
      "sched_getscheduler",
      "sched_get_priority_max",
      "sched_get_priority_min",
      "getcpu",
      "getpriority",
      "getrlimit",
      "setrlimit",
      "prlimit64",
      "getrusage",
      "times",
      "uname",
      "sysinfo",
      "pidfd_open",
      "pidfd_send_signal",
      "restart_syscall",
      "seccomp",
      // signals
      "rt_sigaction",
      "rt_sigprocmask",
      "rt_sigreturn",
      "rt_sigpending",
      "rt_sigtimedwait",
      "rt_sigqueueinfo",
      "rt_tgsigqueueinfo",
      "rt_sigsuspend",
      "sigaltstack",
      "pause",
      "signalfd",
      "signalfd4",
      "alarm",
      "getitimer",
      "setitimer",
      // time
      "time",
      "gettimeofday",
      "clock_gettime",
      "clock_getres",
      "clock_nanosleep",
      "nanosleep",
      "timer_create",
      "timer_settime",
      "timer_gettime",
      "timer_getoverrun",
      "timer_delete",
      "timerfd_create",
      "timerfd_settime",
      "timerfd_gettime",
      // pipes, sockets, polling
      "pipe",
      "pipe2",
      "socketpair",
      "connect",
      "accept",
      "accept4",
      "bind",
      "listen",
      "getsockname",
      "getpeername",
      "sendto",
      "recvfrom",
      "sendmsg",
      "recvmsg",
      "sendmmsg",
      "recvmmsg",
      "shutdown",
      "setsockopt",
      "getsockopt",
      "poll",
      "ppoll",
      "select",
      "pselect6",
      "epoll_create",
      "epoll_create1",
      "epoll_ctl",
      "epoll_wait",
      "epoll_pwait",
      "epoll_pwait2",
      "eventfd",
      "eventfd2",
      "getrandom",
  };
  return kAllowed;
}

const std::vector<const char*>& default_denied_syscalls() {
  static const std::vector<const char*> kDenied = {
      // joining or building namespaces, mount tables
      "setns",
      "mount",
      "umount2",
      "pivot_root",
      "open_tree",
      "move_mount",
      "fsopen",
      "fsconfig",
      "fsmount",
      "fspick",
      "mount_setattr",
      // reaching other processes
      "ptrace",
      "process_vm_readv",
      "process_vm_writev",
      "process_madvise",
      "pidfd_getfd",
      "kcmp",
      // host files by handle ("shocker")
      "open_by_handle_at",
      "name_to_handle_at",
      // kernel attack surface
      "bpf",
      "perf_event_open",
      "userfaultfd",
      "keyctl",
      "add_key",
      "request_key",
      "io_uring_setup",
      "io_uring_enter",
      "io_uring_register",
      "modify_ldt",
      "uselib",
      "lookup_dcookie",
      "nfsservctl",
      "fanotify_init",
      // the machine itself
      "kexec_load",
      "kexec_file_load",
      "init_module",
      "finit_module",
      "delete_module",
      "reboot",
      "swapon",
      "swapoff",
      "acct",
      "quotactl",
      "quotactl_fd",
      "iopl",
      "ioperm",
      "syslog",
      "settimeofday",
      "clock_settime",
      "clock_adjtime",
      "adjtimex",
      "vhangup",
  };
  return kDenied;
}

bool imported_allows_clone3(const policy::SeccompPolicy& policy) {
  if (!policy.profile.starts_with("oci:")) return false;
  // The policy's rules for clone3, if any, replace the profile's (as compile_profile does).
  auto about_clone3 = [](const std::vector<policy::SyscallRule>& rules) {
    std::vector<const policy::SyscallRule*> out;
    for (const auto& r : rules)
      if (r.syscall == "clone3") out.push_back(&r);
    return out;
  };
  auto found = about_clone3(policy.rules);
  if (found.empty()) found = about_clone3(policy.base_rules);
  auto lets_through = [](policy::SeccompAction a) {
    return a == policy::SeccompAction::kAllow || a == policy::SeccompAction::kLog;
  };
  // Any clone3 let through counts, by a rule or by the default past conditional rules: its
  // flags are out of the filter's sight.
  bool all_conditional = std::all_of(found.begin(), found.end(),
                                     [](const policy::SyscallRule* r) { return !r->args.empty(); });
  return std::any_of(found.begin(), found.end(),
                     [&](const policy::SyscallRule* r) { return lets_through(r->action); }) ||
         (all_conditional && lets_through(policy.default_action));
}

Result<SeccompProgram> compile_clone3_guard() {
  Ctx ctx = TRY(new_ctx(SCMP_ACT_ALLOW));
  RuleSet rules(ctx.get(), SCMP_ACT_ALLOW, {});
  TRY(rules.add(SCMP_ACT_ERRNO(ENOSYS), "clone3"));
  return export_bpf(ctx.get());
}

Result<SeccompProgram> compile_profile(const policy::SeccompPolicy& policy) {
  bool strict = policy.profile == "strict";
  bool imported = policy.profile.starts_with("oci:");
  if (!strict && !imported && policy.profile != "default")
    return fail(EINVAL, "unknown seccomp profile '{}' (use default, strict or oci:PATH)",
                policy.profile);
  const std::uint32_t default_action = imported
                                           ? action_of(policy.default_action, policy.default_errno)
                                           : (strict ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_ALLOW);
  Ctx ctx = TRY(new_ctx(default_action));
  RuleSet rules(ctx.get(), default_action, policy);
  if (imported)
    TRY(add_imported_rules(rules, policy, default_action));
  else if (strict)
    TRY(add_strict_allowances(rules));
  else
    TRY(add_default_denials(rules));
  TRY(add_policy_rules(rules, policy));
  return export_bpf(ctx.get());
}

#ifdef STOCKADE_PRECOMPILED_SECCOMP
#include "default_seccomp.inc"

Result<SeccompProgram> build_profile(const policy::SeccompPolicy& policy) {
  // The built-in profiles without rules of the policy's own come compiled from the build.
  if (policy.rules.empty() && policy.profile == "default")
    return SeccompProgram(std::begin(kDefaultProgram), std::end(kDefaultProgram));
  if (policy.rules.empty() && policy.profile == "strict")
    return SeccompProgram(std::begin(kStrictProgram), std::end(kStrictProgram));
  return compile_profile(policy);
}

Result<SeccompProgram> clone3_guard() {
  return SeccompProgram(std::begin(kClone3Guard), std::end(kClone3Guard));
}
#else
Result<SeccompProgram> build_profile(const policy::SeccompPolicy& policy) {
  return compile_profile(policy);
}

Result<SeccompProgram> clone3_guard() { return compile_clone3_guard(); }
#endif

}  // namespace supervisor::detail
