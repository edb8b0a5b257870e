// One jail's story, top to bottom, on the host side.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"
#include "netjail/netjail.hpp"
#include "supervisor/detail/exec_relay.hpp"
#include "supervisor/detail/lease.hpp"
#include "supervisor/detail/plan.hpp"
#include "supervisor/detail/signals.hpp"
#include "supervisor/detail/skeleton.hpp"
#include "supervisor/supervisor.hpp"

namespace supervisor {
namespace {

using common::fail;
using common::Result;
using common::UniqueFd;
using detail::ChildReport;
using Clock = std::chrono::steady_clock;

void crash_point(const char* name);

constexpr std::uint64_t kNamespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
                                      CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWNET;

// The jail's pid 1, as seen from the host: killed and reaped unless it was reaped already.
class ChildGuard {
 public:
  ChildGuard(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (reaped_) return;
    // Killing pid 1 takes every process in the jail's pid namespace with it.
    (void)sys::pidfd_send_signal(pidfd_.get(), SIGKILL);
    int st;
    (void)sys::waitpid(pid_, &st, 0);
  }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  void kill(int sig) const { (void)sys::pidfd_send_signal(pidfd_.get(), sig); }
  siginfo_t reap() {
    siginfo_t info{};
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0 &&
           errno == EINTR) {
    }
    reaped_ = true;
    return info;
  }

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  bool reaped_ = false;
};

std::string new_jail_id() {
  unsigned char b[6] = {};
  (void)sys::getrandom(b, sizeof b);  // a failed pool still gives a usable (if guessable) id
  return fmt::format("{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

Result<void> write_proc_file(pid_t pid, const char* name, const std::string& text) {
  std::string path = fmt::format("/proc/{}/{}", pid, name);
  UniqueFd fd{sys::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (!fd) return fail(errno, "open '{}'", path);
  if (sys::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return fail(errno, "write '{}'", path);
  return {};
}

// One id inside maps to the jail's own host id: nothing else of the host is mapped.
Result<void> write_id_maps(pid_t pid, const policy::JailSpec& spec, uid_t host_uid, gid_t host_gid,
                           bool rootless) {
  // Without privilege the kernel demands setgroups be denied before a gid map.
  if (rootless) TRY(write_proc_file(pid, "setgroups", "deny"));
  TRY(write_proc_file(pid, "uid_map", fmt::format("{} {} 1\n", spec.uid, host_uid)));
  TRY(write_proc_file(pid, "gid_map", fmt::format("{} {} 1\n", spec.gid, host_gid)));
  return {};
}

std::map<std::string, std::uint64_t> namespace_inodes(pid_t pid) {
  std::map<std::string, std::uint64_t> out;
  // One lookup of /proc/PID/ns, not seven: each path walk through /proc/PID checks access.
  UniqueFd dir{
      sys::open(fmt::format("/proc/{}/ns", pid).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (!dir) return out;
  for (const char* ns : {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}) {
    struct stat st;
    if (::fstatat(dir.get(), ns, &st, 0) == 0) out[ns] = st.st_ino;
  }
  return out;
}

// The child says 'N' once its namespaces are final: with a cgroup, it makes its cgroup
// namespace itself, once it is inside the jail's cgroup. The registry records them. A child that
// failed first sends its report instead, which is left for watch_jail, as is a signal for us (it
// ends the wait: the jail is torn down from there).
void wait_child_namespaces(int sock, int sigfd) {
  struct pollfd fds[2] = {{sock, POLLIN, 0}, {sigfd, POLLIN, 0}};
  while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if ((fds[0].revents & POLLIN) == 0) return;
  char c = 0;
  if (::recv(sock, &c, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT) == 1 && c == 'N')
    (void)::recv(sock, &c, 1, MSG_DONTWAIT);
}

// The supervisor's own loginuid, or kNoAuditId if unset or unreadable.
std::uint32_t own_loginuid() {
  UniqueFd fd{sys::open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC)};
  char buf[16] = {};
  if (!fd || sys::read(fd.get(), buf, sizeof buf - 1) <= 0) return common::registry::kNoAuditId;
  return static_cast<std::uint32_t>(std::strtoul(buf, nullptr, 10));
}

Result<void> write_own_loginuid(std::uint32_t value) {
  return write_proc_file(::getpid(), "loginuid", std::to_string(value));
}

// A jail's audit id can only be set by the jail's first task itself, and only while its
// loginuid is unset: that task is already in the jail's user namespace, where no capability
// counts for audit. A supervisor started from a login session (loginuid set) therefore lends
// its loginuid out around clone(): it unsets its own (root holds CAP_AUDIT_CONTROL; refused when
// the host locked loginuids with --loginuid-immutable), so the child is born unset, and sets it
// back at once. The supervisor keeps its auid; the kernel gives it a new session id.
class LoginuidLoan {
 public:
  static Result<LoginuidLoan> lend(std::uint32_t current) {
    TRY_CTX(write_own_loginuid(common::registry::kNoAuditId), "unset the supervisor's loginuid");
    return LoginuidLoan(current);
  }
  LoginuidLoan(LoginuidLoan&& o) noexcept : saved_(std::exchange(o.saved_, kNone)) {}
  LoginuidLoan& operator=(LoginuidLoan&&) = delete;
  ~LoginuidLoan() { give_back(); }
  // Restores the supervisor's loginuid (allowed without privilege: it is unset now).
  void give_back() noexcept {
    if (saved_ == kNone) return;
    if (!write_own_loginuid(saved_))
      common::log::warn("could not restore the supervisor's loginuid {}, ignoring", saved_);
    saved_ = kNone;
  }

 private:
  static constexpr std::uint32_t kNone = common::registry::kNoAuditId;
  explicit LoginuidLoan(std::uint32_t saved) : saved_(saved) {}
  std::uint32_t saved_;
};

bool send_byte(int sock, char c) { return ::send(sock, &c, 1, MSG_NOSIGNAL) == 1; }

std::string describe_failure(const detail::ChildPlan& plan, const ChildReport& r) {
  auto step = static_cast<detail::Step>(r.step);
  std::string what = detail::step_name(step);
  if (r.index >= 0 && step == detail::Step::kRlimit &&
      static_cast<size_t>(r.index) < plan.rlimits.size())
    return fmt::format("{} {}", what, plan.rlimits[static_cast<size_t>(r.index)].resource);
  if (r.index >= 0 && static_cast<size_t>(r.index) < plan.mounts.size()) {
    const auto& m = plan.mounts[static_cast<size_t>(r.index)];
    std::string s = fmt::format("{} '{}'", what, m.label);
    if (plan.chroot && step == detail::Step::kMountPoint && r.err == EROFS)
      s += " (the chroot is read-only: create the mount point in it)";
    if (plan.chroot && r.err == EACCES)
      s += " (the jail's host uid cannot enter the chroot: make its directories searchable, o+x)";
    return s;
  }
  if (step == detail::Step::kChdir) return fmt::format("chdir '{}'", plan.cwd);
  return what;
}

struct Watch {
  std::optional<ChildReport> report;
  bool timed_out = false;
  siginfo_t init_exit{};
};

// Forwards signals, enforces the time limit, relays `stockade exec` sessions and collects the
// child's reports until pid 1 exits.
Watch watch_jail(ChildGuard& child, int sock, int sigfd, const policy::JailSpec& spec,
                 detail::ExecRelay* relay) {
  Watch w;
  std::optional<Clock::time_point> deadline, kill_at;
  if (spec.time_limit > 0)
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(spec.time_limit));
  bool sock_open = true;
  auto drain_reports = [&] {
    ChildReport r;
    while (sock_open) {
      ssize_t n = ::recv(sock, &r, sizeof r, MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(sizeof r)) {
        if (r.kind == ChildReport::kExecDone || r.kind == ChildReport::kExecNotRun) {
          if (relay != nullptr) relay->on_report(r);
        } else if (!w.report || w.report->kind == ChildReport::kExited) {
          w.report = r;
        }
        continue;
      }
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) sock_open = false;
      break;
    }
  };
  crash_point("during-watch");
  std::vector<pollfd> fds;
  for (;;) {
    int timeout = -1;
    auto now = Clock::now();
    for (auto& t : {deadline, kill_at}) {
      if (!t) continue;
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(*t - now).count();
      int m = static_cast<int>(std::max<long long>(0, ms));
      timeout = timeout < 0 ? m : std::min(timeout, m);
    }
    fds.assign(
        {{child.pidfd(), POLLIN, 0}, {sigfd, POLLIN, 0}, {sock_open ? sock : -1, POLLIN, 0}});
    if (relay != nullptr) relay->poll_fds(fds);
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) break;  // cannot happen with valid fds; the guard cleans up
    if (n < 0) continue;
    // The relay first: its fds' positions are those it gave before any report changed them.
    if (relay != nullptr) relay->handle(fds, 3);
    if (fds[2].revents) drain_reports();
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (sys::read(sigfd, &si, sizeof si) == sizeof si) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) continue;
        child.kill(sig);  // pid 1 forwards it to the workload
        if (!kill_at)
          kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(spec.kill_grace));
      }
    }
    if (fds[0].revents & POLLIN) {
      w.init_exit = child.reap();
      drain_reports();
      if (relay != nullptr) relay->jail_ended();
      return w;
    }
    now = Clock::now();
    if (deadline && now >= *deadline) {
      w.timed_out = true;
      deadline.reset();
      child.kill(SIGKILL);
    }
    if (kill_at && now >= *kill_at) {
      kill_at.reset();
      child.kill(SIGKILL);
    }
  }
  return w;
}

