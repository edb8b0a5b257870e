// Attack programs, run inside jails by the tests. `attack NAME [ARGS]` performs one attack and
// prints "errno=NAME" (the attack failed with that error) or "ok" (it worked); exit status 0
// means the attack was carried out and reported, 2 means a bad name or bad arguments.
//
// Some attacks report a value instead ("capeff=...", "fds=...", "uid_map=..."). Every attack is
// one system call (or the smallest sequence that reaches it), so the tests can tell which
// barrier stopped it from the errno alone.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Args = std::vector<std::string>;

int report(long rc) {
  if (rc >= 0)
    std::printf("ok\n");
  else
    std::printf("errno=%s\n", strerrorname_np(errno));
  return 0;
}

// Reports the errno of a failed open, or -1 if the open worked (the caller goes on with fd).
int report_if_failed(int fd) {
  if (fd >= 0) return -1;
  return report(-1);
}

pid_t parse_pid(const std::string& s) {
  return static_cast<pid_t>(std::strtol(s.c_str(), nullptr, 10));
}

int do_setns(const Args& a) {
  int fd = ::open(a.at(0).c_str(), O_RDONLY | O_CLOEXEC);
  if (int r = report_if_failed(fd); r >= 0) return r;
  return report(::setns(fd, 0));
}

int do_ptrace(const Args& a) { return report(::ptrace(PTRACE_ATTACH, parse_pid(a.at(0)), 0, 0)); }

int do_kill(const Args& a) { return report(::kill(parse_pid(a.at(0)), SIGKILL)); }

int do_read(const Args& a) {
  int fd = ::open(a.at(0).c_str(), O_RDONLY | O_CLOEXEC);
  if (int r = report_if_failed(fd); r >= 0) return r;
  char c;
  return report(::read(fd, &c, 1));
}

int do_write(const Args& a) {
  int fd = ::open(a.at(0).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (int r = report_if_failed(fd); r >= 0) return r;
  return report(::write(fd, "x", 1) == 1 ? 0 : -1);
}

int do_create(const Args& a) {
  return report(::open(a.at(0).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
}

int do_remount_rw(const Args& a) {
  return report(::mount(nullptr, a.at(0).c_str(), nullptr, MS_REMOUNT | MS_BIND, nullptr));
}

int do_mount_tmpfs(const Args& a) {
  return report(::mount("tmpfs", a.at(0).c_str(), "tmpfs", 0, "size=1m"));
}

// "capeff=<16 hex digits>" exactly as the kernel prints it.
int do_capeff(const Args&) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    std::string v = line.substr(7);
    v.erase(0, v.find_first_not_of(" \t"));
    std::printf("capeff=%s\n", v.c_str());
    return 0;
  }
  return report(-1);
}

int do_bind_port(const Args& a) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (int r = report_if_failed(s); r >= 0) return r;
  int one = 1;
  (void)::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(a.at(0))));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  return report(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
}

// "fds=3,7" : every open fd except stdio and the one reading the directory.
int do_fds(const Args&) {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return report(-1);
  std::string list;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == ::dirfd(d)) continue;
    list += (list.empty() ? "" : ",") + std::string(e->d_name);
  }
  ::closedir(d);
  std::printf("fds=%s\n", list.c_str());
  return 0;
}

// Makes stdin (a tty) our controlling terminal if we can, so that with dev.tty.legacy_tiocsti=1
// the kernel itself would allow TIOCSTI and only the seccomp filter stands in the way.
void take_controlling_tty() {
  (void)::setsid();  // fails harmlessly if we already lead a session
  (void)::ioctl(0, TIOCSCTTY, 0);
}

// Reports whether stdin could be made the controlling terminal (see take_controlling_tty).
int do_ctty(const Args&) {
  (void)::setsid();
  return report(::ioctl(0, TIOCSCTTY, 0));
}

int do_tiocsti(const Args&) {
  take_controlling_tty();
  char c = 'x';
  return report(::ioctl(0, TIOCSTI, &c));
}

