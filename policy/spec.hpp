// policy: everything a jail may do, as one validated, immutable value (JailSpec).
//
// The supervisor only ever sees a JailSpec. Policy files (load_policy) and flags (apply_flags) are
// turned into one; every field is checked, and errors say what to do.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace policy {

enum class NetMode { kNone, kLoopback, kBridge };

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

// Seccomp: a base profile plus rules on top of it (later rules win over earlier ones).
enum class SeccompAction { kAllow, kErrno, kKill, kLog };

struct SyscallArg {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
  unsigned index = 0;  // 0..5
  Op op = Op::kEq;
  std::uint64_t value = 0;
  std::uint64_t mask = 0;  // kMaskedEq: (arg & mask) == value
};

struct SyscallRule {
  std::string syscall;  // a name libseccomp knows for this architecture
  SeccompAction action = SeccompAction::kErrno;
  int errno_value = 1;           // EPERM
  std::vector<SyscallArg> args;  // all must hold
};

struct SeccompPolicy {
  // "default": everything allowed but the escape and kernel-attack surface (EPERM, logged).
  // "strict": an allowlist for compilers, interpreters and build tools; the rest EPERM, logged.
  // "oci:/abs/path.json": a Docker/OCI profile (import_oci_seccomp), its own base: no built-in
  // rules, default_action for every syscall without a rule, then base_rules.
  std::string profile = "default";
  std::vector<SyscallRule> rules;
  // Only for "oci:" profiles, filled in by import_oci_seccomp (so never written out by to_toml:
  // loading "oci:PATH" imports again). `rules` replace them per syscall, as for built-in profiles.
  SeccompAction default_action = SeccompAction::kAllow;
  int default_errno = 1;  // EPERM, with default_action kErrno
  std::vector<SyscallRule> base_rules;
  // What an import skipped (syscalls unknown here), for the command line to tell the operator:
  // the policy module returns it rather than logging. Replaced with the profile on re-import.
  std::vector<std::string> import_warnings;
};

// cgroup limits, enforced through the jail's own cgroup (v1 or v2; needs root).
struct CgroupLimits {
  std::optional<std::uint64_t> memory_bytes;
  std::optional<std::uint64_t> pids;
  std::optional<std::uint64_t> cpu_ms_per_sec;
  bool any() const { return memory_bytes || pids || cpu_ms_per_sec; }
  bool operator==(const CgroupLimits&) const = default;
};

// The pids limit every jail run as root gets when its policy names none: a fork bomb stops here
// (RLIMIT_NPROC, 4096 by default and per jail thanks to the unique host uid, is the second layer).
// High enough for make -j, compilers with threads, git and Python.
inline constexpr std::uint64_t kDefaultPidsLimit = 4096;

// A host device node exposed in the jail's /dev (same path), with the access letters the
// device controller allows: r read, w write, m mknod.
struct Device {
  std::string path;  // absolute, under /dev
  std::string access = "rw";
};

// Egress allowlist, enforced on the host side of the jail's veth (netjail/).
struct EgressRule {
  std::string cidr;           // "203.0.113.0/24", "2001:db8::/32"
  std::string proto = "any";  // tcp | udp | icmp | any
  std::uint16_t port_first = 0, port_last = 65535;
};

struct PublishedPort {
  std::uint16_t host_port = 0, jail_port = 0;
  std::string proto = "tcp";
};

