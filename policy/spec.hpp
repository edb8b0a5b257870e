// policy: everything a jail may do, as one validated, immutable value (JailSpec).
//
// The supervisor only ever sees a JailSpec. Flags (and, later, policy files) are turned into one
// by make_spec(), which checks every field and reports errors people can act on.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace policy {

enum class NetMode { kNone, kLoopback };

struct Mount {
  enum class Kind { kBind, kTmpfs };
  Kind kind = Kind::kBind;
  std::string src;  // host path (kBind)
  std::string dst;  // absolute path inside the jail
  bool read_only = true;
  std::uint64_t size = 0;  // kTmpfs: bytes
};

struct Rlimit {
  int resource = 0;  // RLIMIT_*
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

// Host uids/gids leased to jails, one per jail: [first, first + count).
struct IdRange {
  uid_t first = 1879048192;  // 0x70000000: far above login and subuid ranges
  std::uint32_t count = 65536;
};

struct JailSpec {
  std::vector<std::string> argv;
  // Environment of the workload, complete (PATH and HOME included), NAME=VALUE.
  std::vector<std::string> env;
  uid_t uid = 0;  // inside the jail
  gid_t gid = 0;
  std::string hostname = "stockade";
  std::optional<std::string> chroot;  // prepared rootfs instead of the default system binds
  std::vector<Mount> mounts;          // user mounts, applied after the system ones, in order
  std::string cwd = "/";
  std::vector<int> caps;  // capability allowlist (cap_value_t)
  std::string seccomp = "default";
  std::vector<Rlimit> rlimits;  // applied on top of the defaults
  double time_limit = 0;        // seconds, 0 = none
  double kill_grace = 5;        // seconds between a forwarded SIGTERM and SIGKILL
  NetMode net = NetMode::kLoopback;
  IdRange host_ids;
  std::uint64_t tmp_size = 256ull << 20;
};

// Raw command-line values, before validation. The CLI fills it; make_spec checks it.
struct RunFlags {
  std::vector<std::string> command;
  std::optional<std::string> user;  // UID[:GID]
  // --bind, --ro-bind and --tmpfs in command-line order: later mounts land on earlier ones.
  enum class MountFlag { kBind, kRoBind, kTmpfs };
  std::vector<std::pair<MountFlag, std::string>> mounts;
  std::optional<std::string> chroot;
  std::optional<std::string> cwd;
  std::vector<std::string> caps;
  std::vector<std::string> env;
  std::optional<std::string> hostname;
  std::vector<std::string> rlimits;  // name=value
  std::optional<double> time_limit;
  std::optional<double> kill_grace;
  std::optional<std::string> net;
  std::optional<std::string> host_ids;  // START:COUNT
  std::optional<std::string> tmp_size;
  std::optional<std::string> seccomp;
};

// Checks every flag and builds the spec. Errors name the flag and say what to do.
common::Result<JailSpec> make_spec(const RunFlags& flags);

// Parses "64M", "1G", "4096" into bytes.
common::Result<std::uint64_t> parse_size(const std::string& text);

// The default rlimits every jail gets before the spec's own (core 0, a process cap).
std::vector<Rlimit> default_rlimits();

// Names of rlimits accepted by --rlimit (as, core, cpu, fsize, nofile, nproc, ...).
std::optional<int> rlimit_from_name(const std::string& name);

}  // namespace policy