// The same request with junk in the upper 32 bits of cmd: the kernel ignores them, a filter
// comparing all 64 bits would not.
int do_tiocsti_high(const Args&) {
  take_controlling_tty();
  char c = 'x';
  unsigned long cmd = 0x100000000UL | TIOCSTI;
  return report(::syscall(SYS_ioctl, 0, cmd, &c));
}

int do_unshare_user(const Args&) { return report(::unshare(CLONE_NEWUSER)); }

int do_unshare_net(const Args&) { return report(::unshare(CLONE_NEWNET)); }

// The raw clone syscall with one namespace flag; the child (if any) exits at once.
int raw_clone(unsigned long flags) {
  long pid = ::syscall(SYS_clone, flags | SIGCHLD, 0, nullptr, nullptr, 0);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return report(pid);
}

int do_clone_newuser(const Args&) { return raw_clone(CLONE_NEWUSER); }

int do_clone_newns(const Args&) { return raw_clone(CLONE_NEWNS); }

// clone3, with or without namespace flags: a filter cannot see its flags, so whatever stops
// nested namespaces must work on this path too.
int raw_clone3(std::uint64_t flags) {
  struct clone_args args {};
  args.flags = flags;
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return report(pid);
}

// No flags: tells whether the filter answers clone3 at all.
int do_clone3(const Args&) { return raw_clone3(0); }

int do_clone3_newuser(const Args&) { return raw_clone3(CLONE_NEWUSER); }

int do_clone3_newnet(const Args&) { return raw_clone3(CLONE_NEWNET); }

// "shocker": a made-up handle for the root directory's filesystem.
int do_open_by_handle(const Args&) {
  alignas(file_handle) unsigned char buf[sizeof(file_handle) + 8] = {};
  auto* fh = reinterpret_cast<file_handle*>(buf);
  fh->handle_bytes = 8;
  fh->handle_type = 1;           // FILEID_INO32_GEN
  buf[sizeof(file_handle)] = 2;  // inode 2, the root of most filesystems
  return report(::open_by_handle_at(AT_FDCWD, fh, O_RDONLY));
}