int status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

Result<Outcome> conclude(const detail::ChildPlan& plan, const policy::JailSpec& spec,
                         const Watch& w) {
  Outcome out;
  if (w.report && w.report->kind == ChildReport::kSetupFailed)
    return fail(w.report->err, "{}", describe_failure(plan, *w.report));
  if (w.report && w.report->kind == ChildReport::kExecFailed) {
    int err = w.report->err;
    if (err == ENOENT || err == ENOTDIR) {
      out.exit_code = 127;
      out.note = fmt::format("'{}': command not found in the jail", spec.argv[0]);
    } else {
      out.exit_code = 126;
      out.note = fmt::format("cannot execute '{}': {}", spec.argv[0], std::strerror(err));
    }
    return out;
  }
  if (w.report && w.report->kind == ChildReport::kExited) {
    out.exit_code = status_to_code(w.report->status);
    if (w.timed_out)
      out.note = fmt::format("time limit of {}s reached: the jail was killed", spec.time_limit);
    return out;
  }
  // pid 1 died without a word: killed by us (time limit, grace) or by the kernel (OOM).
  if (w.timed_out) {
    out.exit_code = 128 + SIGKILL;
    out.note = fmt::format("time limit of {}s reached: the jail was killed", spec.time_limit);
    return out;
  }
  if (w.init_exit.si_code == CLD_EXITED)
    return fail(0, "the jail's pid 1 ended (status {}) without reporting the workload's status",
                w.init_exit.si_status);
  out.exit_code =
      w.init_exit.si_code == CLD_EXITED ? w.init_exit.si_status : 128 + w.init_exit.si_status;
  out.note = fmt::format("the jail's init was killed by signal {}", w.init_exit.si_status);
  return out;
}

