// The exec channel of a running jail: how `stockade exec ID -- CMD` reaches the jail's pid 1.
//
//   client --(REGISTRY_DIR/ID.sock, SOCK_SEQPACKET)--> supervisor --(sync socket)--> pid 1
//
// The client sends one ExecMessage{kStart} with its argv and, as SCM_RIGHTS, its stdin, stdout and
// stderr. The supervisor checks who is asking (SO_PEERCRED: root or the jail's own caller),
// gives the session a slot and passes the request on to pid 1, which starts the command the way
// it started the workload: same namespaces, ids, capabilities, rlimits, cgroup, no_new_privs and
// audit id (inherited from pid 1), and the jail's seccomp filter loaded just before execve.
// pid 1 reports the command's end (a ChildReport kExecDone/kExecNotRun naming the slot), and the
// supervisor answers the client with one ExecReply. Signals go the same way (kSignal); a client
// that disconnects gets its command killed.
//
// Every struct here is plain data, read and written whole (SOCK_SEQPACKET keeps boundaries).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace supervisor::detail {

inline constexpr std::uint32_t kExecMagic = 0x73746b65;  // "stke"
inline constexpr int kMaxExecSessions = 16;
inline constexpr std::size_t kMaxExecMessage = 64 * 1024;  // header + argv strings
inline constexpr std::uint32_t kMaxExecArgs = 1024;

// client -> supervisor, and supervisor -> pid 1 (with slot filled in).
struct ExecMessage {
  enum Kind : std::uint32_t { kStart = 1, kSignal = 2 };
  std::uint32_t magic = kExecMagic;
  std::uint32_t kind = 0;
  std::int32_t slot = -1;  // set by the supervisor
  std::int32_t sig = 0;    // kSignal
  std::uint32_t argc = 0;  // kStart: argc NUL-terminated strings follow the header
};

// supervisor -> client: the session's one answer.
struct ExecReply {
  enum Kind : std::int32_t {
    kExited = 1,     // status: the command's wait status
    kNotRun = 2,     // err: why the command could not start (ENOENT: not found; seccomp: step)
    kRefused = 3,    // err: EPERM (not allowed), EBUSY (too many sessions), EINVAL (bad request)
    kJailEnded = 4,  // the jail ended while the command ran (it was killed with it)
  };
  std::int32_t kind = 0;
  std::int32_t status = 0;
  std::int32_t err = 0;
  std::int32_t seccomp_failed = 0;  // kNotRun: the filter could not be loaded (not an exec error)
};

// Sends one message with nfds fds attached (SCM_RIGHTS; none if nfds is 0). At most
// kMaxPassedFds (the stdio of an exec request, the cgroup v1 `tasks` fds of 'C'), else false
// with errno E2BIG.
inline constexpr int kMaxPassedFds = 16;
bool send_with_fds(int sock, const void* data, size_t len, const int* fds, size_t nfds);

// async-signal-safe. A header for recvmsg of one message into iov, with control (len bytes) for
// the fds it may carry.
inline msghdr recv_header(iovec& iov, void* control, size_t len) {
  msghdr msg;
  std::memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = len;
  return msg;
}

// async-signal-safe (pid 1 uses it). The fds a received message carries: the first max land in
// out, the others are closed. Returns how many there were in all.
inline int take_fds(msghdr& msg, int* out, int max) {
  int total = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i, ++total) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (total < max)
        out[total] = fd;
      else
        ::close(fd);
    }
  }
  return total;
}

// The control socket's path for jail id in registry dir.
inline std::string control_socket_path(const std::string& registry_dir, const std::string& id) {
  return registry_dir + "/" + id + ".sock";
}

}  // namespace supervisor::detail