int do_bpf(const Args&) {
  union bpf_attr attr {};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  return report(::syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

int do_keyctl(const Args&) {
  constexpr long kGetKeyringId = 0;     // KEYCTL_GET_KEYRING_ID
  constexpr long kSessionKeyring = -3;  // KEY_SPEC_SESSION_KEYRING
  return report(::syscall(SYS_keyctl, kGetKeyringId, kSessionKeyring, 0));
}

int do_userfaultfd(const Args&) {
  return report(::syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
}

int do_io_uring(const Args&) {
  struct io_uring_params p {};
  return report(::syscall(SYS_io_uring_setup, 1, &p));
}

int do_vsock(const Args&) { return report(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

int do_perf(const Args&) {
  struct perf_event_attr attr {};
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  return report(::syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

// An empty image: a kernel that got this far would refuse it, so nothing is ever loaded.
int do_init_module(const Args&) {
  static char empty[1];
  return report(::syscall(SYS_init_module, empty, 0, ""));
}

// "uid_map=0 65534 1": the first line of /proc/self/uid_map, blanks squeezed.
int do_uid_map(const Args&) {
  std::ifstream f("/proc/self/uid_map");
  std::string line;
  if (!std::getline(f, line)) return report(-1);
  std::istringstream in(line);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  std::printf("uid_map=%s\n", out.c_str());
  return 0;
}

int do_sysctl_write(const Args& a) {
  int fd = ::open(a.at(0).c_str(), O_WRONLY | O_CLOEXEC);
  if (int r = report_if_failed(fd); r >= 0) return r;
  const std::string& v = a.at(1);
  return report(::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size()) ? 0 : -1);
}

// A TCP connection to ADDR:PORT within 2 s, optionally from SRC (bound with IP_FREEBIND, so a
// spoofed address needs no configuration): "ok", or errno=ETIMEDOUT when packets are dropped.
int tcp_connect(const std::string& addr, const std::string& port, const std::string& src) {
  bool six = addr.find(':') != std::string::npos;
  sockaddr_storage to{}, from{};
  socklen_t len = six ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  auto fill = [&](sockaddr_storage& ss, const std::string& a, int p) {
    if (six) {
      auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
      in->sin6_family = AF_INET6;
      in->sin6_port = htons(static_cast<uint16_t>(p));
      return inet_pton(AF_INET6, a.c_str(), &in->sin6_addr) == 1;
    }
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(p));
    return inet_pton(AF_INET, a.c_str(), &in->sin_addr) == 1;
  };
  if (!fill(to, addr, std::stoi(port)) || (!src.empty() && !fill(from, src, 0))) {
    std::fprintf(stderr, "attack: bad address\n");
    return 2;
  }
  int s = ::socket(six ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (int r = report_if_failed(s); r >= 0) return r;
  if (!src.empty()) {
    int one = 1;
    (void)::setsockopt(s, six ? SOL_IPV6 : SOL_IP, six ? IPV6_FREEBIND : IP_FREEBIND, &one,
                       sizeof one);
    if (::bind(s, reinterpret_cast<sockaddr*>(&from), len) != 0) return report(-1);
  }
  if (::connect(s, reinterpret_cast<sockaddr*>(&to), len) == 0) return report(0);
  if (errno != EINPROGRESS) return report(-1);
  pollfd p{s, POLLOUT, 0};
  if (::poll(&p, 1, 2000) == 0) {
    errno = ETIMEDOUT;
    return report(-1);
  }
  int err = 0;
  socklen_t el = sizeof err;
  (void)::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
  errno = err;
  return report(err == 0 ? 0 : -1);
}

int do_connect(const Args& a) { return tcp_connect(a.at(0), a.at(1), ""); }
int do_connect_from(const Args& a) { return tcp_connect(a.at(0), a.at(1), a.at(2)); }

// One UDP datagram to ADDR:PORT and a reply within 2 s: "ok" or errno=ETIMEDOUT.
int do_udp_query(const Args& a) {
  bool six = a.at(0).find(':') != std::string::npos;
  sockaddr_storage to{};
  socklen_t len = six ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (six) {
    auto* in = reinterpret_cast<sockaddr_in6*>(&to);
    in->sin6_family = AF_INET6;
    in->sin6_port = htons(static_cast<uint16_t>(std::stoi(a.at(1))));
    inet_pton(AF_INET6, a.at(0).c_str(), &in->sin6_addr);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&to);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(std::stoi(a.at(1))));
    inet_pton(AF_INET, a.at(0).c_str(), &in->sin_addr);
  }
  int s = ::socket(six ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (int r = report_if_failed(s); r >= 0) return r;
  if (::sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&to), len) != 1) return report(-1);
  pollfd p{s, POLLIN, 0};
  if (::poll(&p, 1, 2000) == 0) {
    errno = ETIMEDOUT;
    return report(-1);
  }
  char buf[64];
  return report(::recv(s, buf, sizeof buf, 0));
}

// Opens PATH for r, w or rw and reports only the open: device nodes whose read/write say nothing.
int do_open(const Args& a) {
  int flags = a.at(1) == "rw" ? O_RDWR : a.at(1) == "w" ? O_WRONLY : O_RDONLY;
  return report(::open(a.at(0).c_str(), flags | O_CLOEXEC));
}

// Forks children that wait, until fork fails: "forked=N errno=E". The children are killed after.
int do_fork_bomb(const Args&) {
  std::vector<pid_t> kids;
  int err = 0;
  while (kids.size() < 100000) {
    pid_t p = ::fork();
    if (p == 0) {
      ::pause();
      ::_exit(0);
    }
    if (p < 0) {
      err = errno;
      break;
    }
    kids.push_back(p);
  }
  std::printf("forked=%zu errno=%s\n", kids.size(), err ? strerrorname_np(err) : "none");
  std::fflush(stdout);
  for (pid_t k : kids) ::kill(k, SIGKILL);
  for (pid_t k : kids) ::waitpid(k, nullptr, 0);
  return 0;
}

// Allocates and touches MB mebibytes, one at a time: "touched=MB" if nothing stopped it.
int do_memhog(const Args& a) {
  long mb = std::strtol(a.at(0).c_str(), nullptr, 10);
  for (long i = 0; i < mb; ++i) {
    char* p = static_cast<char*>(std::malloc(1 << 20));
    if (p == nullptr) return report(-1);
    std::memset(p, 1, 1 << 20);
  }
  std::printf("touched=%ld\n", mb);
  return 0;
}

// Busy for SECONDS of wall time: "cpu_ms=C wall_ms=W".
int do_spin(const Args& a) {
  auto ms = [](clockid_t c) {
    struct timespec t;
    ::clock_gettime(c, &t);
    return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
  };
  double wall0 = ms(CLOCK_MONOTONIC), cpu0 = ms(CLOCK_PROCESS_CPUTIME_ID);
  double limit = std::strtod(a.at(0).c_str(), nullptr) * 1000;
  volatile unsigned long x = 0;
  while (ms(CLOCK_MONOTONIC) - wall0 < limit)
    for (int i = 0; i < 100000; ++i) x = x + 1;
  std::printf("cpu_ms=%.0f wall_ms=%.0f\n", ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0,
              ms(CLOCK_MONOTONIC) - wall0);
  return 0;
}

// What the jail sees of cgroups: its /proc/self/cgroup lines, how many cgroup filesystems are
// mounted in it, and whether it can mount one: "cgroup=L1|L2|... mounts=N mount=errno=E".
int do_cgroup_view(const Args&) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, lines;
  while (std::getline(in, line)) lines += (lines.empty() ? "" : "|") + line;
  std::ifstream mi("/proc/self/mountinfo");
  int mounts = 0;
  while (std::getline(mi, line))
    if (line.find(" - cgroup") != std::string::npos) ++mounts;
  int rc = ::mount("cgroup2", "/tmp", "cgroup2", 0, nullptr);
  std::printf("cgroup=%s mounts=%d mount=%s\n", lines.c_str(), mounts,
              rc == 0 ? "ok" : strerrorname_np(errno));
  return 0;
}

// Receives one fd over the unix socket at PATH (SCM_RIGHTS) and calls setns on it: a namespace
// fd passed in from outside the jail. Keeps the fd a second longer, as an attacker retrying would.
int do_recv_setns(const Args& a) {
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", a.at(0).c_str());
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return report(-1);
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  if (::recvmsg(s, &msg, MSG_CMSG_CLOEXEC) <= 0) return report(-1);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) {
    std::printf("no-fd\n");
    return 0;
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  int rc = report(::setns(fd, 0));
  std::fflush(stdout);
  ::sleep(1);
  return rc;
}

// Writes VALUE to /proc/self/loginuid: a jail changing the audit id it is known by.
int do_loginuid_write(const Args& a) {
  int fd = ::open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
  if (int r = report_if_failed(fd); r >= 0) return r;
  const std::string& v = a.at(0);
  return report(::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size()) ? 0 : -1);
}

// "loginuid=N": the audit id as the jail sees it (its own uid if the id maps to it).
int do_loginuid(const Args&) {
  std::ifstream f("/proc/self/loginuid");
  std::string v;
  f >> v;
  std::printf("loginuid=%s\n", v.c_str());
  return 0;
}

// An event storm for benchmarks: COUNT setns(-1, 0) calls at up to RATE per second (0: as fast
// as it goes).
int do_storm(const Args& a) {
  long count = std::strtol(a.at(0).c_str(), nullptr, 10);
  double rate = std::strtod(a.at(1).c_str(), nullptr);
  // In chunks of a millisecond's worth, sleeping in between: a generator that spins would take
  // a core from the watcher it is measuring.
  long chunk = rate > 0 ? std::max(1L, static_cast<long>(rate / 1000)) : count;
  struct timespec start;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < count; i += chunk) {
    if (rate > 0) {
      double due = static_cast<double>(i) / rate;
      struct timespec at = start;
      at.tv_sec += static_cast<time_t>(due);
      at.tv_nsec += static_cast<long>((due - static_cast<double>(static_cast<time_t>(due))) * 1e9);
      if (at.tv_nsec >= 1000000000L) {
        at.tv_sec += 1;
        at.tv_nsec -= 1000000000L;
      }
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
      }
    }
    for (long j = i; j < std::min(count, i + chunk); ++j) (void)::setns(-1, 0);
  }
  std::printf("storm=%ld\n", count);
  return 0;
}

