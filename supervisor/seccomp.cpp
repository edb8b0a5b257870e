#include "supervisor/detail/seccomp.hpp"

#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

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

Result<Ctx> new_ctx() {
  // Only the native ABI: syscalls through the i386/x32 entry points hit the default bad-arch
  // action (kill), so a 32-bit int 0x80 cannot route around the deny list.
  Ctx ctx{seccomp_init(SCMP_ACT_ALLOW)};
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

Result<void> add(void* ctx, std::uint32_t action, const char* name,
                 std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return {};  // not on this architecture: nothing to deny
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? std::data(args) : nullptr);
  if (rc < 0) return fail(-rc, "seccomp rule for '{}'", name);
  return {};
}

Result<SeccompProgram> build_default() {
  Ctx ctx = TRY(new_ctx());
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : default_denied_syscalls()) TRY(add(ctx.get(), deny, name));
  // New namespaces of any kind: one rule per flag, since a filter can only test "all bits of a
  // mask equal"; the rules are OR-ed.
  for (unsigned long bit = 1; bit != 0; bit <<= 1) {
    if ((kNamespaceFlags & bit) == 0) continue;
    TRY(add(ctx.get(), deny, "unshare", {SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)}));
    TRY(add(ctx.get(), deny, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)}));
  }
  // Terminal injection. The kernel truncates ioctl's cmd to 32 bits, so compare only those:
  // a cmd with junk in the upper half must not slip past.
  for (unsigned long cmd : {TIOCSTI, TIOCLINUX})
    TRY(add(ctx.get(), deny, "ioctl", {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, cmd)}));
  // AF_VSOCK reaches the hypervisor side.
  TRY(add(ctx.get(), deny, "socket", {SCMP_A0(SCMP_CMP_EQ, AF_VSOCK)}));
  // Turning off ASLR helps exploits and nothing a build needs.
  TRY(add(ctx.get(), deny, "personality",
          {SCMP_A0(SCMP_CMP_MASKED_EQ, ADDR_NO_RANDOMIZE, ADDR_NO_RANDOMIZE)}));
  return export_bpf(ctx.get());
}

}  // namespace

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

Result<SeccompProgram> compile_clone3_guard() {
  Ctx ctx = TRY(new_ctx());
  TRY(add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), "clone3"));
  return export_bpf(ctx.get());
}

Result<SeccompProgram> compile_profile(const std::string& name) {
  if (name != "default") return fail(EINVAL, "unknown seccomp profile '{}'", name);
  return build_default();
}

#ifdef STOCKADE_PRECOMPILED_SECCOMP
#include "default_seccomp.inc"

Result<SeccompProgram> build_profile(const std::string& name) {
  if (name != "default") return compile_profile(name);
  return SeccompProgram(std::begin(kDefaultProgram), std::end(kDefaultProgram));
}

Result<SeccompProgram> clone3_guard() {
  return SeccompProgram(std::begin(kClone3Guard), std::end(kClone3Guard));
}
#else
Result<SeccompProgram> build_profile(const std::string& name) { return compile_profile(name); }

Result<SeccompProgram> clone3_guard() { return compile_clone3_guard(); }
#endif

}  // namespace supervisor::detail
