// The child's plan: everything the child needs, computed by the parent before clone().
//
// After clone() the child only carries the plan out (child.cpp): no allocation, no logging, no
// exceptions, async-signal-safe calls only. It reads these vectors and strings but never grows
// them. On failure it sends a ChildReport {step, index, errno} and exits.
#pragma once

#include <linux/filter.h>
#include <sys/capability.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "policy/spec.hpp"
#include "supervisor/detail/seccomp.hpp"

namespace supervisor::detail {

// What the child was doing when it failed. Keep step_name() in sync.
enum class Step : std::int32_t {
  kSync,
  kSecurebits,
  kSetgroups,
  kSetgid,
  kSetuid,
  kUserns,
  kMakePrivate,
  kOpenSource,
  kStage,
  kMountPoint,
  kBind,
  kMount,
  kSymlink,
  kPivot,
  kRootReadOnly,
  kHostname,
  kLoopback,
  kRlimit,
  kChdir,
  kBoundingSet,
  kCapSet,
  kAmbient,
  kNoNewPrivs,
  kSeccomp,
  kSignals,
  kSpawn,
  kCgroupNs,
  kLoginuid,
  kCgroupJoin,
};
const char* step_name(Step s);

// Messages from the child (and later the jail's pid 1) to the supervisor.
struct ChildReport {
  enum Kind : std::int32_t {
    kSetupFailed = 1,
    kExecFailed = 2,
    kExited = 3,
    kExecDone = 4,   // a `stockade exec` command ended: index = its slot, status = wait status
    kExecNotRun = 5  // it could not start: index = slot, err, step kSeccomp or kSpawn
  };
  std::int32_t kind = 0;
  std::int32_t step = 0;
  std::int32_t index = -1;  // into ChildPlan::mounts or rlimits, -1 if none
  std::int32_t err = 0;
  std::int32_t status = 0;  // kExited: the workload's wait status
};

struct MountOp {
  enum class Kind : std::int32_t {
    kBind,      // src (host, canonical) -> dst, attributes from attr
    kTmpfs,     // fresh tmpfs at dst with options data
    kProc,      // fresh procfs at dst
    kSymlink,   // dst -> src (a symlink in the new root)
    kMaskFile,  // the host's /dev/null over dst (only if dst exists)
    kMaskDir,   // an empty read-only tmpfs over dst (only if dst exists)
    kReadOnly,  // dst bound over itself, read-only (only if dst exists)
    kMkdir,     // a directory at dst
    kFile,      // a file at dst holding data (small host files copied, not bound)
  };
  Kind kind = Kind::kBind;
  std::string src;
  std::string dst;         // relative to the new root, no leading '/': "usr/lib"
  std::string data;        // mount options (kTmpfs)
  std::uint64_t attr = 0;  // MOUNT_ATTR_* set on binds
  bool src_is_dir = true;  // kBind: create a directory (else a file) as mount point
  bool create = true;      // create a missing mount point
  // The parent guarantees dst does not exist yet and its parent directory does, with no
  // symlink on the way (ops on the fresh root): the mount point is made in one or two calls.
  bool fresh = false;
  std::string label;  // what the user wrote, for messages
  int src_fd = -1;    // filled by the child: the detached mount tree of src
};

struct CapDeleter {
  void operator()(cap_t c) const { cap_free(c); }
};

struct ChildPlan {
  bool rootless = false;  // mapped to the caller's own id: setgroups is denied
  uid_t uid = 0;
  gid_t gid = 0;
  std::string stage_path = "/tmp";  // where the new root is assembled, in the child's mount ns
  std::string stage_options;        // tmpfs options for the root (no chroot)
  bool chroot = false;
  std::string chroot_path;  // canonical host path
  int chroot_fd = -1;       // filled by the child
  std::vector<MountOp> mounts;
  int dev_null_index = -1;  // the bind of the host's /dev/null
  int dev_null_fd = -1;     // filled by the child: an O_PATH fd of it, to mask files in /proc
  std::string hostname;
  bool loopback_up = true;
  std::vector<policy::Rlimit> rlimits;
  std::string cwd;
  std::vector<cap_value_t> caps;
  int last_cap = 40;
  std::unique_ptr<std::remove_pointer_t<cap_t>, CapDeleter> capset;  // P = E = I = caps
  SeccompProgram seccomp;
  SeccompProgram clone3_guard;  // empty unless the jail holds CAP_SYS_ADMIN
  bool deny_nested_userns = true;
  // The supervisor moved the child into the jail's cgroup before 'G': a cgroup namespace made
  // now is rooted there (one made by clone3 would be rooted at the supervisor's cgroup).
  bool unshare_cgroupns = false;
  std::vector<std::string> argv_store, env_store, path_dirs;
  std::vector<char*> argv, envp;  // NULL-terminated views of the stores
  int sock = -1;                  // the child's end of the sync socket
  // The jail's audit id: the child writes loginuid_text (its in-jail uid, which the kernel maps
  // to the jail's unique host uid) to its own /proc/self/loginuid. Empty: no audit id.
  char loginuid_text[16] = {};
  int loginuid_fd = -1;  // filled by the child
};

// Files generated for the jail's /etc (name -> content), in place of the host's: a bridged
// jail's hosts and resolv.conf.
using EtcFiles = std::vector<std::pair<std::string, std::string>>;

// Resolves host paths and builds the plan from the spec (parent side, may allocate).
common::Result<std::unique_ptr<ChildPlan>> make_plan(const policy::JailSpec& spec, bool rootless,
                                                     const EtcFiles& etc_files = {});

// Resolves a host path, following a symlink only when root or the caller owns it: a symlink a
// jail planted in a reused workspace is owned by that jail's host uid and is refused.
common::Result<std::string> resolve_trusted_path(const std::string& path);

// The child's entry point after clone(); never returns.
[[noreturn]] void child_main(ChildPlan& plan);

}  // namespace supervisor::detail
