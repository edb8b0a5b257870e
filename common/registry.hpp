// The registry: one JSON file per running jail, /run/stockade/jails/ID.json (root-only, written
// atomically). The one thing shared between the run side and ps/inspect/gc/watch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace common::registry {

// "unset" as the kernel writes it in /proc/PID/loginuid and in audit records.
inline constexpr std::uint32_t kNoAuditId = 4294967295u;

struct JailRecord {
  std::string id;
  pid_t supervisor_pid = 0;
  pid_t init_pid = 0;  // host pid of the jail's pid 1
  uid_t host_uid = 0;  // what the jail's ids map to on the host
  gid_t host_gid = 0;
  uid_t uid = 0;  // inside the jail
  gid_t gid = 0;
  bool rootless = false;
  // The jail's audit id (loginuid) as the host's audit records show it: the jail's host uid, or
  // kNoAuditId when the jail runs without one (rootless, or the supervisor could not give one).
  std::uint32_t audit_id = 4294967295u;
  std::map<std::string, std::uint64_t> namespaces;  // "net" -> inode
  std::int64_t started_unix_ms = 0;
  std::vector<std::string> command;
  std::string hostname;
  std::string net;
  // net = "bridge": the bridge, the host end of the jail's veth, its addresses and packet mark.
  std::string bridge, veth, ipv4, ipv6;
  std::uint32_t mark = 0;
  std::string policy_digest;
  std::string cgroup_version;        // "v1", "v2", or "" when the jail has no cgroup
  std::vector<std::string> cgroups;  // the jail's own cgroup directories (full paths)
};

// /run/stockade/jails as root; $XDG_RUNTIME_DIR/stockade/jails otherwise ("" if neither).
std::string default_dir();

// Where stockade watch keeps each running jail's alert tally, ID.json: "alerts" beside the
// registry directory (/run/stockade/alerts for /run/stockade/jails).
std::string alerts_dir(const std::string& registry_dir);
// The tally of jail id ({"count", "by_rule", "last"}), or null if no alert was raised for it.
nlohmann::json read_alert_tally(const std::string& registry_dir, const std::string& id);

// Creates dir (mode 0700) and its parent if needed.
Result<void> ensure_dir(const std::string& dir);
// Atomic write: a temporary file in dir, then rename over ID.json.
Result<void> write(const std::string& dir, const JailRecord& rec);
Result<void> remove(const std::string& dir, const std::string& id);
Result<JailRecord> read(const std::string& dir, const std::string& id);
// The entry in a freshly opened file (for a reader handed the file, not its name); what names it
// in errors.
Result<JailRecord> read_file(int fd, const std::string& what);
// Every readable entry, sorted by start time; unreadable ones are skipped.
std::vector<JailRecord> list(const std::string& dir);
std::string to_json(const JailRecord& rec, int indent = -1);
// True if the supervisor that wrote the record still runs.
bool supervisor_alive(const JailRecord& rec);

// Removes the entry when it goes out of scope, unless release()d.
class Entry {
 public:
  Entry() = default;
  Entry(std::string dir, std::string id) : dir_(std::move(dir)), id_(std::move(id)) {}
  Entry(Entry&& o) noexcept : dir_(std::move(o.dir_)), id_(std::move(o.id_)) { o.id_.clear(); }
  Entry& operator=(Entry&&) = delete;
  ~Entry();
  void release() { id_.clear(); }

 private:
  std::string dir_, id_;
};

}  // namespace common::registry