struct NetworkPolicy {
  std::vector<EgressRule> egress;
  std::vector<std::string> hosts;  // hostnames resolved when the jail starts
  std::vector<std::string> dns;    // resolvers the jail may query
  std::vector<PublishedPort> publish;
  // net = kBridge: the shared bridge the jail's veth joins (created on demand) and the networks
  // its addresses come from. Jails on one bridge must agree on its networks.
  std::string bridge = "stockade0";
  std::string subnet4 = "10.231.0.0/16";
  std::string subnet6 = "fd5e:a7c0:de00::/64";
  bool any() const { return !egress.empty() || !hosts.empty() || !dns.empty() || !publish.empty(); }
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
  SeccompPolicy seccomp;
  std::vector<Rlimit> rlimits;  // applied on top of the defaults
  double time_limit = 0;        // seconds, 0 = none
  double kill_grace = 5;        // seconds between a forwarded SIGTERM and SIGKILL
  NetMode net = NetMode::kLoopback;
  NetworkPolicy network;
  CgroupLimits cgroup;
  std::vector<Device> devices;
  // Where the jail's cgroup goes, relative to each hierarchy's root ("" = the root):
  // <parent>/stockade/<id>. A host setting (a delegated systemd slice), not read from policy files.
  std::string cgroup_parent;
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
  std::optional<std::string> bridge;  // --bridge NAME (implies --net bridge)
  std::vector<std::string> subnets;   // --subnet CIDR: the bridge's v4 and/or v6 network
  std::vector<std::string> publish;   // HOST:JAIL[/tcp|udp]
  std::vector<std::string> egress;    // CIDR[,PROTO[,PORTS]]
  std::vector<std::string> dns;       // resolver addresses
  std::vector<std::string> allow_hosts;
  CgroupLimits cgroup;               // --memory-max etc. and nsjail's --cgroup_* flags
  std::vector<std::string> devices;  // --device /dev/PATH[:rwm]
  std::optional<std::string> cgroup_parent;
  bool operator==(const RunFlags&) const = default;
};

// Checks every flag and builds the spec. Errors name the flag and say what to do.
common::Result<JailSpec> make_spec(const RunFlags& flags);

// The spec with nothing asked for: the minimal environment and the default rlimits.
JailSpec default_spec();

// Command-line flags over a spec (a loaded policy, or default_spec()): scalars replace, mounts
// and capabilities append, env and rlimits override by name, a command replaces the policy's.
// make_spec(flags) is apply_flags(default_spec(), flags).
common::Result<JailSpec> apply_flags(JailSpec base, const RunFlags& flags);

// Loads a TOML policy file (see docs/policy.md), following its includes, and validates it.
// Errors read "PATH:LINE:COLUMN: what is wrong; what to do", PATH as given (or, for an included
// file, joined onto the including file's directory). The spec may have no command yet.
common::Result<JailSpec> load_policy(const std::string& path);

// Imports a Docker/OCI runtime-spec seccomp profile (JSON; see docs/policy.md) as profile
// "oci:PATH". Entries gated on capabilities (includes.caps / excludes.caps) are evaluated against
// caps, the jail's capability allowlist; arches against this machine's, minKernel against the
// running kernel. Syscalls unknown here are skipped with a line in warnings (if not null).
// Errors read "PATH: JSON.PATH: what is wrong", e.g. "p.json: syscalls[3].action: ...".
common::Result<SeccompPolicy> import_oci_seccomp(const std::string& path,
                                                 std::vector<std::string>* warnings,
                                                 const std::vector<int>& caps = {});

// The effective policy, complete (defaults included). to_toml's output loads back to the same
// spec; to_json is for machines.
std::string to_toml(const JailSpec& spec);
std::string to_json(const JailSpec& spec);
// "sha256:<hex>" of the effective policy as to_json gives it, without the command line: jails
// that run different commands under the same policy share it (the registry, ps and inspect show
// it; alerts carry it).
std::string digest(const JailSpec& spec);

// Refuses what this build cannot enforce yet (an egress policy), and cgroup limits or devices
// without root, so nothing a policy asks for is silently ignored. Whether this host's cgroups can
// enforce a limit is known only when the jail starts: supervisor::run says which and why.
common::Result<void> check_enforceable(const JailSpec& spec);

// Parses "/dev/PATH[:rwm]" (access letters default to "rw").
common::Result<Device> parse_device(const std::string& text);

// Parses "64M", "1G", "4096" into bytes.
common::Result<std::uint64_t> parse_size(const std::string& text);

// The default rlimits every jail gets before the spec's own (core 0, a process cap).
std::vector<Rlimit> default_rlimits();

// Names of rlimits accepted by --rlimit (as, core, cpu, fsize, nofile, nproc, ...).
std::optional<int> rlimit_from_name(const std::string& name);

}  // namespace policy
