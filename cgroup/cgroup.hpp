// cgroup: one cgroup per jail, with the policy's limits, on cgroup v1 or v2.
//
//   host_layout() -> plan_jail(layout, limits, parent, id) -> create(plan, limits)
//   -> (clone; v2: CLONE_INTO_CGROUP with clone_fd(); v1: the child writes "0" to join_fds())
//   -> ... -> oom_kills()
//   -> remove()              and, for ps/inspect/gc: read_usage(), list_jail_dirs(), remove_dir()
//
// Layout: <mount>/<parent>/stockade/<jail-id> in each hierarchy a limit needs (v1: pids, memory,
// cpu (+ cpuacct for usage), devices, each where it is mounted; v2: one directory, with the
// controllers enabled in stockade/cgroup.subtree_control, and devices through a BPF program).
// Only directories named like a jail id under a `stockade` directory are ever listed or
// removed: nothing else in the cgroup tree is touched. Nothing here logs; errors say which
// limit cannot be enforced and why.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace cgroup {

enum class Version { kNone = 0, kV1 = 1, kV2 = 2 };

// What the host offers: the cgroup mounts (from /proc/self/mountinfo, or /sys/fs/cgroup itself on
// a pure v2 host) and the v2 root's cgroup.controllers.
struct Layout {
  std::map<std::string, std::string, std::less<>> v1;  // controller ("memory") -> mount point
  std::string v2;                                      // cgroup2 mount point, "" if none
  std::vector<std::string> v2_controllers;
};

// A device node the jail may use: type 'c' or 'b', numbers, access letters from "rwm".
struct DeviceRule {
  char type = 'c';
  std::uint32_t major = 0, minor = 0;
  std::string access = "rw";
  std::string path;  // for messages
};

struct Limits {
  std::optional<std::uint64_t> memory_bytes;  // hard limit; swap off
  std::optional<std::uint64_t> pids;
  std::optional<std::uint64_t> cpu_ms_per_sec;
  std::vector<DeviceRule> devices;  // non-empty: deny every device but these (and /dev's basics)
  bool any() const { return memory_bytes || pids || cpu_ms_per_sec || !devices.empty(); }
};

// Where one jail's cgroup lives: one directory per v1 hierarchy, or one v2 directory.
struct Plan {
  Version version = Version::kNone;
  std::vector<std::string> dirs;     // full paths, the jail's own directories
  std::vector<std::string> parents;  // <mount>/<parent>/stockade, created if missing
  std::vector<std::string> controllers;
};

// One file write: path and content.
struct Write {
  std::string path, text;
};

Layout parse_layout(std::string_view mountinfo, std::string_view v2_controllers);
// A pure cgroup v2 host, recognised without the mount table: `root` is a cgroup2 mount and the
// file self_cgroup (/proc/self/cgroup) names no v1 hierarchy, not even a named one. Then the
// layout is {v2 = root, its cgroup.controllers}; otherwise nullopt.
std::optional<Layout> pure_v2_layout(const std::string& root, const std::string& self_cgroup);
// Reads this host's layout once per process: /sys/fs/cgroup when it is a pure v2 host, else
// /proc/self/mountinfo (~85 us on the test VM, and it grows with the host's mounts).
const Layout& host_layout();

// Controllers the limits need, in a fixed order (pids, memory, cpu, devices).
std::vector<std::string> needed_controllers(const Limits& limits);

// Chooses v1 if any needed controller is mounted there (a hybrid host), else v2. Errors name the
// limit that cannot be enforced and why.
common::Result<Plan> plan_jail(const Layout& layout, const Limits& limits,
                               const std::string& parent, const std::string& id);

// The files to write into the jail's directories, in order (pure; tested without a kernel).
std::vector<Write> limit_writes(const Plan& plan, const Limits& limits);

// True for names create() makes: a jail id (lower-case hex and '-', 1..64 characters).
bool is_jail_name(const std::string& name);

// The jail's cgroup. Removes its directories when it goes (killing what is left in them),
// unless release()d. Move-only.
class JailCgroup {
 public:
  JailCgroup() = default;
  explicit JailCgroup(Plan plan) : plan_(std::move(plan)) {}
  JailCgroup(JailCgroup&& o) noexcept : plan_(std::move(o.plan_)), dir_fd_(std::move(o.dir_fd_)) {
    o.plan_.dirs.clear();
  }
  JailCgroup& operator=(JailCgroup&&) = delete;
  ~JailCgroup();

  const Plan& plan() const { return plan_; }
  bool active() const { return !plan_.dirs.empty(); }
  // v2: an fd of the jail's directory, for clone3's CLONE_INTO_CGROUP; -1 on v1.
  int clone_fd() const { return dir_fd_.get(); }
  void set_clone_fd(common::UniqueFd fd) { dir_fd_ = std::move(fd); }
  // Moves pid (and its threads) into every directory (v1). Moving another process takes the
  // kernel's threadgroup write lock, which waits for an RCU grace period once the lock has been
  // idle (5-15 ms on the test VM): the jail joins through join_fds() instead.
  common::Result<void> attach(pid_t pid) const;
  // v1: one fd per directory, open for writing on its `tasks` file. A single-threaded process
  // that writes "0" to each joins the jail's cgroup itself, which the kernel does without the
  // threadgroup lock (tens of µs). The permission is checked against the opener (root), so the
  // fds work from inside the jail's user namespace. Empty on v2 (CLONE_INTO_CGROUP).
  common::Result<std::vector<common::UniqueFd>> join_fds() const;
  // How many processes the kernel OOM-killed in the jail (0 without a memory controller).
  std::uint64_t oom_kills() const;
  // Removes the directories now. Errors say which one is left. step (a test hook) is called with
  // "during-cgroup-remove" after the first directory is gone.
  common::Result<void> remove(void (*step)(const char*) = nullptr);
  void release() { plan_.dirs.clear(); }

 private:
  friend common::Result<JailCgroup> create(const Plan& plan, const Limits& limits,
                                           void (*step)(const char*));
  Plan plan_;
  common::UniqueFd dir_fd_;
};

// Creates the parents (once per host) and the jail's directories and writes the limits. step (a
// test hook) is called with "after-cgroup-dir" once the first directory exists.
common::Result<JailCgroup> create(const Plan& plan, const Limits& limits,
                                  void (*step)(const char*) = nullptr);

// Live figures, read from the jail's directories. Missing figures stay unset.
struct Usage {
  std::optional<std::uint64_t> memory_current, memory_peak, memory_max;
  std::optional<std::uint64_t> pids_current, pids_max;
  std::optional<std::uint64_t> cpu_usage_us, oom_kills;
};
Usage read_usage(const std::vector<std::string>& dirs);

// Kills whatever is left in dir and removes it (waits up to ~2 s for the processes to go).
common::Result<void> remove_dir(const std::string& dir);
// Removes each shared parent (".../stockade") that no jail uses any more; others stay.
void remove_empty_parent_dirs(const std::vector<std::string>& parents);

// Every jail directory on this host under <mount>/<parent>/stockade: {path, jail id}.
std::vector<std::pair<std::string, std::string>> list_jail_dirs(const Layout& layout,
                                                                const std::string& parent);

std::string version_name(Version v);

}  // namespace cgroup