// Test hook (docs/policy.md, "Crash-safety hook"): STOCKADE_TEST_CRASH_AT=NAME makes the
// supervisor SIGKILL itself at that point, so tests can prove `stockade gc` cleans up after a
// supervisor that dies anywhere. Compiled in always: tests exercise the very binary that ships,
// and the hook grants nothing (whoever sets our environment can kill us anyway).
void crash_point(const char* name) {
  static const char* const at = ::getenv("STOCKADE_TEST_CRASH_AT");
  if (at != nullptr && std::strcmp(at, name) == 0) ::raise(SIGKILL);
}

// The device numbers behind --device paths, for the device controller.
Result<std::vector<cgroup::DeviceRule>> device_rules(const policy::JailSpec& spec) {
  std::vector<cgroup::DeviceRule> out;
  for (const auto& d : spec.devices) {
    struct stat st;
    if (::stat(d.path.c_str(), &st) != 0) return fail(errno, "--device '{}'", d.path);
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
      return fail(ENODEV, "--device '{}' is not a device node", d.path);
    out.push_back(
        {S_ISCHR(st.st_mode) ? 'c' : 'b', major(st.st_rdev), minor(st.st_rdev), d.access, d.path});
  }
  return out;
}

// What the jail's cgroup will be, as root: the policy's limits plus the default pids limit.
// Rootless jails get none (check_enforceable refused explicit limits already).
struct CgroupRequest {
  cgroup::Plan plan;
  cgroup::Limits limits;
};

