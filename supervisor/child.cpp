// The child after clone(): carries out the plan, becomes the jail's pid 1, spawns the workload.
//
// Everything in this file is async-signal-safe: plain syscalls and libcap calls that only wrap
// prctl/capset. No allocation, no logging, no exceptions, no locks. A failed step is reported to
// the supervisor as {step, index, errno} and the child exits.
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

#include "common/sys.hpp"
#include "supervisor/detail/control.hpp"
#include "supervisor/detail/plan.hpp"

namespace supervisor::detail {
namespace {

// async-signal-safe
[[noreturn]] void report_failure(const ChildPlan& plan, Step step, int index, int err) {
  ChildReport r;
  r.kind = ChildReport::kSetupFailed;
  r.step = static_cast<std::int32_t>(step);
  r.index = index;
  r.err = err;
  (void)::send(plan.sock, &r, sizeof r, MSG_NOSIGNAL);  // nothing more we can do if it fails
  ::_exit(125);
}

// async-signal-safe
void check(const ChildPlan& plan, bool ok, Step step, int index = -1) {
  if (!ok) report_failure(plan, step, index, errno);
}

// async-signal-safe: "/proc/self/fd/N" for mount(2), which follows the magic link to the
// directory we opened safely.
void fd_path(char (&buf)[32], int fd) {
  static const char kPrefix[] = "/proc/self/fd/";
  char digits[12];
  int n = 0;
  unsigned v = static_cast<unsigned>(fd);
  do digits[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  std::memcpy(buf, kPrefix, sizeof kPrefix - 1);
  int i = sizeof kPrefix - 1;
  while (n > 0) buf[i++] = digits[--n];
  buf[i] = '\0';
}

// async-signal-safe. Resolves rel beneath the new root: symlinks (a reused rootfs may hold
// hostile ones) are resolved as if root were '/', so nothing lands outside it.
int open_in_root(int root, const char* rel, int flags) {
  return sys::openat2(root, rel, static_cast<std::uint64_t>(flags) | O_CLOEXEC, 0,
                      RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

// async-signal-safe. Opens (O_PATH) the mount point rel beneath root, creating missing
// directories (and a final empty file if !dir) when create is set. Returns -1 with errno.
int make_mount_point(int root, const char* rel, bool dir, bool create) {
  int fd = open_in_root(root, rel, O_PATH);
  if (fd >= 0 || errno != ENOENT || !create) return fd;
  char buf[PATH_MAX];
  size_t len = std::strlen(rel);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(buf, rel, len + 1);
  int parent = root;
  size_t start = 0;
  while (start < len) {
    size_t end = start;
    while (end < len && buf[end] != '/') ++end;
    bool last = end == len;
    buf[end] = '\0';
    const char* name = buf + start;
    int next = open_in_root(root, buf, O_PATH);
    if (next < 0 && errno == ENOENT) {
      // name is a single component under an fd resolved beneath root: nothing to follow.
      int rc = (last && !dir)
                   ? sys::openat(parent, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644)
                   : ::mkdirat(parent, name, 0755);
      if (rc >= 0 && last && !dir) ::close(rc);
      if (rc >= 0 || errno == EEXIST) next = open_in_root(root, buf, O_PATH);
    }
    int err = errno;
    if (parent != root) ::close(parent);
    if (next < 0) {
      errno = err;
      return -1;
    }
    parent = next;
    if (!last) buf[end] = '/';
    start = end + 1;
  }
  return parent;
}

// async-signal-safe. The mount point for op m, the quick way on the fresh root.
int mount_point_for(int root, const MountOp& m, bool dir) {
  if (!m.fresh) return make_mount_point(root, m.dst.c_str(), dir, m.create);
  if (!dir)
    return sys::openat2(root, m.dst.c_str(), O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC, 0644,
                        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (::mkdirat(root, m.dst.c_str(), 0755) != 0) return -1;
  return open_in_root(root, m.dst.c_str(), O_PATH | O_DIRECTORY);
}

// async-signal-safe. Clones the mount tree at src_fd into a detached tree and applies attr to
// all of it (a plain MS_REMOUNT would leave submounts writable). Returns the tree's fd.
int clone_tree(int src_fd, std::uint64_t attr) {
  int tree = sys::open_tree(src_fd, "",
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
  if (tree < 0 || attr == 0) return tree;
  if (sys::mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, attr, 0) != 0) {
    int err = errno;
    ::close(tree);
    errno = err;
    return -1;
  }
  return tree;
}

// async-signal-safe. Attaches a detached tree at dst_fd.
bool attach_tree(int tree, int dst_fd) {
  return sys::move_mount(tree, "", dst_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) ==
         0;
}

// async-signal-safe. Binds the tree at src_fd onto dst_fd with attributes attr.
bool bind_tree(int src_fd, int dst_fd, std::uint64_t attr) {
  int tree = clone_tree(src_fd, attr);
  if (tree < 0) return false;
  bool ok = attach_tree(tree, dst_fd);
  int err = errno;
  ::close(tree);
  errno = err;
  return ok;
}

// async-signal-safe
bool mount_fresh(const char* type, int dst_fd, unsigned long flags, const char* data) {
  char target[32];
  fd_path(target, dst_fd);
  return ::mount(type, target, type, flags, data) == 0;
}

// async-signal-safe. Splits "a/b/c" into its parent "a/b" (or "" for the root) and "c".
void split_parent(const char* rel, char (&parent)[PATH_MAX], const char** name) {
  size_t len = std::strlen(rel);
  size_t slash = len;
  while (slash > 0 && rel[slash - 1] != '/') --slash;
  *name = rel + slash;
  size_t plen = slash > 0 ? slash - 1 : 0;
  if (plen >= PATH_MAX) plen = PATH_MAX - 1;
  std::memcpy(parent, rel, plen);
  parent[plen] = '\0';
}

// async-signal-safe
void apply_mount(ChildPlan& plan, int root, int i) {
  MountOp& m = plan.mounts[static_cast<size_t>(i)];
  const char* dst = m.dst.c_str();
  switch (m.kind) {
    case MountOp::Kind::kBind: {
      int fd = mount_point_for(root, m, m.src_is_dir);
      check(plan, fd >= 0, Step::kMountPoint, i);
      check(plan, attach_tree(m.src_fd, fd), Step::kBind, i);
      ::close(fd);
      return;
    }
    case MountOp::Kind::kTmpfs:
    case MountOp::Kind::kProc: {
      int fd = mount_point_for(root, m, true);
      check(plan, fd >= 0, Step::kMountPoint, i);
      bool proc = m.kind == MountOp::Kind::kProc;
      unsigned long flags = MS_NOSUID | MS_NODEV | (proc ? MS_NOEXEC : 0);
      check(plan, mount_fresh(proc ? "proc" : "tmpfs", fd, flags, m.data.c_str()), Step::kMount, i);
      ::close(fd);
      return;
    }
    case MountOp::Kind::kMkdir: {
      int fd = mount_point_for(root, m, true);
      check(plan, fd >= 0, Step::kMountPoint, i);
      ::close(fd);
      return;
    }
    case MountOp::Kind::kFile: {
      int fd = sys::openat2(root, dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
      check(plan, fd >= 0, Step::kMountPoint, i);
      check(plan, sys::write_all(fd, m.data.data(), m.data.size()), Step::kMountPoint, i);
      ::close(fd);
      return;
    }
    case MountOp::Kind::kSymlink: {
      if (m.fresh) {
        check(plan, ::symlinkat(m.src.c_str(), root, dst) == 0, Step::kSymlink, i);
        return;
      }
      char parent[PATH_MAX];
      const char* name;
      split_parent(dst, parent, &name);
      int dir = parent[0] ? make_mount_point(root, parent, true, true) : root;
      check(plan, dir >= 0, Step::kMountPoint, i);
      check(plan, ::symlinkat(m.src.c_str(), dir, name) == 0 || errno == EEXIST, Step::kSymlink, i);
      if (dir != root) ::close(dir);
      return;
    }
    case MountOp::Kind::kMaskFile:
    case MountOp::Kind::kMaskDir:
    case MountOp::Kind::kReadOnly: {
      int fd = open_in_root(root, dst, O_PATH);
      if (fd < 0 && errno == ENOENT) return;  // nothing to hide on this kernel
      check(plan, fd >= 0, Step::kMountPoint, i);
      bool ok;
      if (m.kind == MountOp::Kind::kMaskFile) {
        ok = bind_tree(plan.dev_null_fd, fd,
                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
      } else if (m.kind == MountOp::Kind::kMaskDir) {
        ok = mount_fresh("tmpfs", fd, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                         "size=4k,nr_inodes=1,mode=000");
      } else {
        ok = bind_tree(
            fd, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
      }
      check(plan, ok, Step::kMount, i);
      ::close(fd);
      return;
    }
  }
}

// async-signal-safe. Opens every bind source by its canonical path, refusing symlinks (one
// swapped in since the parent checked is refused), and clones it into a detached mount tree.
// This happens before the stage exists: a recursive clone taken later would contain the stage
// itself whenever a source is an ancestor of it (--bind /tmp, --bind /). It runs before the
// uid change, with the supervisor's own file access: the sources are the operator's choice.
void open_sources(ChildPlan& plan) {
  // No user namespace may be created inside the jail, by any syscall (clone3 included, which
  // seccomp cannot inspect). The limit lives in the jail's own user namespace: the host's
  // setting is untouched. Written before the uid change, while we own the sysctl file.
  if (plan.deny_nested_userns) {
    int fd = sys::open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
    check(plan, fd >= 0 && sys::write(fd, "0", 1) == 1, Step::kUserns);
    ::close(fd);
  }
  // Nothing we mount from here on may propagate back to the host.
  check(plan, ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
        Step::kMakePrivate);
  const int n = static_cast<int>(plan.mounts.size());
  for (int i = 0; i < n; ++i) {
    MountOp& m = plan.mounts[static_cast<size_t>(i)];
    if (m.kind != MountOp::Kind::kBind) continue;
    int fd = sys::openat2(AT_FDCWD, m.src.c_str(), O_PATH | O_CLOEXEC, 0,
                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    check(plan, fd >= 0, Step::kOpenSource, i);
    m.src_fd = clone_tree(fd, m.attr);
    check(plan, m.src_fd >= 0, Step::kBind, i);
    if (i == plan.dev_null_index)
      plan.dev_null_fd = fd;  // masks in /proc clone it again
    else
      ::close(fd);
  }
  if (plan.chroot) {
    int fd = sys::openat2(AT_FDCWD, plan.chroot_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    check(plan, fd >= 0, Step::kStage);
    plan.chroot_fd = clone_tree(fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    check(plan, plan.chroot_fd >= 0, Step::kStage);
    ::close(fd);
  }
}

// async-signal-safe. Builds the jail's root at stage_path and pivots into it.
void build_root(ChildPlan& plan) {
  const int n = static_cast<int>(plan.mounts.size());
  const char* stage = plan.stage_path.c_str();
  if (plan.chroot) {
    int at = sys::open(stage, O_PATH | O_DIRECTORY | O_CLOEXEC);
    check(plan, at >= 0, Step::kStage);
    check(plan, attach_tree(plan.chroot_fd, at), Step::kStage);
    ::close(plan.chroot_fd);
    ::close(at);
  } else {
    check(plan,
          ::mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, plan.stage_options.c_str()) == 0,
          Step::kStage);
  }
  int root = sys::open(stage, O_PATH | O_DIRECTORY | O_CLOEXEC);
  check(plan, root >= 0, Step::kStage);
  for (int i = 0; i < n; ++i) apply_mount(plan, root, i);
  for (auto& m : plan.mounts)
    if (m.src_fd >= 0) ::close(m.src_fd);
  if (plan.dev_null_fd >= 0) ::close(plan.dev_null_fd);
  if (!plan.chroot)
    check(plan, sys::mount_setattr(root, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) == 0,
          Step::kRootReadOnly);
  // pivot_root(".", "."): the old root ends up stacked on the new one and is detached at once,
  // so no path back to the host's tree remains.
  check(plan, ::fchdir(root) == 0, Step::kPivot);
  check(plan, sys::pivot_root(".", ".") == 0, Step::kPivot);
  check(plan, ::umount2(".", MNT_DETACH) == 0, Step::kPivot);
  check(plan, ::chdir("/") == 0, Step::kPivot);
  ::close(root);
}

// async-signal-safe
void bring_up_loopback(const ChildPlan& plan) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  check(plan, s >= 0, Step::kLoopback);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  check(plan, ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0, Step::kLoopback);
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  check(plan, ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0, Step::kLoopback);
  ::close(s);
}

// async-signal-safe. Waits for 'C' (the jail's cgroup is ready) and writes "0" to each `tasks`
// fd it carries (v1; none on v2), which moves this single-threaded process into that hierarchy.
void join_cgroup(const ChildPlan& plan) {
  char c = 0;
  struct iovec iov = {&c, 1};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(kMaxPassedFds * sizeof(int))];
  msghdr msg = recv_header(iov, cbuf, sizeof cbuf);
  if (::recvmsg(plan.sock, &msg, MSG_CMSG_CLOEXEC) != 1 || c != 'C') ::_exit(125);
  int fds[kMaxPassedFds];
  int n = take_fds(msg, fds, kMaxPassedFds);
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || n > kMaxPassedFds)
    report_failure(plan, Step::kCgroupJoin, -1, EMSGSIZE);
  for (int i = 0; i < n; ++i) {
    check(plan, sys::write(fds[i], "0", 1) == 1, Step::kCgroupJoin, -1);
    ::close(fds[i]);
  }
}

// async-signal-safe. All five capability sets cut to the allowlist; the ambient set carries
// the allowed ones across execve (SECBIT_NOROOT means uid 0 alone grants nothing).
void drop_capabilities(const ChildPlan& plan) {
  for (int c = 0; c <= plan.last_cap; ++c) {
    bool keep = false;
    for (cap_value_t k : plan.caps) keep = keep || k == c;
    if (!keep) check(plan, cap_drop_bound(static_cast<cap_value_t>(c)) == 0, Step::kBoundingSet);
  }
  check(plan, cap_set_proc(plan.capset.get()) == 0, Step::kCapSet);
  check(plan, cap_reset_ambient() == 0, Step::kAmbient);
  for (cap_value_t c : plan.caps) check(plan, cap_set_ambient(c, CAP_SET) == 0, Step::kAmbient);
}

// async-signal-safe. Loads the jail's seccomp programs into the calling task only: the
// workload, just before execve. The jail's pid 1 stays outside them, so a policy that denies
// what pid 1 itself needs (wait4, send, kill) cannot cost the supervisor the workload's status.
// Returns false with errno set.
bool load_seccomp(const ChildPlan& plan) {
  if (!plan.clone3_guard.empty()) {
    struct sock_fprog guard = {static_cast<unsigned short>(plan.clone3_guard.size()),
                               const_cast<sock_filter*>(plan.clone3_guard.data())};
    if (sys::seccomp_set_filter(0, &guard) != 0) return false;
  }
  struct sock_fprog prog = {static_cast<unsigned short>(plan.seccomp.size()),
                            const_cast<sock_filter*>(plan.seccomp.data())};
  return sys::seccomp_set_filter(SECCOMP_FILTER_FLAG_LOG, &prog) == 0;
}

volatile pid_t g_workload = 0;

// async-signal-safe: pid 1 passes the supervisor's SIGTERM/SIGINT/SIGHUP on to the workload.
void forward_signal(int sig) {
  if (g_workload > 0) (void)::kill(g_workload, sig);
}

// What a spawned command runs: the workload, or a `stockade exec` command.
struct SpawnContext {
  ChildPlan* plan;
  char* const* argv;
  const int* stdio;  // the exec client's stdin/stdout/stderr, or nullptr to keep pid 1's
  int err;
  bool seccomp_failed;
  bool started;  // clone() succeeded: err is the command's, not clone's
};

alignas(64) char g_spawn_stack[64 * 1024];

// async-signal-safe. Runs in the vfork()ed child, sharing pid 1's memory until execve: resets
// signals, leaves pid 1's session, loads the jail's seccomp filter and executes argv[0] (searched
// in the jail's PATH when it has no '/').
int spawn_command(void* arg) {
  auto* ctx = static_cast<SpawnContext*>(arg);
  const ChildPlan& plan = *ctx->plan;
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < _NSIG; ++s) (void)::sigaction(s, &dfl, nullptr);  // EINVAL for 32/33, KILL
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Its own session, no controlling terminal: TIOCSTI into the host's terminal needs one.
  (void)::setsid();
  if (ctx->stdio != nullptr) {
    for (int i = 0; i < 3; ++i)
      if (::dup2(ctx->stdio[i], i) < 0) {
        ctx->err = errno;
        ctx->seccomp_failed = true;
        ::_exit(125);
      }
    (void)sys::close_range(3, ~0U, 0);
  }
  if (!load_seccomp(plan)) {
    ctx->err = errno;
    ctx->seccomp_failed = true;
    ::_exit(125);
  }
  const char* cmd = ctx->argv[0];
  if (std::strchr(cmd, '/') != nullptr) {
    ::execve(cmd, ctx->argv, plan.envp.data());
    ctx->err = errno;
    ::_exit(127);
  }
  int err = ENOENT;
  bool denied = false;
  char buf[PATH_MAX];
  size_t clen = std::strlen(cmd);
  for (const std::string& dir : plan.path_dirs) {
    if (dir.size() + 1 + clen + 1 > sizeof buf) continue;
    std::memcpy(buf, dir.data(), dir.size());
    buf[dir.size()] = '/';
    std::memcpy(buf + dir.size() + 1, cmd, clen + 1);
    ::execve(buf, ctx->argv, plan.envp.data());
    err = errno;
    if (err == EACCES)
      denied = true;
    else if (err != ENOENT && err != ENOTDIR)
      break;
  }
  ctx->err = denied && (err == ENOENT || err == ENOTDIR) ? EACCES : err;
  ::_exit(127);
}

// async-signal-safe. Starts a command as pid 1's child; returns its pid, or -1 with ctx.err set
// (and the failed child reaped).
pid_t spawn(SpawnContext& ctx) {
  pid_t pid = ::clone(spawn_command, g_spawn_stack + sizeof g_spawn_stack,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
  if (pid < 0) {
    ctx.err = errno;
    return -1;
  }
  ctx.started = true;
  if (ctx.err != 0) {
    int st;
    (void)sys::waitpid(pid, &st, 0);
    return -1;
  }
  return pid;
}

// `stockade exec` commands running in the jail, by the supervisor's slot number.
pid_t g_exec_pid[kMaxExecSessions];
// One request at a time: the strings are only needed until the vfork()ed child has exec'd.
alignas(8) char g_exec_buf[kMaxExecMessage];
char* g_exec_argv[kMaxExecArgs + 1];

void send_report(const ChildPlan& plan, const ChildReport& r) {
  (void)::send(plan.sock, &r, sizeof r, MSG_NOSIGNAL);
}

// async-signal-safe. One message from the supervisor: start a command, or signal one.
void serve_exec(ChildPlan& plan) {
  struct iovec iov = {g_exec_buf, sizeof g_exec_buf};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(3 * sizeof(int))];
  msghdr msg = recv_header(iov, cbuf, sizeof cbuf);
  ssize_t n = ::recvmsg(plan.sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n <= 0) return;  // the supervisor gone: the parent-death signal ends us
  int fds[3] = {-1, -1, -1};
  int all_fds = take_fds(msg, fds, 3);
  int nfds = all_fds < 3 ? all_fds : 3;
  ExecMessage m;
  if (static_cast<size_t>(n) >= sizeof m) std::memcpy(&m, g_exec_buf, sizeof m);
  bool ok = static_cast<size_t>(n) >= sizeof m && m.magic == kExecMagic && m.slot >= 0 &&
            m.slot < kMaxExecSessions;
  if (ok && m.kind == ExecMessage::kSignal) {
    // The command leads its own process group (setsid): signal all of it, as a terminal would.
    pid_t pid = g_exec_pid[m.slot];
    if (pid > 0 && ::kill(-pid, m.sig) != 0) (void)::kill(pid, m.sig);
  } else if (ok && m.kind == ExecMessage::kStart) {
    ChildReport r;
    r.kind = ChildReport::kExecNotRun;
    r.index = m.slot;
    r.step = static_cast<std::int32_t>(Step::kSpawn);
    // argc strings, each NUL-terminated, exactly filling the rest of the message.
    size_t off = sizeof m;
    std::uint32_t argc = 0;
    while (off < static_cast<size_t>(n) && argc < kMaxExecArgs) {
      g_exec_argv[argc++] = g_exec_buf + off;
      const void* nul = std::memchr(g_exec_buf + off, '\0', static_cast<size_t>(n) - off);
      if (nul == nullptr) break;
      off = static_cast<size_t>(static_cast<const char*>(nul) - g_exec_buf) + 1;
    }
    g_exec_argv[argc] = nullptr;
    if (all_fds != 3 || argc == 0 || argc != m.argc || off != static_cast<size_t>(n) ||
        g_exec_pid[m.slot] != 0) {
      r.err = EINVAL;
      send_report(plan, r);
    } else {
      SpawnContext ctx{&plan, g_exec_argv, fds, 0, false, false};
      pid_t pid = spawn(ctx);
      if (pid > 0) {
        g_exec_pid[m.slot] = pid;
      } else {
        r.err = ctx.err;
        if (ctx.seccomp_failed) r.step = static_cast<std::int32_t>(Step::kSeccomp);
        send_report(plan, r);
      }
    }
  }
  for (int i = 0; i < nfds; ++i) ::close(fds[i]);
}

// async-signal-safe. The jail's pid 1: start the workload, reap everything, run `stockade exec`
// commands, report the workload's status. When pid 1 exits the kernel kills whatever is left in
// the jail, exec'd commands included.
[[noreturn]] void run_init(ChildPlan& plan) {
  struct sigaction fwd;
  std::memset(&fwd, 0, sizeof fwd);
  fwd.sa_handler = forward_signal;
  for (int s : {SIGTERM, SIGINT, SIGHUP})
    check(plan, ::sigaction(s, &fwd, nullptr) == 0, Step::kSignals);
  // Children's ends are read from a signalfd, so pid 1 can wait for them and for the
  // supervisor's messages at once.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sigfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  check(plan, sigfd >= 0, Step::kSignals);
  SpawnContext ctx{&plan, plan.argv.data(), nullptr, 0, false, false};
  pid_t pid = spawn(ctx);
  ChildReport r;
  if (pid < 0) {
    errno = ctx.err;
    check(plan, ctx.started, Step::kSpawn);
    r.kind = ctx.seccomp_failed ? ChildReport::kSetupFailed : ChildReport::kExecFailed;
    r.step = static_cast<std::int32_t>(Step::kSeccomp);
    r.err = ctx.err;
    send_report(plan, r);
    ::_exit(0);
  }
  g_workload = pid;
  sigset_t fwd_set;
  sigemptyset(&fwd_set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&fwd_set, s);
  ::sigprocmask(SIG_UNBLOCK, &fwd_set, nullptr);
  struct pollfd fds[2] = {{sigfd, POLLIN, 0}, {plan.sock, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR: a forwarded signal
    if (fds[1].revents & (POLLHUP | POLLERR)) fds[1].fd = -1;
    if (fds[1].revents & POLLIN) serve_exec(plan);
    struct signalfd_siginfo si;
    while (sys::read(sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    for (;;) {
      int st;
      pid_t p = sys::waitpid(-1, &st, WNOHANG);
      if (p <= 0) break;
      if (p == pid) {
        r.kind = ChildReport::kExited;
        r.status = st;
        send_report(plan, r);
        ::_exit(0);
      }
      for (int i = 0; i < kMaxExecSessions; ++i)
        if (g_exec_pid[i] == p) {
          g_exec_pid[i] = 0;
          ChildReport done;
          done.kind = ChildReport::kExecDone;
          done.index = i;
          done.status = st;
          send_report(plan, done);
        }
    }
  }
}

}  // namespace

// async-signal-safe
void child_main(ChildPlan& plan) {
  // Die with the supervisor. If it is already gone the read below sees EOF.
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // No supervisor fd (leases, registry, pidfds) may live on in the jail.
  if (plan.sock > 3) (void)sys::close_range(3, static_cast<unsigned>(plan.sock) - 1, 0);
  (void)sys::close_range(static_cast<unsigned>(plan.sock) + 1, ~0U, 0);
  (void)::setsid();
  // The jail's audit id. Opened now, while we are still the supervisor's uid and dumpable (a
  // non-dumpable task's /proc/self files belong to root, and after the uid change we are no
  // longer root): the number written later is read in the opener's user namespace, this one,
  // so the in-jail uid becomes the jail's host uid in the kernel's records.
  if (plan.loginuid_text[0] != '\0') {
    plan.loginuid_fd = sys::open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
    check(plan, plan.loginuid_fd >= 0, Step::kLoginuid);
  }
  // This needs no id map: it overlaps with the parent writing them.
  open_sources(plan);
  char go;
  if (sys::read(plan.sock, &go, 1) != 1 || go != 'G') ::_exit(125);
  // pid 1 is a copy of the supervisor: its memory (the host environment among it) must not be
  // readable through /proc/1/{mem,environ} from the jail. Not before the maps are written: a
  // rootless parent could no longer open them.
  (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  // Keep capabilities across the uid change below and never regain them through uid 0.
  check(plan,
        cap_set_secbits(SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                        SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED) == 0,
        Step::kSecurebits);
  // The supervisor's supplementary groups (root's among them) must not follow us in.
  // Raw syscalls: glibc's wrappers act on every thread glibc knows of, which are the
  // supervisor's, not ours (see sys::setresuid).
  if (!plan.rootless) check(plan, sys::setgroups_empty() == 0, Step::kSetgroups);
  check(plan, sys::setresgid(plan.gid, plan.gid, plan.gid) == 0, Step::kSetgid);
  check(plan, sys::setresuid(plan.uid, plan.uid, plan.uid) == 0, Step::kSetuid);
  // The kernel clears the parent-death signal on any id change: arm it again. A supervisor that
  // died in between is noticed at the read of 'X' below (end of file).
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

  // The jail's cgroup exists (on v2 we were born in it). On v1, 'C' carries one fd per
  // hierarchy, open on its `tasks` file, and we move ourselves in: a process that moves itself
  // spares the kernel's threadgroup write lock and its RCU grace period (see join_fds). Nothing
  // of the jail's has run yet, and we are its only process. Done before the root is built, so
  // that work is charged to the jail, and the supervisor, which needs our cgroup namespace for
  // the registry entry, writes the entry while we build.
  join_cgroup(plan);
  // Rooted where we are now: the jail's cgroup. Needs CAP_SYS_ADMIN in our user namespace,
  // which we still hold (the uid change kept it, see the securebits above).
  if (plan.unshare_cgroupns) check(plan, ::unshare(CLONE_NEWCGROUP) == 0, Step::kCgroupNs);
  // Our namespaces are final: the supervisor records them in the registry while we build.
  (void)::send(plan.sock, "N", 1, MSG_NOSIGNAL);
  build_root(plan);
  check(plan, ::sethostname(plan.hostname.data(), plan.hostname.size()) == 0, Step::kHostname);
  if (plan.loopback_up) bring_up_loopback(plan);
  for (size_t i = 0; i < plan.rlimits.size(); ++i) {
    struct rlimit rl = {plan.rlimits[i].soft, plan.rlimits[i].hard};
    check(plan, ::setrlimit(static_cast<__rlimit_resource>(plan.rlimits[i].resource), &rl) == 0,
          Step::kRlimit, static_cast<int>(i));
  }
  check(plan, ::chdir(plan.cwd.c_str()) == 0, Step::kChdir);
  drop_capabilities(plan);
  check(plan, ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, Step::kNoNewPrivs);

  // The supervisor has written the registry entry: the workload may start.
  char x;
  if (sys::read(plan.sock, &x, 1) != 1 || x != 'X') ::_exit(125);
  // Written as late as possible, so the jail's own setup (mounts, pivot_root, ...) is not
  // audited as the jail; pid 1 and everything it starts carry it. Setting it needs no privilege
  // while it is unset (the supervisor made sure it is); once set, changing it needs
  // CAP_AUDIT_CONTROL in the host's user namespace, which nothing in the jail can have.
  if (plan.loginuid_fd >= 0) {
    size_t len = std::strlen(plan.loginuid_text);
    check(plan, sys::write(plan.loginuid_fd, plan.loginuid_text, len) == static_cast<ssize_t>(len),
          Step::kLoginuid);
    ::close(plan.loginuid_fd);
    plan.loginuid_fd = -1;
  }
  run_init(plan);
}

const char* step_name(Step s) {
  switch (s) {
    case Step::kSync:
      return "wait for the supervisor";
    case Step::kSecurebits:
      return "lock securebits";
    case Step::kSetgroups:
      return "clear supplementary groups";
    case Step::kSetgid:
      return "set gid";
    case Step::kSetuid:
      return "set uid";
    case Step::kUserns:
      return "limit nested user namespaces";
    case Step::kMakePrivate:
      return "make mounts private";
    case Step::kOpenSource:
      return "open bind source";
    case Step::kStage:
      return "mount the jail's root";
    case Step::kMountPoint:
      return "create mount point";
    case Step::kBind:
      return "bind";
    case Step::kMount:
      return "mount";
    case Step::kSymlink:
      return "create symlink";
    case Step::kPivot:
      return "pivot_root";
    case Step::kRootReadOnly:
      return "make the root read-only";
    case Step::kHostname:
      return "set hostname";
    case Step::kLoopback:
      return "bring up loopback";
    case Step::kRlimit:
      return "set rlimit";
    case Step::kChdir:
      return "chdir";
    case Step::kBoundingSet:
      return "drop the capability bounding set";
    case Step::kCapSet:
      return "set capabilities";
    case Step::kAmbient:
      return "set ambient capabilities";
    case Step::kNoNewPrivs:
      return "set no_new_privs";
    case Step::kSeccomp:
      return "load the seccomp filter";
    case Step::kSignals:
      return "install signal handlers";
    case Step::kSpawn:
      return "start the workload";
    case Step::kCgroupNs:
      return "enter a cgroup namespace rooted at the jail's cgroup";
    case Step::kLoginuid:
      return "set the jail's audit id (loginuid)";
    case Step::kCgroupJoin:
      return "join the jail's cgroup";
  }
  return "setup";
}

}  // namespace supervisor::detail
