// The supervisor's side of `stockade exec` (see control.hpp for the whole channel).
#pragma once

#include <poll.h>

#include <array>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "supervisor/detail/control.hpp"
#include "supervisor/detail/plan.hpp"

namespace supervisor::detail {

class ExecRelay {
 public:
  // Listens on control_socket_path(dir, id) (mode 0600); the file goes when the relay does.
  // init_sock is the supervisor's end of the sync socket to the jail's pid 1.
  static common::Result<ExecRelay> listen(const std::string& dir, const std::string& id,
                                          int init_sock);
  ExecRelay(ExecRelay&& o) noexcept;
  ExecRelay& operator=(ExecRelay&&) = delete;
  ~ExecRelay();

  // Appends the fds to poll (the listener and every session).
  void poll_fds(std::vector<pollfd>& fds) const;
  // Acts on the revents of the fds poll_fds() appended, starting at fds[first].
  void handle(const std::vector<pollfd>& fds, size_t first);
  // pid 1's word on a command: kExecDone or kExecNotRun.
  void on_report(const ChildReport& r);
  // The jail is gone: every client still waiting hears so.
  void jail_ended();

 private:
  struct Session {
    common::UniqueFd conn;
    int slot = -1;  // >= 0 once the command was passed to pid 1
  };
  ExecRelay(std::string path, common::UniqueFd listener, int init_sock)
      : path_(std::move(path)), listener_(std::move(listener)), init_sock_(init_sock) {}
  void accept_client();
  // Reads the client's message; false when the session is over.
  bool serve(Session& s);
  void reply(Session& s, const ExecReply& r);
  void signal_slot(int slot, int sig);

  std::string path_;
  common::UniqueFd listener_;
  int init_sock_;
  std::vector<Session> sessions_;
  // Slots pid 1 still runs a command in (until its kExecDone/kExecNotRun), client gone or not.
  std::array<bool, kMaxExecSessions> busy_{};
};

}  // namespace supervisor::detail