Result<std::optional<CgroupRequest>> plan_cgroup(const policy::JailSpec& spec,
                                                 const std::string& id, bool rootless) {
  if (rootless) return std::nullopt;
  cgroup::Limits limits;
  limits.memory_bytes = spec.cgroup.memory_bytes;
  limits.pids = spec.cgroup.pids.value_or(policy::kDefaultPidsLimit);
  limits.cpu_ms_per_sec = spec.cgroup.cpu_ms_per_sec;
  limits.devices = TRY(device_rules(spec));
  auto plan = cgroup::plan_jail(cgroup::host_layout(), limits, spec.cgroup_parent, id);
  if (!plan) {
    // The default pids limit is a safety net, not a request: a host without a usable pids
    // controller still runs jails (RLIMIT_NPROC remains); anything the policy asked for fails.
    if (!spec.cgroup.any() && spec.devices.empty()) return std::nullopt;
    return std::unexpected(plan.error());
  }
  if (plan->version == cgroup::Version::kNone) return std::nullopt;
  return CgroupRequest{std::move(*plan), std::move(limits)};
}

std::string size_text(std::uint64_t b) {
  if (b % (1ull << 30) == 0) return fmt::format("{}G", b >> 30);
  if (b % (1ull << 20) == 0) return fmt::format("{}M", b >> 20);
  if (b % (1ull << 10) == 0) return fmt::format("{}K", b >> 10);
  return fmt::format("{} bytes", b);
}

// Says why the jail ended when the kernel's OOM killer was involved.
void add_oom_note(const policy::JailSpec& spec, const cgroup::JailCgroup& cg, Outcome& out) {
  std::uint64_t kills = cg.oom_kills();
  if (kills == 0 || !spec.cgroup.memory_bytes) return;
  std::string note = fmt::format(
      "memory limit of {} reached: the kernel OOM-killed {} process{} in the jail (exit {})",
      size_text(*spec.cgroup.memory_bytes), kills, kills == 1 ? "" : "es", out.exit_code);
  out.note = out.note.empty() ? note : out.note + "; " + note;
}

}  // namespace

const std::vector<std::string>& crash_points() {
  static const std::vector<std::string> kPoints = {
      "after-lease",
      "after-network-reserve",
      "after-plan",
      "after-registry-dir",
      "after-clone",
      "after-cgroup-dir",
      "after-cgroup-create",
      "after-cgroup-attach",
      "after-id-maps",
      "after-go",
      "after-network-attach",
      "after-exec-socket",
      "after-namespaces",
      "after-registry-write",
      "after-release",
      "during-watch",
      "after-reap",
      "after-oom-check",
      "after-conclude",
      "after-registry-remove",
      "during-cgroup-remove",
      "after-cgroup-remove",
      "after-network-teardown",
      "before-lease-release",
      "after-lease-release",
  };
  return kPoints;
}

