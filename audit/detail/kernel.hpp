// The libaudit adapter: audit status, the enable flag and our rules (internal to audit/).
#pragma once

#include <linux/audit.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audit/audit.hpp"

struct audit_rule_data;

namespace audit::detail {

// An audit netlink socket for requests (libaudit's audit_open), closed by the guard.
class AuditSocket {
 public:
  static common::Result<AuditSocket> open();
  AuditSocket(AuditSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  AuditSocket& operator=(AuditSocket&&) = delete;
  ~AuditSocket();
  int fd() const { return fd_; }

 private:
  explicit AuditSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

common::Result<audit_status> get_status(int fd);

// Switches audit on if it is off, and off again when it goes. enabled=2 (locked) is left alone.
class EnableGuard {
 public:
  static common::Result<EnableGuard> ensure(int fd);
  EnableGuard(EnableGuard&& o) noexcept
      : fd_(o.fd_), switched_(std::exchange(o.switched_, false)) {}
  EnableGuard& operator=(EnableGuard&&) = delete;
  ~EnableGuard();
  bool switched() const { return switched_; }

 private:
  EnableGuard(int fd, bool switched) : fd_(fd), switched_(switched) {}
  int fd_;
  bool switched_;
};

struct RuleDeleter {
  void operator()(audit_rule_data* r) const;
};
using RulePtr = std::unique_ptr<audit_rule_data, RuleDeleter>;

// The rules this watcher added; the destructor deletes exactly those.
class RuleSet {
 public:
  static common::Result<RuleSet> install(int fd, const IdRange& range, const std::string& key);
  RuleSet(RuleSet&&) noexcept = default;
  RuleSet& operator=(RuleSet&&) = delete;
  ~RuleSet();
  std::size_t size() const { return rules_.size(); }

 private:
  explicit RuleSet(int fd) : fd_(fd) {}
  int fd_;
  std::vector<RulePtr> rules_;
};

}  // namespace audit::detail
