// The detectors: which events are escape attempts, how bad, blocked or not, and what the alert
// says. One alert per event: the records of a syscall are correlated before they get here.
#include <dirent.h>
#include <fcntl.h>
#include <libaudit.h>
#include <linux/sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <unordered_map>

#include "audit/detail/event.hpp"

namespace audit::detail {
namespace {

struct Kind {
  const char* rule;
  const char* priority;  // when it was blocked; a success is Critical
  const char* what;      // for the output text
  std::vector<std::string> tags;
};

// The escape syscalls: seccomp denials of these are alerts, and our rules audit them.
const std::map<std::string, Kind>& kinds() {
  static const std::map<std::string, Kind> k = [] {
    std::map<std::string, Kind> m;
    Kind ns{"Stockade setns attempt",
            "Warning",
            "tried to join another namespace",
            {"T1611", "mitre_privilege_escalation", "namespace", "stockade"}};
    Kind create{"Stockade namespace creation attempt",
                "Warning",
                "tried to create namespaces",
                {"T1611", "mitre_privilege_escalation", "namespace", "stockade"}};
    Kind mount{"Stockade mount attempt",
               "Warning",
               "tried to change mounts",
               {"T1611", "mitre_privilege_escalation", "mount", "stockade"}};
    Kind trace{"Stockade ptrace attempt",
               "Warning",
               "tried to trace or write another process",
               {"T1055", "mitre_defense_evasion", "process_injection", "stockade"}};
    Kind handle{"Stockade open_by_handle_at attempt",
                "Warning",
                "tried to open a file by handle (shocker)",
                {"T1611", "mitre_privilege_escalation", "filesystem", "stockade"}};
    Kind module{"Stockade kernel module load attempt",
                "Error",
                "tried to load kernel code",
                {"T1547.006", "mitre_persistence", "kernel", "stockade"}};
    Kind bpf{"Stockade bpf attempt",
             "Warning",
             "tried to use bpf",
             {"T1611", "mitre_privilege_escalation", "kernel", "stockade"}};
    Kind keys{"Stockade kernel keyring attempt",
              "Notice",
              "tried to use the kernel keyring",
              {"T1552", "mitre_credential_access", "kernel", "stockade"}};
    Kind kernel{"Stockade kernel attack surface attempt",
                "Notice",
                "tried to use kernel attack surface",
                {"T1068", "kernel", "stockade"}};
    m["setns"] = ns;
    for (auto s : {"unshare", "clone"}) m[s] = create;
    for (auto s : {"mount", "umount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig",
                   "move_mount", "open_tree", "mount_setattr"})
      m[s] = mount;
    for (auto s : {"ptrace", "process_vm_writev", "process_vm_readv", "pidfd_getfd"}) m[s] = trace;
    m["open_by_handle_at"] = handle;
    for (auto s : {"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load"})
      m[s] = module;
    m["bpf"] = bpf;
    for (auto s : {"keyctl", "add_key", "request_key"}) m[s] = keys;
    for (auto s : {"userfaultfd", "perf_event_open", "io_uring_setup", "iopl", "ioperm", "swapon",
                   "swapoff", "reboot", "syslog", "acct", "settimeofday", "clock_settime",
                   "adjtimex", "quotactl", "lookup_dcookie", "personality"})
      m[s] = kernel;
    return m;
  }();
  return k;
}

constexpr std::uint32_t kSeccompLog = 0x7ffc0000;

// `return {a}` would copy the alert (an initializer list's elements are const).
std::vector<Alert> one(Alert&& a) {
  std::vector<Alert> out;
  out.push_back(std::move(a));
  return out;
}

const char* seccomp_action(std::uint32_t code) {
  switch (code & 0xffff0000U) {
    case 0x80000000U:
      return "kill_process";
    case 0x00000000U:
      return "kill_thread";
    case 0x00030000U:
      return "trap";
    case 0x00050000U:
      return "errno";
    case 0x7fc00000U:
      return "user_notif";
    case 0x7ff00000U:
      return "trace";
    case 0x7ffc0000U:
      return "log";
  }
  return "unknown";
}

std::uint64_t hex(const std::string* s) { return s ? std::strtoull(s->c_str(), nullptr, 16) : 0; }
long dec(const std::string* s) { return s ? std::strtol(s->c_str(), nullptr, 10) : 0; }
std::string str(const std::string* s) { return s ? *s : ""; }

// proctitle, exe and comm come hex-encoded when they hold odd bytes.
std::string unhex_if_needed(const std::string& v) {
  if (v.empty() || v.size() % 2 != 0) return v;
  for (char c : v)
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::islower(static_cast<unsigned char>(c)))
      return v;
  std::string out;
  for (size_t i = 0; i < v.size(); i += 2) {
    char c = static_cast<char>(std::strtol(v.substr(i, 2).c_str(), nullptr, 16));
    out.push_back(c == '\0' ? ' ' : c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

const std::array<std::pair<std::uint64_t, const char*>, 8> kNsFlags = {{
    {CLONE_NEWNS, "mnt"},
    {CLONE_NEWCGROUP, "cgroup"},
    {CLONE_NEWUTS, "uts"},
    {CLONE_NEWIPC, "ipc"},
    {CLONE_NEWUSER, "user"},
    {CLONE_NEWPID, "pid"},
    {CLONE_NEWNET, "net"},
    {0x80, "time"},
}};

std::string ns_types(std::uint64_t flags) {
  std::string out;
  for (auto [bit, name] : kNsFlags)
    if (flags & bit) out += (out.empty() ? "" : "|") + std::string(name);
  return out.empty() ? "any" : out;
}

// "net:[4026531840]" -> {"net", 4026531840}.
std::optional<std::pair<std::string, std::uint64_t>> parse_ns_link(const std::string& link) {
  auto colon = link.find(":[");
  if (colon == std::string::npos || link.back() != ']') return std::nullopt;
  static const std::set<std::string> kTypes = {"net", "mnt", "pid",    "user",
                                               "uts", "ipc", "cgroup", "time"};
  if (!kTypes.contains(link.substr(0, colon))) return std::nullopt;  // socket:[...], pipe:[...]
  return std::make_pair(link.substr(0, colon),
                        std::strtoull(link.c_str() + colon + 2, nullptr, 10));
}

std::string read_link(const std::string& path) {
  char buf[256];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

bool jail_owns(const Jail& jail, const std::string& type, std::uint64_t inode) {
  auto it = jail.namespaces.find(type);
  return it != jail.namespaces.end() && it->second == inode;
}

// Live only: the namespace fds the process holds that are not the jail's own. A jail cannot
// open a namespace of the host (or of another jail) by itself: such an fd came from outside,
// over SCM_RIGHTS or a bind mount. (Audit has no record of SCM_RIGHTS: the identity is the proof.)
std::vector<std::pair<int, std::string>> foreign_ns_fds(pid_t pid, const Jail& jail, int only_fd) {
  std::vector<std::pair<int, std::string>> out;
  auto check_fd = [&](int fd) {
    std::string link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
    auto ns = parse_ns_link(link);
    if (ns && !jail_owns(jail, ns->first, ns->second)) out.emplace_back(fd, link);
  };
  if (only_fd >= 0) {
    check_fd(only_fd);
    return out;
  }
  // Only the fds it has: a storm of denied setns calls must not cost hundreds of readlinks each.
  DIR* d = ::opendir(fmt::format("/proc/{}/fd", pid).c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') check_fd(std::atoi(e->d_name));
  ::closedir(d);
  return out;
}

// Live only: the namespaces the process is in now that differ from the jail's recorded ones.
std::vector<std::string> moved_namespaces(pid_t pid, const Jail& jail) {
  std::vector<std::string> out;
  for (const auto& [type, inode] : jail.namespaces) {
    struct stat st;
    if (::stat(fmt::format("/proc/{}/ns/{}", pid, type).c_str(), &st) != 0) continue;
    if (st.st_ino != inode) out.push_back(fmt::format("{}:[{}]", type, st.st_ino));
  }
  return out;
}

// What /proc said about a process, reused for a moment: a storm of attempts from one process
// must not cost a /proc walk per record (pids are not reused within this window).
struct ProcInfo {
  std::chrono::steady_clock::time_point at;
  long vpid = -1;
  bool fds_scanned = false;
  std::vector<std::pair<int, std::string>> foreign;
};
constexpr auto kProcInfoFresh = std::chrono::milliseconds(100);

ProcInfo& proc_info(pid_t pid) {
  static std::unordered_map<pid_t, ProcInfo> cache;
  auto now = std::chrono::steady_clock::now();
  if (cache.size() > 4096) cache.clear();
  auto& info = cache[pid];
  if (now - info.at > kProcInfoFresh) {
    info = ProcInfo{};
    info.at = now;
  }
  return info;
}

long inner_pid_uncached(pid_t pid);

long inner_pid(pid_t pid) {
  ProcInfo& info = proc_info(pid);
  if (info.vpid < 0) info.vpid = inner_pid_uncached(pid);
  return info.vpid;
}

// The pid as the jail sees it: the last NSpid of /proc/PID/status.
long inner_pid_uncached(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line)) {
    if (!line.starts_with("NSpid:")) continue;
    auto sp = line.find_last_of(" \t");
    return std::strtol(line.c_str() + sp + 1, nullptr, 10);
  }
  return -1;
}

// The fields every alert has: jail, process, time.
Alert base_alert(const Event& ev, const Record& r, const Jail& jail, const DetectContext& ctx) {
  Alert a;
  a.time_ns = ev.time_ms * 1000000;
  pid_t pid = static_cast<pid_t>(dec(r.get("pid")));
  auto& f = a.fields;
  f["evt.time"] = a.time_ns;
  f["proc.pid"] = pid;
  f["proc.ppid"] = dec(r.get("ppid"));
  long vpid = ctx.live && pid > 0 ? inner_pid(pid) : -1;
  if (vpid >= 0) f["proc.vpid"] = vpid;
  f["proc.name"] = unhex_if_needed(str(r.get("comm")));
  f["proc.exepath"] = unhex_if_needed(str(r.get("exe")));
  if (const Record* t = ev.find(AUDIT_PROCTITLE))
    f["proc.cmdline"] = unhex_if_needed(str(t->get("proctitle")));
  f["user.uid"] = dec(r.get("uid"));
  f["user.loginuid"] = dec(r.get("auid"));
  f["stockade.jail.id"] = jail.id;
  f["stockade.jail.policy"] = jail.policy;
  f["stockade.jail.host_uid"] = jail.host_uid;
  if (jail.known) f["stockade.jail.command"] = jail.command;
  f["stockade.audit.serial"] = ev.serial;
  f["stockade.audit.session"] = dec(r.get("ses"));
  return a;
}

void render(Alert& a, const std::string& what) {
  const auto& f = a.fields;
  auto s = [&](const char* k) {
    if (!f.contains(k)) return std::string("?");
    return f[k].is_string() ? f[k].get<std::string>() : f[k].dump();
  };
  a.text = fmt::format(
      "Jailed process {} (jail={} policy={} host_uid={} pid={} vpid={} comm={} "
      "exe={} syscall={} args={} result={})",
      what, s("stockade.jail.id"), s("stockade.jail.policy"), s("stockade.jail.host_uid"),
      s("proc.pid"), s("proc.vpid"), s("proc.name"), s("proc.exepath"), s("evt.type"),
      s("stockade.args"), s("evt.res"));
}

std::vector<Alert> from_seccomp(const Event& ev, const Record& r, const Jail& jail,
                                const DetectContext& ctx) {
  std::string name = syscall_name(str(r.get("arch")), dec(r.get("syscall")));
  auto it = kinds().find(name);
  if (it == kinds().end()) return {};  // a denial, not an escape attempt: the policy's business
  const Kind& k = it->second;
  auto code = static_cast<std::uint32_t>(hex(r.get("code")));
  bool blocked = (code & 0xffff0000U) != kSeccompLog;
  Alert a = base_alert(ev, r, jail, ctx);
  a.rule = k.rule;
  a.priority = k.priority;
  a.tags = k.tags;
  a.fields["evt.type"] = name;
  a.fields["evt.res"] = blocked ? "EPERM" : "SUCCESS";
  a.fields["stockade.blocked"] = blocked;
  a.fields["stockade.blocked_by"] = fmt::format("seccomp:{}", seccomp_action(code));
  a.fields["stockade.args"] = "(seccomp records carry no arguments)";
  if (str(r.get("compat")) == "1") a.fields["stockade.compat"] = true;
  std::string what = k.what;
  pid_t pid = static_cast<pid_t>(dec(r.get("pid")));
  if (name == "setns" && ctx.live && pid > 0) {
    ProcInfo& info = proc_info(pid);
    if (!info.fds_scanned) {
      info.foreign = foreign_ns_fds(pid, jail, -1);
      info.fds_scanned = true;
    }
    const auto& foreign = info.foreign;
    if (!foreign.empty()) {
      a.rule = "Stockade namespace fd passed into jail";
      a.priority = "Critical";
      a.fields["stockade.ns.target"] = foreign.front().second;
      a.fields["stockade.ns.type"] = parse_ns_link(foreign.front().second)->first;
      a.fields["evt.arg.fd"] = foreign.front().first;
      what = fmt::format("called setns holding a namespace fd from outside the jail ({} on fd {})",
                         foreign.front().second, foreign.front().first);
    }
  }
  render(a, what + ", blocked by seccomp");
  return one(std::move(a));
}

// A write-open of one of these, from a jail, is an attempt on the host's kernel settings.
bool sensitive_path(const std::string& p) {
  return p.starts_with("/proc/sys/") || p == "/proc/sysrq-trigger" ||
         p.ends_with("/core_pattern") || p.ends_with("release_agent") ||
         p.ends_with("notify_on_release") || p == "/proc/sys";
}

std::vector<Alert> from_syscall(const Event& ev, const Record& r, const Jail& jail,
                                const DetectContext& ctx) {
  std::string key = str(r.get("key"));
  if (!key.starts_with(ctx.key.empty() ? "stockade" : ctx.key)) return {};
  std::string name = syscall_name(str(r.get("arch")), dec(r.get("syscall")));
  bool success = str(r.get("success")) == "yes";
  long exit_v = dec(r.get("exit"));
  pid_t pid = static_cast<pid_t>(dec(r.get("pid")));
  std::uint64_t a0 = hex(r.get("a0")), a1 = hex(r.get("a1")), a2 = hex(r.get("a2"));
  Alert a = base_alert(ev, r, jail, ctx);
  a.fields["evt.type"] = name;
  const char* err =
      !success && exit_v < 0 ? audit_errno_to_name(static_cast<int>(-exit_v)) : nullptr;
  a.fields["evt.res"] = success ? std::string("SUCCESS") : err ? err : std::to_string(exit_v);
  a.fields["stockade.blocked"] = !success;
  if (!success) a.fields["stockade.blocked_by"] = "kernel";
  std::string what;
  if (name == "open" || name == "openat" || name == "openat2") {
    std::string path;
    for (const auto& rec : ev.records)
      if (rec.type == AUDIT_PATH && sensitive_path(unhex_if_needed(str(rec.get("name")))))
        path = unhex_if_needed(str(rec.get("name")));
    if (path.empty()) return {};
    a.rule = "Stockade write to host kernel settings attempt";
    a.priority = success ? "Critical" : "Warning";
    a.tags = {"T1611", "mitre_privilege_escalation", "filesystem", "stockade"};
    a.fields["fd.name"] = path;
    a.fields["stockade.args"] = fmt::format("path={}", path);
    render(a, fmt::format("tried to write '{}'", path));
    return one(std::move(a));
  }
  auto it = kinds().find(name);
  if (it == kinds().end()) return {};
  const Kind& k = it->second;
  a.rule = k.rule;
  a.priority = success ? "Critical" : k.priority;
  a.tags = k.tags;
  what = k.what;
  if (name == "setns") {
    a.fields["evt.arg.fd"] = static_cast<long>(static_cast<int>(a0));
    a.fields["evt.arg.nstype"] = ns_types(a1);
    a.fields["stockade.ns.type"] = ns_types(a1);
    a.fields["stockade.args"] = fmt::format("fd={} nstype={}", static_cast<int>(a0), ns_types(a1));
    if (ctx.live && pid > 0) {
      // A bad fd (EBADF) names nothing to look at.
      int fd = static_cast<int>(a0);
      auto foreign =
          fd >= 0 ? foreign_ns_fds(pid, jail, fd) : decltype(foreign_ns_fds(0, jail, 0)){};
      if (!foreign.empty()) {
        a.rule = "Stockade namespace fd passed into jail";
        a.priority = "Critical";
        a.fields["stockade.ns.target"] = foreign.front().second;
        a.fields["stockade.ns.type"] = parse_ns_link(foreign.front().second)->first;
        what = fmt::format("called setns on a namespace fd from outside the jail ({})",
                           foreign.front().second);
      }
      if (success) {
        auto moved = moved_namespaces(pid, jail);
        if (!moved.empty()) {
          a.rule = "Stockade jail escaped its namespaces";
          a.priority = "Critical";
          a.fields["stockade.ns.now"] = moved;
          what = fmt::format("joined namespaces outside its jail ({})", fmt::join(moved, " "));
        } else if (foreign.empty()) {
          a.rule = "Stockade setns into own namespace";
          a.priority = "Notice";
          what = "re-entered one of its jail's own namespaces";
        }
      }
    }
  } else if (name == "unshare" || name == "clone") {
    a.fields["evt.arg.flags"] = ns_types(a0);
    a.fields["stockade.args"] = fmt::format("flags={}", ns_types(a0));
    if (a0 & CLONE_NEWUSER) {
      a.rule = "Stockade nested user namespace attempt";
      what = "tried to create a user namespace";
    }
  } else if (name == "ptrace") {
    a.fields["evt.arg.request"] = a0;
    a.fields["evt.arg.pid"] = static_cast<long>(a1);
    a.fields["stockade.args"] = fmt::format("request={} pid={}", a0, static_cast<long>(a1));
    if (const Record* o = ev.find(AUDIT_OBJ_PID)) {
      long oauid = dec(o->get("oauid"));
      a.fields["stockade.target.loginuid"] = oauid;
      a.fields["stockade.target.name"] = unhex_if_needed(str(o->get("ocomm")));
      if (static_cast<std::uint32_t>(oauid) != jail.host_uid) {
        a.priority = success ? "Critical" : "Error";
        what = "tried to trace a process outside its jail";
      }
    }
  } else {
    std::string paths;
    for (const auto& rec : ev.records)
      if (rec.type == AUDIT_PATH)
        paths += (paths.empty() ? "" : ",") + unhex_if_needed(str(rec.get("name")));
    a.fields["stockade.args"] =
        paths.empty() ? fmt::format("a0={:#x} a1={:#x} a2={:#x}", a0, a1, a2) : "paths=" + paths;
  }
  render(a, what + (success ? ", and it worked" : ", refused by the kernel"));
  return one(std::move(a));
}

std::vector<Alert> from_login(const Event& ev, const Record& r, const Jail& jail,
                              const DetectContext& ctx) {
  // The write's SYSCALL record names the process; LOGIN alone has only pid and ids.
  const Record* sc = ev.find(AUDIT_SYSCALL);
  Alert a = base_alert(ev, sc != nullptr ? *sc : r, jail, ctx);
  a.fields["user.loginuid"] = dec(r.get("old-auid"));
  bool ok = str(r.get("res")) == "1";
  a.rule = "Stockade audit identity tampering";
  a.priority = ok ? "Critical" : "Error";
  a.tags = {"T1562", "mitre_defense_evasion", "audit", "stockade"};
  a.fields["evt.type"] = "loginuid";
  a.fields["evt.res"] = ok ? "SUCCESS" : "EPERM";
  a.fields["stockade.blocked"] = !ok;
  a.fields["stockade.args"] = fmt::format("auid={}", str(r.get("auid")));
  render(a, ok ? "changed its audit id" : "tried to change its audit id");
  return one(std::move(a));
}

// A packet the jail's egress policy dropped (netjail logs them, rate-limited, with the jail's
// mark). A jail retrying one destination is one finding: repeats within kEgressQuiet of the
// same jail, destination and protocol raise no new alert.
constexpr std::int64_t kEgressQuietMs = 10000;

std::vector<Alert> from_egress(const Event& ev, const Record& r, const Jail& jail) {
  static std::unordered_map<std::string, std::int64_t> last;
  std::string dst = str(r.get("daddr"));
  long proto = dec(r.get("proto"));
  std::string key = fmt::format("{}|{}|{}|{}", jail.host_uid, jail.id, dst, proto);
  auto [it, fresh] = last.try_emplace(key, ev.time_ms);
  if (!fresh && ev.time_ms - it->second < kEgressQuietMs) return {};
  it->second = ev.time_ms;
  if (last.size() > 100000) last.clear();  // a bound, not a policy: at worst a repeat alert

  Alert a;
  a.time_ns = ev.time_ms * 1000000;
  a.rule = "Stockade egress denied";
  a.priority = "Notice";
  a.tags = {"T1041", "mitre_exfiltration", "network", "stockade"};
  std::string l4 = proto == 6    ? "tcp"
                   : proto == 17 ? "udp"
                   : proto == 1  ? "icmp"
                   : proto == 58 ? "icmpv6"
                                 : std::to_string(proto);
  auto& f = a.fields;
  f["evt.time"] = a.time_ns;
  f["evt.type"] = "egress";
  f["evt.res"] = "DROPPED";
  f["fd.sip"] = str(r.get("saddr"));
  f["fd.rip"] = dst;
  f["fd.l4proto"] = l4;
  f["stockade.jail.id"] = jail.id;
  f["stockade.jail.policy"] = jail.policy;
  f["stockade.jail.host_uid"] = jail.host_uid;
  if (jail.known) f["stockade.jail.command"] = jail.command;
  f["stockade.blocked"] = true;
  f["stockade.blocked_by"] = "nftables:egress";
  f["stockade.audit.serial"] = ev.serial;
  a.text = fmt::format(
      "Jail sent traffic its egress policy denies (jail={} policy={} host_uid={} src={} dst={} "
      "proto={}; dropped on the host; repeats within {}s are not alerted again)",
      jail.id, jail.policy, jail.host_uid, str(r.get("saddr")), dst, l4, kEgressQuietMs / 1000);
  return one(std::move(a));
}

}  // namespace

std::string syscall_name(const std::string& arch_hex, long nr) {
  unsigned arch = static_cast<unsigned>(std::strtoul(arch_hex.c_str(), nullptr, 16));
  int machine = audit_elf_to_machine(arch);
  const char* n = machine >= 0 ? audit_syscall_to_name(static_cast<int>(nr), machine) : nullptr;
  return n != nullptr ? n : fmt::format("syscall {}", nr);
}

std::vector<Alert> detect(const Event& ev, const Jail& jail, const DetectContext& ctx) {
  if (const Record* r = ev.find(AUDIT_NETFILTER_PKT)) return from_egress(ev, *r, jail);
  if (const Record* r = ev.find(AUDIT_LOGIN)) return from_login(ev, *r, jail, ctx);
  if (const Record* r = ev.find(AUDIT_SECCOMP)) return from_seccomp(ev, *r, jail, ctx);
  if (const Record* r = ev.find(AUDIT_SYSCALL)) return from_syscall(ev, *r, jail, ctx);
  return {};
}

}  // namespace audit::detail
