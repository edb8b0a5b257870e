// `stockade exec ID -- CMD`: the client, and the supervisor's relay to the jail's pid 1.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/log.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"
#include "supervisor/detail/exec_relay.hpp"
#include "supervisor/detail/signals.hpp"
#include "supervisor/supervisor.hpp"

namespace supervisor {

using common::fail;
using common::Result;
using common::UniqueFd;

namespace detail {

bool send_with_fds(int sock, const void* data, size_t len, const int* fds, size_t nfds) {
  if (nfds > static_cast<size_t>(kMaxPassedFds)) {
    errno = E2BIG;
    return false;
  }
  struct iovec iov = {const_cast<void*>(data), len};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(kMaxPassedFds * sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(len);
}

namespace {

// Receives one message; received fds land in fds (at most 3 kept, the rest closed).
ssize_t recv_with_fds(int sock, void* data, size_t len, std::vector<UniqueFd>& fds, int flags,
                      bool& truncated) {
  struct iovec iov = {data, len};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(8 * sizeof(int))];
  msghdr msg = recv_header(iov, cbuf, sizeof cbuf);
  ssize_t n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  int raw[8];
  int total = take_fds(msg, raw, 8);
  for (int i = 0; i < total && i < 8; ++i) fds.emplace_back(raw[i]);
  if (total > 8) truncated = true;  // more than any request carries
  return n;
}

}  // namespace

Result<ExecRelay> ExecRelay::listen(const std::string& dir, const std::string& id, int init_sock) {
  std::string path = control_socket_path(dir, id);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail(ENAMETOOLONG, "exec socket '{}': path too long for a unix socket", path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (!fd) return fail(errno, "exec socket");
  // A file left by a crashed run of the same id cannot exist (ids are random); refuse to guess.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc != 0) return fail(err, "exec socket '{}'", path);
  ExecRelay relay(path, std::move(fd), init_sock);
  if (::listen(relay.listener_.get(), kMaxExecSessions) != 0)
    return fail(errno, "exec socket '{}': listen", path);
  return relay;
}

ExecRelay::ExecRelay(ExecRelay&& o) noexcept
    : path_(std::exchange(o.path_, {})),
      listener_(std::move(o.listener_)),
      init_sock_(o.init_sock_),
      sessions_(std::move(o.sessions_)),
      busy_(o.busy_) {}

ExecRelay::~ExecRelay() {
  if (!path_.empty()) (void)::unlink(path_.c_str());
}

void ExecRelay::poll_fds(std::vector<pollfd>& fds) const {
  fds.push_back({listener_.get(), POLLIN, 0});
  for (const auto& s : sessions_) fds.push_back({s.conn.get(), POLLIN, 0});
}

void ExecRelay::handle(const std::vector<pollfd>& fds, size_t first) {
  // Sessions first (their indices are those poll_fds() gave), then new clients.
  std::vector<bool> over(sessions_.size(), false);
  for (size_t i = 0; i < sessions_.size(); ++i) {
    const pollfd& p = fds[first + 1 + i];
    if (p.revents != 0) over[i] = !serve(sessions_[i]);
  }
  for (size_t i = sessions_.size(); i-- > 0;)
    if (over[i]) sessions_.erase(sessions_.begin() + static_cast<std::ptrdiff_t>(i));
  if (fds[first].revents & POLLIN) accept_client();
}

void ExecRelay::reply(Session& s, const ExecReply& r) {
  (void)::send(s.conn.get(), &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void ExecRelay::signal_slot(int slot, int sig) {
  ExecMessage m;
  m.kind = ExecMessage::kSignal;
  m.slot = slot;
  m.sig = sig;
  (void)::send(init_sock_, &m, sizeof m, MSG_NOSIGNAL);
}

void ExecRelay::accept_client() {
  for (;;) {
    UniqueFd conn{::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)};
    if (!conn) return;
    Session s{std::move(conn), -1};
    struct ucred cred {};
    socklen_t len = sizeof cred;
    ExecReply no;
    no.kind = ExecReply::kRefused;
    // The socket's directory is the caller's alone already; this says so again, per client.
    if (::getsockopt(s.conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != ::geteuid())) {
      no.err = EPERM;
      reply(s, no);
      continue;
    }
    if (sessions_.size() >= static_cast<size_t>(kMaxExecSessions)) {
      no.err = EBUSY;
      reply(s, no);
      continue;
    }
    common::log::debug("exec: client pid {} uid {} connected", cred.pid, cred.uid);
    sessions_.push_back(std::move(s));
  }
}

bool ExecRelay::serve(Session& s) {
  std::vector<char> buf(kMaxExecMessage);
  std::vector<UniqueFd> fds;
  bool truncated = false;
  ssize_t n = recv_with_fds(s.conn.get(), buf.data(), buf.size(), fds, MSG_DONTWAIT, truncated);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) {
    // The client is gone (or broken): its command must not outlive it.
    if (s.slot >= 0) signal_slot(s.slot, SIGKILL);
    return false;
  }
  ExecMessage m;
  ExecReply no;
  no.kind = ExecReply::kRefused;
  no.err = EINVAL;
  if (truncated || static_cast<size_t>(n) < sizeof m) {
    reply(s, no);
    return false;
  }
  std::memcpy(&m, buf.data(), sizeof m);
  if (m.magic != kExecMagic) {
    reply(s, no);
    return false;
  }
  if (m.kind == ExecMessage::kSignal) {
    if (s.slot >= 0 && m.sig > 0 && m.sig < NSIG) signal_slot(s.slot, m.sig);
    return true;
  }
  if (m.kind != ExecMessage::kStart || s.slot >= 0 || fds.size() != 3 || m.argc == 0 ||
      m.argc > kMaxExecArgs || buf[static_cast<size_t>(n) - 1] != '\0') {
    reply(s, no);
    return false;
  }
  int slot = -1;
  for (int i = 0; i < kMaxExecSessions && slot < 0; ++i)
    if (!busy_[static_cast<size_t>(i)]) slot = i;
  if (slot < 0) {
    no.err = EBUSY;
    reply(s, no);
    return false;
  }
  m.slot = slot;
  std::memcpy(buf.data(), &m, sizeof m);
  int raw[3] = {fds[0].get(), fds[1].get(), fds[2].get()};
  if (!send_with_fds(init_sock_, buf.data(), static_cast<size_t>(n), raw, 3)) {
    no.err = errno;
    reply(s, no);
    return false;
  }
  busy_[static_cast<size_t>(slot)] = true;
  s.slot = slot;
  common::log::debug("exec: '{}' passed to the jail's pid 1 (slot {})", buf.data() + sizeof m,
                     slot);
  return true;
}

void ExecRelay::on_report(const ChildReport& r) {
  if (r.index < 0 || r.index >= kMaxExecSessions) return;
  busy_[static_cast<size_t>(r.index)] = false;
  ExecReply out;
  if (r.kind == ChildReport::kExecDone) {
    out.kind = ExecReply::kExited;
    out.status = r.status;
  } else {
    out.kind = ExecReply::kNotRun;
    out.err = r.err;
    out.seccomp_failed = r.step == static_cast<std::int32_t>(Step::kSeccomp);
  }
  for (size_t i = 0; i < sessions_.size(); ++i)
    if (sessions_[i].slot == r.index) {
      reply(sessions_[i], out);
      sessions_.erase(sessions_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
}

void ExecRelay::jail_ended() {
  ExecReply out;
  out.kind = ExecReply::kJailEnded;
  for (auto& s : sessions_) reply(s, out);
  sessions_.clear();
  listener_.reset();
}

}  // namespace detail

namespace {

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

}  // namespace

Result<Outcome> exec(const std::string& id, const std::vector<std::string>& argv) {
  if (argv.empty()) return fail(EINVAL, "exec: no command (stockade exec ID -- CMD [ARGS...])");
  const std::string dir = common::registry::default_dir();
  if (dir.empty()) return fail(ENOENT, "exec: no registry directory (set XDG_RUNTIME_DIR)");
  auto rec = common::registry::read(dir, id);
  if (!rec) {
    if (rec.error().err == ENOENT)
      return fail(0, "exec: no running jail '{}' (see stockade ps)", id);
    return fail(0, "exec: {}", rec.error().message());
  }
  if (!common::registry::supervisor_alive(*rec))
    return fail(ESRCH, "exec: jail '{}' is not running (a stale entry: stockade gc removes it)",
                id);

  std::string payload(sizeof(detail::ExecMessage), '\0');
  detail::ExecMessage m;
  m.kind = detail::ExecMessage::kStart;
  m.argc = static_cast<std::uint32_t>(argv.size());
  std::memcpy(payload.data(), &m, sizeof m);
  for (const auto& a : argv) {
    if (a.find('\0') != std::string::npos) return fail(EINVAL, "exec: an argument holds NUL");
    payload += a;
    payload += '\0';
  }
  if (payload.size() > detail::kMaxExecMessage || argv.size() > detail::kMaxExecArgs)
    return fail(E2BIG, "exec: the command line is too long (at most {} bytes, {} arguments)",
                detail::kMaxExecMessage - sizeof m, detail::kMaxExecArgs);

  std::string path = detail::control_socket_path(dir, id);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return fail(ENAMETOOLONG, "exec: '{}'", path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd conn{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
  if (!conn) return fail(errno, "exec: socket");
  if (::connect(conn.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED)
      return fail(err,
                  "exec: jail '{}' takes no commands (it is ending, or its supervisor "
                  "predates stockade exec)",
                  id);
    return fail(err, "exec: connect to '{}'", path);
  }

  // The command gets our stdin, stdout and stderr (a closed one: /dev/null).
  UniqueFd null_fd;
  int stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i] = i;
    if (::fcntl(i, F_GETFD) < 0) {
      if (!null_fd) null_fd.reset(sys::open("/dev/null", O_RDWR | O_CLOEXEC));
      if (!null_fd) return fail(errno, "exec: open /dev/null");
      stdio[i] = null_fd.get();
    }
  }
  // The signals a terminal user sends to what runs in the foreground: passed on to the command.
  detail::BlockedSignals signals{SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  UniqueFd sigfd = signals.signalfd();
  if (!sigfd) return fail(errno, "exec: signalfd");
  if (!detail::send_with_fds(conn.get(), payload.data(), payload.size(), stdio, 3))
    return fail(errno, "exec: send the command to jail '{}'", id);

  struct pollfd fds[2] = {{conn.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "exec: poll");
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (sys::read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        detail::ExecMessage sig;
        sig.kind = detail::ExecMessage::kSignal;
        sig.sig = static_cast<std::int32_t>(si.ssi_signo);
        (void)::send(conn.get(), &sig, sizeof sig, MSG_NOSIGNAL);
      }
    }
    if (fds[0].revents == 0) continue;
    detail::ExecReply r;
    ssize_t n = ::recv(conn.get(), &r, sizeof r, 0);
    if (n != static_cast<ssize_t>(sizeof r))
      return fail(n < 0 ? errno : EPIPE, "exec: jail '{}' ended the session without an answer", id);
    Outcome out;
    switch (r.kind) {
      case detail::ExecReply::kExited:
        out.exit_code = exit_code(r.status);
        return out;
      case detail::ExecReply::kNotRun:
        if (r.seccomp_failed)
          return fail(r.err, "exec: load the jail's seccomp filter for '{}'", argv[0]);
        if (r.err == ENOENT || r.err == ENOTDIR) {
          out.exit_code = 127;
          out.note = fmt::format("'{}': command not found in the jail", argv[0]);
        } else {
          out.exit_code = 126;
          out.note = fmt::format("cannot execute '{}': {}", argv[0], std::strerror(r.err));
        }
        return out;
      case detail::ExecReply::kRefused:
        if (r.err == EBUSY)
          return fail(EBUSY, "exec: jail '{}' runs {} exec commands already; wait for one", id,
                      detail::kMaxExecSessions);
        if (r.err == EPERM) return fail(EPERM, "exec: jail '{}' belongs to another user", id);
        return fail(r.err, "exec: jail '{}' refused the command", id);
      case detail::ExecReply::kJailEnded:
        out.exit_code = 128 + SIGKILL;
        out.note =
            fmt::format("jail '{}' ended while '{}' ran: it was killed with it", id, argv[0]);
        return out;
      default:
        return fail(EPROTO, "exec: jail '{}' answered with an unknown reply", id);
    }
  }
}

}  // namespace supervisor
