// stockade gc: removes what jails whose supervisor is gone left behind (see supervisor.hpp).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>

#include "cgroup/cgroup.hpp"
#include "common/fd.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"
#include "supervisor/detail/lease.hpp"
#include "supervisor/supervisor.hpp"

namespace supervisor {
namespace {

using common::fail;
using common::Result;
using common::UniqueFd;
namespace registry = common::registry;

// A file of jail id's, removed by unlinking it.
GcObject file_object(const std::string& kind, const std::string& id, const std::string& path) {
  return {kind, id, path, [path]() -> Result<void> {
            if (::unlink(path.c_str()) != 0 && errno != ENOENT)
              return fail(errno, "remove '{}'", path);
            return {};
          }};
}

// A registry write interrupted by a crash leaves ".ID.tmp" (registry::write renames it into place).
void list_registry_temporaries(const GcOptions& o, std::vector<GcObject>& out) {
  DIR* d = ::opendir(o.registry_dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() <= 5 || n[0] != '.' || !n.ends_with(".tmp")) continue;
    std::string id = n.substr(1, n.size() - 5);
    if (!cgroup::is_jail_name(id)) continue;
    std::string path = o.registry_dir + "/" + n;
    out.push_back(file_object("registry", id, path));
  }
  ::closedir(d);
}

// True if a supervisor still listens on the exec socket at path.
bool socket_listening(const std::string& path) {
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)};
  return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

// A supervisor killed before its teardown leaves its exec socket, "ID.sock". One that still
// accepts connections is alive (a rootless jail has no lease to tell), whatever else gc finds.
void list_exec_sockets(const GcOptions& o, std::vector<GcObject>& out) {
  DIR* d = ::opendir(o.registry_dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (!n.ends_with(".sock")) continue;
    std::string id = n.substr(0, n.size() - 5);
    std::string path = o.registry_dir + "/" + n;
    if (!cgroup::is_jail_name(id) || socket_listening(path)) continue;
    out.push_back(file_object("registry", id, path));
  }
  ::closedir(d);
}

// stockade watch's alert tallies, ALERTS_DIR/ID.json, of jails that are gone.
void list_alert_tallies(const GcOptions& o, std::vector<GcObject>& out) {
  std::string dir = registry::alerts_dir(o.registry_dir);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    std::string id;
    if (n.ends_with(".json"))
      id = n.substr(0, n.size() - 5);
    else if (n.size() > 5 && n[0] == '.' && n.ends_with(".tmp"))
      id = n.substr(1, n.size() - 5);
    if (!cgroup::is_jail_name(id)) continue;
    std::string path = dir + "/" + n;
    out.push_back(file_object("alerts", id, path));
  }
  ::closedir(d);
}

std::vector<GcObject> list_registry(const GcOptions& o) {
  std::vector<GcObject> out;
  list_registry_temporaries(o, out);
  list_exec_sockets(o, out);
  list_alert_tallies(o, out);
  for (auto& rec : registry::list(o.registry_dir)) {
    std::string dir = o.registry_dir, id = rec.id;
    out.push_back({"registry", id, dir + "/" + id + ".json",
                   [dir, id]() -> Result<void> { return registry::remove(dir, id); }});
  }
  return out;
}

GcObject cgroup_object(const std::string& path, const std::string& id) {
  return {"cgroup", id, path, [path]() -> Result<void> {
            TRY(cgroup::remove_dir(path));
            cgroup::remove_empty_parent_dirs({path.substr(0, path.rfind('/'))});
            return {};
          }};
}

// Jail directories under <parent>/stockade in every hierarchy, plus those the registry names
// (a jail run with another --cgroup-parent).
std::vector<GcObject> list_cgroups(const GcOptions& o) {
  std::vector<GcObject> out;
  std::set<std::string> seen;
  for (auto& [path, id] : cgroup::list_jail_dirs(cgroup::host_layout(), o.cgroup_parent)) {
    out.push_back(cgroup_object(path, id));
    seen.insert(path);
  }
  for (auto& rec : registry::list(o.registry_dir))
    for (auto& path : rec.cgroups) {
      // Only a directory that is ours by name: .../stockade/<the record's id>.
      if (seen.contains(path) || !path.ends_with("/stockade/" + rec.id)) continue;
      if (::access(path.c_str(), F_OK) != 0) continue;
      out.push_back(cgroup_object(path, rec.id));
      seen.insert(path);
    }
  return out;
}