struct Attack {
  size_t nargs;
  std::function<int(const Args&)> fn;
};

const std::map<std::string, Attack>& attacks() {
  static const std::map<std::string, Attack> kAttacks = {
      {"setns", {1, do_setns}},
      {"ptrace", {1, do_ptrace}},
      {"kill", {1, do_kill}},
      {"read", {1, do_read}},
      {"write", {1, do_write}},
      {"create", {1, do_create}},
      {"remount-rw", {1, do_remount_rw}},
      {"mount-tmpfs", {1, do_mount_tmpfs}},
      {"capeff", {0, do_capeff}},
      {"bind-port", {1, do_bind_port}},
      {"fds", {0, do_fds}},
      {"ctty", {0, do_ctty}},
      {"tiocsti", {0, do_tiocsti}},
      {"tiocsti-high", {0, do_tiocsti_high}},
      {"unshare-user", {0, do_unshare_user}},
      {"unshare-net", {0, do_unshare_net}},
      {"clone-newuser", {0, do_clone_newuser}},
      {"clone-newns", {0, do_clone_newns}},
      {"clone3", {0, do_clone3}},
      {"clone3-newuser", {0, do_clone3_newuser}},
      {"clone3-newnet", {0, do_clone3_newnet}},
      {"open-by-handle", {0, do_open_by_handle}},
      {"bpf", {0, do_bpf}},
      {"keyctl", {0, do_keyctl}},
      {"userfaultfd", {0, do_userfaultfd}},
      {"io-uring", {0, do_io_uring}},
      {"vsock", {0, do_vsock}},
      {"perf", {0, do_perf}},
      {"init-module", {0, do_init_module}},
      {"uid-map", {0, do_uid_map}},
      {"sysctl-write", {2, do_sysctl_write}},
      {"connect", {2, do_connect}},
      {"connect-from", {3, do_connect_from}},
      {"udp-query", {2, do_udp_query}},
      {"fork-bomb", {0, do_fork_bomb}},
      {"open", {2, do_open}},
      {"memhog", {1, do_memhog}},
      {"spin", {1, do_spin}},
      {"cgroup-view", {0, do_cgroup_view}},
      {"recv-setns", {1, do_recv_setns}},
      {"loginuid-write", {1, do_loginuid_write}},
      {"loginuid", {0, do_loginuid}},
      {"storm", {2, do_storm}},
  };
  return kAttacks;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: attack NAME [ARGS]\n");
    return 2;
  }
  std::string name = argv[1];
  Args args(argv + 2, argv + argc);
  auto it = attacks().find(name);
  if (it == attacks().end()) {
    std::fprintf(stderr, "attack: unknown attack '%s'\n", name.c_str());
    return 2;
  }
  if (args.size() != it->second.nargs) {
    std::fprintf(stderr, "attack: '%s' takes %zu argument(s)\n", name.c_str(), it->second.nargs);
    return 2;
  }
  int rc = it->second.fn(args);
  std::fflush(stdout);
  return rc;
}
