// The libaudit adapter: our rules, the audit status and the enable flag.
#include <libaudit.h>
#include <unistd.h>

#include <cstring>

#include "audit/detail/kernel.hpp"
#include "common/log.hpp"

// Exported by libaudit, not declared in its header: set by auditctl's option parser; key=
// is refused (EAU_KEYDEP) unless one of these is non-zero.
extern "C" int _audit_syscalladded;

namespace audit::detail {
namespace {

using common::fail;
using common::Result;

// One rule: these syscalls, this extra filter, from the jails' audit ids only.
struct RuleSpec {
  std::vector<const char*> syscalls;
  std::vector<std::string> filters;
};

// The escape syscalls that seccomp may let through (a policy can allow them): setns, unshare
// (nested user namespaces fail with ENOSPC, not through seccomp) and the rest; then write-opens
// that failed (to /proc/sys, sysrq-trigger, core_pattern, release_agent: the detector reads the
// path). Successful opens are left out: they are every file a build writes.
std::vector<RuleSpec> rule_specs() {
  return {
      {{"setns",      "unshare",           "mount",       "umount2",           "pivot_root",
        "ptrace",     "open_by_handle_at", "init_module", "finit_module",      "delete_module",
        "kexec_load", "kexec_file_load",   "bpf",         "process_vm_writev", "pidfd_getfd",
        "fsopen",     "fsmount",           "move_mount",  "open_tree",         "mount_setattr",
        "keyctl",     "add_key",           "request_key", "userfaultfd",       "perf_event_open"},
       {}},
      {{"open"}, {"a1&3", "success=0"}},
      {{"openat"}, {"a2&3", "success=0"}},
      {{"openat2"}, {"success=0"}},
  };
}

// audit_rule_fieldpair_data writes into its argument: hand it a copy.
int add_pair(audit_rule_data** r, const std::string& pair) {
  std::vector<char> buf(pair.begin(), pair.end());
  buf.push_back('\0');
  return audit_rule_fieldpair_data(r, buf.data(), AUDIT_FILTER_EXIT);
}

Result<RulePtr> build_rule(const char* arch, const RuleSpec& spec, const IdRange& range,
                           const std::string& key) {
  RulePtr rule{audit_rule_create_data()};
  audit_rule_data* r = rule.get();
  // arch first: syscall names are looked up in its table. libaudit refuses arch= once the
  // global says syscalls were added (it is left set by the previous rule's key=).
  _audit_syscalladded = 0;
  if (int rc = add_pair(&r, fmt::format("arch={}", arch)); rc != 0)
    return fail(EINVAL, "rule field arch={} (libaudit error {})", arch, rc);
  rule.release();
  rule.reset(r);
  int added = 0;
  for (const char* s : spec.syscalls)
    if (audit_rule_syscallbyname_data(rule.get(), s) == 0) ++added;  // unknown on this arch: skip
  if (added == 0) return RulePtr{};
  std::vector<std::string> pairs = spec.filters;
  pairs.push_back(fmt::format("auid>={}", range.first));
  pairs.push_back(fmt::format("auid<={}", range.first + range.count - 1));
  _audit_syscalladded = 1;
  pairs.push_back("key=" + key);
  for (const auto& p : pairs) {
    r = rule.release();
    int rc = add_pair(&r, p);
    rule.reset(r);
    if (rc != 0) return fail(EINVAL, "rule field '{}' (libaudit error {})", p, rc);
  }
  return rule;
}

}  // namespace

void RuleDeleter::operator()(audit_rule_data* r) const { audit_rule_free_data(r); }

Result<AuditSocket> AuditSocket::open() {
  int fd = audit_open();
  if (fd < 0) return fail(errno, "open the audit netlink socket");
  return AuditSocket(fd);
}

AuditSocket::~AuditSocket() {
  if (fd_ >= 0) audit_close(fd_);
}

Result<audit_status> get_status(int fd) {
  if (audit_request_status(fd) <= 0) return fail(errno, "request the audit status");
  for (int i = 0; i < 16; ++i) {
    struct audit_reply rep;
    int rc = audit_get_reply(fd, &rep, GET_REPLY_BLOCKING, 0);
    if (rc <= 0) return fail(errno, "read the audit status");
    if (rep.type == AUDIT_GET) return *rep.status;
  }
  return fail(EPROTO, "no audit status in the kernel's replies");
}

Result<EnableGuard> EnableGuard::ensure(int fd) {
  auto st = TRY(get_status(fd));
  if (st.enabled != 0) return EnableGuard(fd, false);
  if (audit_set_enabled(fd, 1) <= 0) return fail(errno, "enable audit");
  return EnableGuard(fd, true);
}

EnableGuard::~EnableGuard() {
  if (switched_ && audit_set_enabled(fd_, 0) <= 0)
    common::log::warn("could not switch audit off again (auditctl -e 0), ignoring");
}

Result<RuleSet> RuleSet::install(int fd, const IdRange& range, const std::string& key) {
  RuleSet set(fd);
  for (const char* arch : {"b64", "b32"}) {
    for (const auto& spec : rule_specs()) {
      RulePtr rule = TRY(build_rule(arch, spec, range, key));
      if (!rule) continue;
      if (audit_add_rule_data(fd, rule.get(), AUDIT_FILTER_EXIT, AUDIT_ALWAYS) <= 0)
        return fail(errno, "add audit rule ({} {})", arch, spec.syscalls.front());
      set.rules_.push_back(std::move(rule));
    }
  }
  return set;
}

RuleSet::~RuleSet() {
  for (auto& r : rules_)
    if (r && audit_delete_rule_data(fd_, r.get(), AUDIT_FILTER_EXIT, AUDIT_ALWAYS) <= 0)
      common::log::warn("could not remove an audit rule of ours (see auditctl -l), ignoring");
}

}  // namespace audit::detail

namespace audit {

std::vector<std::string> describe_rules(const IdRange& range, const std::string& key) {
  std::vector<std::string> out;
  for (const char* arch : {"b64", "b32"})
    for (const auto& spec : detail::rule_specs()) {
      std::string s =
          fmt::format("-a always,exit -F arch={} -S {}", arch, fmt::join(spec.syscalls, ","));
      for (const auto& f : spec.filters) s += " -F " + f;
      s += fmt::format(" -F auid>={} -F auid<={} -k {}", range.first, range.first + range.count - 1,
                       key);
      out.push_back(s);
    }
  return out;
}

}  // namespace audit
