// Assembled audit events and the detectors that read them (internal to audit/).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/audit.hpp"

namespace audit::detail {

struct Record {
  int type = 0;
  std::vector<std::pair<std::string, std::string>> fields;  // raw values, quotes removed
  const std::string* get(std::string_view name) const;
};

// Records sharing one (time, serial): a syscall's SYSCALL, PATH..., PROCTITLE; or one
// standalone record (SECCOMP).
struct Event {
  std::int64_t time_ms = 0;
  std::uint64_t serial = 0;
  std::vector<Record> records;
  const Record* find(int type) const;
};

// Splits "audit(SEC.MS:SERIAL): k=v k="v v" ..." into the event stamp and the record's fields.
// Returns false for text that is not a record.
bool parse_body(std::string_view body, std::int64_t* time_ms, std::uint64_t* serial, Record* rec);

// The jail behind an audit id, as the registry said (or only the id, if it never did).
struct Jail {
  bool known = false;
  std::string id;
  std::string policy;
  std::uint32_t host_uid = 0;
  std::uint32_t uid = 0;  // inside
  pid_t init_pid = 0;
  std::map<std::string, std::uint64_t> namespaces;
  std::string command;
};

struct DetectContext {
  bool live = false;
  std::string key;  // our rules' key ("" = any)
};

// Every alert the event raises (correlated: one event, at most one alert per finding).
std::vector<Alert> detect(const Event& ev, const Jail& jail, const DetectContext& ctx);

// "setns" for syscall 308 on x86_64 (arch as in records: hex AUDIT_ARCH), or "syscall N".
std::string syscall_name(const std::string& arch_hex, long nr);

}  // namespace audit::detail