Result<Outcome> run(const policy::JailSpec& spec) {
  // From here on SIGTERM/SIGINT/SIGHUP are read from a signalfd, so they end the jail through
  // the normal path and every guard below still runs.
  detail::BlockedSignals signals{SIGTERM, SIGINT, SIGHUP, SIGCHLD};
  const bool rootless = ::geteuid() != 0;
  const bool bridged = spec.net == policy::NetMode::kBridge;
  if (bridged && rootless)
    return fail(EPERM,
                "network mode 'bridge' needs root (a veth, a bridge and nftables rules on the "
                "host); without root use --net loopback or none");

  // The id comes first: the lease names it, so gc can tell a live jail's objects from a dead
  // one's by whether its lease is still locked. The lease comes before any object on the host.
  // A bridged jail needs its host uid before clone (it is the jail's packet mark), the others
  // for the id maps.
  const std::string id = new_jail_id();
  std::optional<detail::IdLease> lease;
  uid_t host_uid = ::getuid();
  gid_t host_gid = ::getgid();
  if (!rootless) {
    lease.emplace(TRY(detail::lease_host_id(spec.host_ids, detail::default_lease_dir(), id)));
    host_uid = host_gid = lease->id();
    crash_point("after-lease");
  }
  // Declared before the child: torn down after the jail is dead.
  std::optional<netjail::Jail> net;
  detail::EtcFiles etc_files;
  if (bridged) {
    // The jail's packet mark is its host uid: unique among running jails, like the lease.
    net.emplace(TRY_CTX(netjail::reserve(spec, id, host_uid), "network"));
    etc_files = {{"hosts", net->files().hosts}, {"resolv.conf", net->files().resolv_conf}};
    crash_point("after-network-reserve");
  }
  auto plan = TRY(detail::make_plan(spec, rootless, etc_files));
  crash_point("after-plan");
  const std::string reg_dir = common::registry::default_dir();
  if (!reg_dir.empty()) TRY_CTX(common::registry::ensure_dir(reg_dir), "registry");
  crash_point("after-registry-dir");

  // Limits are in force before the jail runs anything of its own: the cgroup is made before
  // clone. On v2 the child is born inside it (CLONE_INTO_CGROUP); on v1 the child moves itself
  // in on 'C' (below), through each hierarchy's `tasks` file opened here (a move by pid would
  // wait for an RCU grace period, 5-15 ms on the test VM). Declared before the child, so it is
  // removed after the child is gone.
  auto cg_request = TRY(plan_cgroup(spec, id, rootless));
  std::optional<cgroup::JailCgroup> cg;
  std::vector<UniqueFd> cg_join;
  if (cg_request) {
    cg.emplace(TRY(cgroup::create(cg_request->plan, cg_request->limits, crash_point)));
    crash_point("after-cgroup-create");
    cg_join = TRY(cg->join_fds());  // v1 only
  }
  plan->unshare_cgroupns = cg_request.has_value();

  UniqueFd sigfd = signals.signalfd();
  if (!sigfd) return fail(errno, "signalfd");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return fail(errno, "socketpair");
  UniqueFd sock{sv[0]}, child_sock{sv[1]};
  plan->sock = sv[1];

  // The jail's audit id is its host uid (unique per jail); rootless jails share the caller's uid
  // and get none.
  std::uint32_t audit_id = common::registry::kNoAuditId;
  bool audited = false;
  std::optional<LoginuidLoan> loan;
  if (!rootless) {
    std::uint32_t own = own_loginuid();
    if (own != common::registry::kNoAuditId) {
      auto lent = LoginuidLoan::lend(own);
      if (lent)
        loan.emplace(std::move(*lent));
      else
        common::log::warn("the jail gets no audit id (stockade watch will not see it): {}",
                          lent.error().message());
    }
    if (own == common::registry::kNoAuditId || loan) {
      audited = true;  // audit_id is the host uid, set once it is leased
      auto text = fmt::format("{}", spec.uid);
      std::memcpy(plan->loginuid_text, text.data(),
                  std::min(text.size(), sizeof plan->loginuid_text - 1));
    }
  }

  // The supervisor is single-threaded from here to the end of the jail. (A setup thread beside
  // clone3 used to make the lease and the v1 cgroup: once clone3 had shared the pages, every
  // write by either thread cost a copy and a TLB shootdown on the other CPU, and a launch took
  // ~14 % more CPU time; bench/README.md.)
  int pidfd = -1;
  struct clone_args args {};
  // With a cgroup the child makes its cgroup namespace itself, once it is inside the jail's
  // cgroup; one made here would be rooted at the supervisor's.
  args.flags =
      (cg_request ? kNamespaces & ~std::uint64_t{CLONE_NEWCGROUP} : kNamespaces) | CLONE_PIDFD;
  if (cg && cg->clone_fd() >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<std::uint64_t>(cg->clone_fd());
  }
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  pid_t pid = sys::clone3(&args);
  if (pid == 0) detail::child_main(*plan);
  if (loan) loan->give_back();
  if (pid < 0) return fail(errno, "clone into new namespaces");
  ChildGuard child(pid, pidfd);
  child_sock.reset();
  crash_point("after-clone");

  if (audited) audit_id = host_uid;
  TRY_CTX(write_id_maps(pid, spec, host_uid, host_gid, rootless), "map ids");
  crash_point("after-id-maps");
  if (!send_byte(sock.get(), 'G')) return fail(errno, "release the child");
  crash_point("after-go");
  // The cgroup is ready: the child joins it (v1: through these fds), makes its cgroup namespace
  // and goes on.
  {
    std::vector<int> join_fds;
    for (auto& fd : cg_join) join_fds.push_back(fd.get());
    const char c = 'C';
    if (!detail::send_with_fds(sock.get(), &c, 1, join_fds.data(), join_fds.size()))
      return fail(errno, "release the child");
  }
  cg_join.clear();
  crash_point("after-cgroup-attach");

  // The network is built while the child builds its root; the workload waits for 'X'.
  if (net) {
    std::string ns = fmt::format("/proc/{}/ns/net", pid);
    // pid is our unreaped child, so it names the jail's netns, not a recycled process.
    UniqueFd netns{sys::open(ns.c_str(), O_RDONLY | O_CLOEXEC)};
    if (!netns) return fail(errno, "network: open '{}'", ns);
    TRY_CTX(net->attach(netns.get()), "network");
    crash_point("after-network-attach");
  }

  // `stockade exec` can reach the jail from the moment its registry entry exists.
  std::optional<detail::ExecRelay> relay;
  if (!reg_dir.empty()) {
    relay.emplace(TRY(detail::ExecRelay::listen(reg_dir, id, sock.get())));
    crash_point("after-exec-socket");
  }
  // The registry entry exists before the workload starts (the child waits for 'X'). All of it
  // but the namespaces is ready before the child says they are final.
  common::registry::JailRecord rec;
  if (!reg_dir.empty()) {
    rec.id = id;
    rec.supervisor_pid = ::getpid();
    rec.init_pid = pid;
    rec.host_uid = host_uid;
    rec.host_gid = host_gid;
    rec.uid = spec.uid;
    rec.gid = spec.gid;
    rec.rootless = rootless;
    rec.audit_id = audit_id;
    rec.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    rec.command = spec.argv;
    rec.policy_digest = policy::digest(spec);
    rec.hostname = spec.hostname;
    rec.net = spec.net == policy::NetMode::kNone     ? "none"
              : spec.net == policy::NetMode::kBridge ? "bridge"
                                                     : "loopback";
    if (net) {
      rec.bridge = net->bridge();
      rec.veth = net->veth();
      rec.ipv4 = net->ipv4();
      rec.ipv6 = net->ipv6();
      rec.mark = net->mark();
    }
    if (cg) {
      rec.cgroup_version = cgroup::version_name(cg->plan().version);
      rec.cgroups = cg->plan().dirs;
    }
  }
  wait_child_namespaces(sock.get(), sigfd.get());
  crash_point("after-namespaces");
  std::optional<common::registry::Entry> entry;
  if (!reg_dir.empty()) {
    rec.namespaces = namespace_inodes(pid);
    TRY_CTX(common::registry::write(reg_dir, rec), "registry");
    entry.emplace(reg_dir, id);
  }
  crash_point("after-registry-write");
  // A child that already failed has closed its end; its report explains why.
  (void)send_byte(sock.get(), 'X');
  crash_point("after-release");

  Watch w = watch_jail(child, sock.get(), sigfd.get(), spec, relay ? &*relay : nullptr);
  relay.reset();  // no new sessions: the jail is gone
  crash_point("after-reap");
  auto outcome = conclude(*plan, spec, w);
  if (outcome && cg) add_oom_note(spec, *cg, *outcome);
  crash_point("after-oom-check");

  // Teardown in the order the guards would do it, spelt out so the crash points sit between
  // the steps: registry entry, cgroup (its processes are gone with pid 1), lease.
  crash_point("after-conclude");
  entry.reset();
  // The watcher's alert tally of the jail (if any) goes with its entry.
  if (!reg_dir.empty())
    (void)::unlink((common::registry::alerts_dir(reg_dir) + "/" + id + ".json").c_str());
  crash_point("after-registry-remove");
  if (cg) {
    if (auto removed = cg->remove(crash_point); !removed && outcome)
      common::log::warn("{}, ignoring (stockade gc removes it)", removed.error().message());
  }
  crash_point("after-cgroup-remove");
  net.reset();  // the jail's nftables objects and neighbours; its veth went with its netns
  crash_point("after-network-teardown");
  crash_point("before-lease-release");
  lease.reset();
  crash_point("after-lease-release");
  return outcome;
}

}  // namespace supervisor
