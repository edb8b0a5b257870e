// Signals blocked for a scope, to be read from a signalfd instead of interrupting the code in
// between; the previous mask comes back when the scope ends.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <initializer_list>

#include "common/fd.hpp"

namespace supervisor::detail {

class BlockedSignals {
 public:
  explicit BlockedSignals(std::initializer_list<int> signals) {
    sigemptyset(&set_);
    for (int s : signals) sigaddset(&set_, s);
    ::sigprocmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockedSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

  const sigset_t& set() const { return set_; }
  // A non-blocking signalfd that reads them; empty with errno set if the kernel refused one.
  common::UniqueFd signalfd() const {
    return common::UniqueFd{::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK)};
  }

 private:
  sigset_t set_, old_;
};

}  // namespace supervisor::detail
