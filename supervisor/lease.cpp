#include "supervisor/detail/lease.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/registry.hpp"
#include "common/sys.hpp"

namespace supervisor::detail {

using common::fail;
using common::UniqueFd;

std::string default_lease_dir() { return "/run/stockade/leases"; }

IdLease::~IdLease() {
  // Unlink while still holding the lock: a racing supervisor that opened this inode sees it is
  // no longer linked after it gets the lock, and retries with a fresh file.
  if (fd_) (void)::unlink(path_.c_str());
}

std::string read_lease_owner(int fd) {
  char buf[65];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

common::Result<IdLease> lease_host_id(const policy::IdRange& range, const std::string& dir,
                                      const std::string& jail_id) {
  TRY_CTX(common::registry::ensure_dir(dir), "lease a host uid");
  std::uint32_t start = 0;
  (void)sys::getrandom(&start, sizeof start);  // any start will do if the pool fails
  for (std::uint32_t i = 0; i < range.count; ++i) {
    uid_t id = range.first + (start + i) % range.count;
    std::string path = dir + "/" + std::to_string(id);
    UniqueFd fd{sys::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!fd) return fail(errno, "lease a host uid: open '{}'", path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) continue;
      return fail(errno, "lease a host uid: lock '{}'", path);
    }
    struct stat held, linked;
    if (::fstat(fd.get(), &held) != 0 || ::stat(path.c_str(), &linked) != 0 ||
        held.st_ino != linked.st_ino) {
      --i;  // the previous holder released it under us: try the same id again
      continue;
    }
    // Whatever a crashed holder wrote is replaced; one short write, before any jail object exists.
    if ((held.st_size > 0 && ::ftruncate(fd.get(), 0) != 0) ||
        (!jail_id.empty() && ::pwrite(fd.get(), jail_id.data(), jail_id.size(), 0) !=
                                 static_cast<ssize_t>(jail_id.size())))
      return fail(errno, "lease a host uid: write '{}'", path);
    return IdLease(id, std::move(fd), path);
  }
  return fail(EAGAIN, "lease a host uid: all {} ids from {} are in use; widen --host-ids",
              range.count, range.first);
}

}  // namespace supervisor::detail