// Lease files: a locked one names a live jail; an unlocked one is stale, and we keep its lock
// until we unlink it (as IdLease does), so no supervisor can take it in between.
void scan_leases(const GcOptions& o, std::set<std::string>& live, std::set<std::string>& held,
                 std::vector<GcObject>& stale) {
  DIR* d = ::opendir(o.lease_dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (!n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
      names.push_back(n);
  }
  ::closedir(d);
  for (auto& n : names) {
    std::string path = o.lease_dir + "/" + n;
    auto fd = std::make_shared<UniqueFd>(
        sys::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!*fd) continue;
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
      std::string owner = detail::read_lease_owner(fd->get());
      if (!owner.empty()) live.insert(owner);
      held.insert(n);
      continue;
    }
    struct stat held, linked;
    if (::fstat(fd->get(), &held) != 0 || ::stat(path.c_str(), &linked) != 0 ||
        held.st_ino != linked.st_ino)
      continue;  // released and unlinked under us: nothing to do
    std::string owner = detail::read_lease_owner(fd->get());
    stale.push_back({"lease", owner, path, [path, fd]() -> Result<void> {
                       if (::unlink(path.c_str()) != 0 && errno != ENOENT)
                         return fail(errno, "remove '{}'", path);
                       return {};
                     }});
  }
}

// Removal order: network and other plug-ins first, then cgroups, the registry, leases last.
int rank(const std::string& kind) {
  if (kind == "lease") return 3;
  if (kind == "registry") return 2;
  if (kind == "cgroup") return 1;
  return 0;
}

}  // namespace

Result<GcResult> gc(const GcOptions& options, const std::vector<GcReconciler>& extra) {
  GcOptions o = options;
  if (o.registry_dir.empty()) o.registry_dir = registry::default_dir();
  if (o.lease_dir.empty()) o.lease_dir = detail::default_lease_dir();
  if (o.registry_dir.empty()) return fail(0, "gc: no registry directory (set XDG_RUNTIME_DIR)");

  // 1. What is there. (Before the liveness check: see supervisor.hpp.)
  std::vector<GcObject> objects = list_registry(o);
  auto records = registry::list(o.registry_dir);
  if (::geteuid() == 0) {
    for (auto& c : list_cgroups(o)) objects.push_back(std::move(c));
  }
  for (auto& r : extra)
    for (auto& x : r(o)) objects.push_back(std::move(x));

  // 2. Who is alive.
  std::set<std::string> live, held;
  std::vector<GcObject> stale_leases;
  if (::geteuid() == 0) scan_leases(o, live, held, stale_leases);
  // A record is left alone if anything says its jail may run: its lease is locked (whoever
  // wrote it, an older stockade included) or its supervisor's pid exists.
  for (auto& rec : records)
    if (registry::supervisor_alive(rec) ||
        (!rec.rootless && held.contains(std::to_string(rec.host_uid))))
      live.insert(rec.id);

  // 3. Remove what belongs to nobody alive.
  for (auto& l : stale_leases) objects.push_back(std::move(l));
  std::stable_sort(objects.begin(), objects.end(), [](const GcObject& a, const GcObject& b) {
    return rank(a.kind) < rank(b.kind);
  });
  GcResult result;
  result.live.assign(live.begin(), live.end());
  for (auto& obj : objects) {
    if (obj.kind != "lease" && (obj.jail_id.empty() || live.contains(obj.jail_id))) continue;
    if (obj.kind == "lease" && live.contains(obj.jail_id)) continue;
    if (!o.dry_run) {
      if (auto ok = obj.remove(); !ok) {
        result.failed.emplace_back(obj, ok.error());
        continue;
      }
    }
    result.removed.push_back(obj);
  }
  return result;
}

}  // namespace supervisor
