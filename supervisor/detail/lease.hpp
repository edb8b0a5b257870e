// Host uid/gid leases: each jail gets a host id no other running jail has.
//
// A lease is an flock() held on /run/stockade/leases/ID for the jail's lifetime. The kernel
// drops the lock when the supervisor dies, however it dies, so a crash never leaks a lease.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "policy/spec.hpp"

namespace supervisor::detail {

class IdLease {
 public:
  IdLease() = default;
  IdLease(uid_t id, common::UniqueFd fd, std::string path)
      : id_(id), fd_(std::move(fd)), path_(std::move(path)) {}
  IdLease(IdLease&&) noexcept = default;
  IdLease& operator=(IdLease&&) = delete;
  ~IdLease();
  uid_t id() const { return id_; }
  int fd() const { return fd_.get(); }

 private:
  uid_t id_ = 0;
  common::UniqueFd fd_;
  std::string path_;
};

// Leases a free id from range, starting the search at a random point so concurrent supervisors
// rarely probe the same ids. The lease file then holds jail_id: a locked lease is how stockade gc
// knows a jail is alive (the kernel drops the lock with its supervisor, however it dies).
common::Result<IdLease> lease_host_id(const policy::IdRange& range, const std::string& dir,
                                      const std::string& jail_id = "");

// The jail id a lease file holds ("" if none or unreadable).
std::string read_lease_owner(int fd);

std::string default_lease_dir();

}  // namespace supervisor::detail
