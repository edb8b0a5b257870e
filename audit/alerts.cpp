// Alerts: Falco-compatible JSON lines, the writer, and `stockade alerts` for people.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "audit/audit.hpp"
#include "common/sys.hpp"

namespace audit {
namespace {

using common::fail;
using common::Result;
using nlohmann::json;

std::string iso_time(std::int64_t ns) {
  time_t sec = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns % 1000000000);
}

// Falco's priorities, most severe first.
const std::vector<std::string>& priorities() {
  static const std::vector<std::string> p = {"Emergency", "Alert",  "Critical",      "Error",
                                             "Warning",   "Notice", "Informational", "Debug"};
  return p;
}

int priority_rank(std::string p) {
  std::transform(p.begin(), p.end(), p.begin(), ::tolower);
  if (p == "info") p = "informational";
  for (size_t i = 0; i < priorities().size(); ++i) {
    std::string q = priorities()[i];
    std::transform(q.begin(), q.end(), q.begin(), ::tolower);
    if (p == q) return static_cast<int>(i);
  }
  return -1;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

std::string field(const json& f, const char* k) {
  if (!f.is_object() || !f.contains(k)) return "-";
  return f[k].is_string() ? f[k].get<std::string>() : f[k].dump();
}

// Parses Falco's "2026-11-22T17:55:23.412000000Z" into Unix seconds.
double parse_iso(const std::string& t) {
  struct tm tm {};
  int y, mo, d, h, mi;
  double s;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%lfZ", &y, &mo, &d, &h, &mi, &s) != 6) return 0;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return static_cast<double>(timegm(&tm)) + s;
}

}  // namespace

std::string hostname() {
  if (const char* h = std::getenv("FALCO_HOSTNAME"); h != nullptr && *h) return h;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

namespace {

// nlohmann's serializer decodes UTF-8 byte by byte (a fifth of an alert's cost in a storm):
// printable ASCII without quotes or backslashes is what it would print unchanged, so it is
// copied; anything else goes through nlohmann (escapes, invalid UTF-8 replaced).
void append_json_string(std::string& out, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

// The same bytes as v.dump(-1, ' ', false, replace): objects in their (sorted) order.
void append_json(std::string& out, const json& v) {
  if (v.is_string()) return append_json_string(out, v.get_ref<const std::string&>());
  if (v.is_object() || v.is_array()) {
    bool object = v.is_object();
    out += object ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ',';
      first = false;
      if (object) {
        append_json_string(out, it.key());
        out += ':';
      }
      append_json(out, *it);
    }
    out += object ? '}' : ']';
    return;
  }
  out += v.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string to_falco_json(const Alert& a, const std::string& host) {
  std::string t = iso_time(a.time_ns);
  // Falco's output line starts with the time of day and the priority.
  std::string output = fmt::format("{}: {} {}", t.substr(11, 18), a.priority, a.text);
  // Assembled in place, in the order nlohmann's sorted objects would print it (the same bytes):
  // a json object holding a copy of output_fields cost a third of an alert's time in storms.
  std::string out;
  out.reserve(1024);
  out += "{\"hostname\":";
  append_json_string(out, host);
  out += ",\"output\":";
  append_json_string(out, output);
  out += ",\"output_fields\":";
  append_json(out, a.fields);
  out += ",\"priority\":";
  append_json_string(out, a.priority);
  out += ",\"rule\":";
  append_json_string(out, a.rule);
  out += ",\"source\":\"stockade\",\"tags\":[";
  for (size_t i = 0; i < a.tags.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, a.tags[i]);
  }
  out += "],\"time\":";
  append_json_string(out, t);
  out += '}';
  return out;
}

Result<AlertWriter> AlertWriter::open(const std::string& path) {
  if (path.empty() || path == "-") {
    AlertWriter w(STDOUT_FILENO, false);
    w.host_ = hostname();
    return w;
  }
  int fd = sys::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(errno, "open alert file '{}'", path);
  AlertWriter w(fd, true);
  w.host_ = hostname();
  return w;
}

AlertWriter::AlertWriter(AlertWriter&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      owned_(o.owned_),
      dirty_(o.dirty_),
      written_(o.written_),
      host_(std::move(o.host_)),
      pending_(std::move(o.pending_)) {}

AlertWriter::~AlertWriter() {
  (void)flush();  // nothing to report to from a destructor
  sync();
  if (owned_ && fd_ >= 0) (void)::close(fd_);
}

Result<void> AlertWriter::write(const Alert& a) {
  TRY(add(a));
  return flush();
}

Result<void> AlertWriter::add(const Alert& a) {
  pending_ += to_falco_json(a, host_);
  pending_ += '\n';
  ++pending_lines_;
  // A bound, so a storm's alerts never pile up in memory: written now if the batch grew large.
  if (pending_.size() >= kMaxPending) return flush();
  return {};
}

Result<void> AlertWriter::flush() {
  if (pending_.empty() || fd_ < 0) return {};
  // One write for all the lines, under an exclusive lock: O_APPEND alone keeps a short write
  // whole, the lock keeps long ones of two watchers from interleaving when a write is split.
  bool lock = owned_ && ::flock(fd_, LOCK_EX) == 0;
  bool ok = sys::write_all(fd_, pending_.data(), pending_.size());
  int err = errno;
  if (lock) (void)::flock(fd_, LOCK_UN);
  pending_.clear();
  std::uint64_t lines = std::exchange(pending_lines_, 0);
  if (!ok) return fail(err, "write alert");
  dirty_ = true;
  written_ += lines;
  return {};
}

void AlertWriter::sync() {
  if (!dirty_ || fd_ < 0) return;
  if (owned_) (void)::fsync(fd_);  // a failed fsync shows at the next write
  dirty_ = false;
}

Result<double> parse_duration(const std::string& s) {
  if (s.empty()) return fail(EINVAL, "empty duration");
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end;
  double mul = unit == "" || unit == "s" ? 1
               : unit == "m"             ? 60
               : unit == "h"             ? 3600
               : unit == "d"             ? 86400
                                         : -1;
  if (end == s.c_str() || mul < 0 || v < 0)
    return fail(EINVAL, "'{}' is not a duration (use 90s, 15m, 1h or 2d)", s);
  return v * mul;
}

Result<void> review(const ReviewOptions& o, std::FILE* out) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!o.file.empty() && o.file != "-") {
    file.open(o.file);
    if (!file) return fail(errno, "open '{}'", o.file);
    in = &file;
  }
  int min_rank = 100;
  if (!o.priority.empty()) {
    min_rank = priority_rank(o.priority);
    if (min_rank < 0)
      return fail(EINVAL, "unknown priority '{}' (use {})", o.priority,
                  fmt::join(priorities(), ", "));
  }
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  struct Summary {
    int count = 0, blocked = 0, worst = 100;
    std::string first, last, host_uid, policy;
  };
  std::map<std::string, Summary> per_jail;
  std::string line;
  int skipped = 0, shown = 0;
  if (!o.json)
    fmt::print(out, "{:<24} {:<13} {:<14} {:<9} {:<9} {:<16} {:<18} {:<8} {}\n", "TIME", "PRIORITY",
               "JAIL", "PID", "VPID", "COMMAND", "SYSCALL", "BLOCKED", "RULE");
  while (std::getline(*in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("rule") || !j["rule"].is_string()) {
      ++skipped;
      continue;
    }
    std::string time = j.value("time", ""), rule = j.value("rule", ""),
                prio = j.value("priority", "");
    json f = j.contains("output_fields") ? j["output_fields"] : json::object();
    std::string jail = field(f, "stockade.jail.id");
    if (o.since_s > 0 && parse_iso(time) < now - o.since_s) continue;
    if (!o.jail.empty() && jail != o.jail) continue;
    if (!o.rule.empty() && lower(rule).find(lower(o.rule)) == std::string::npos) continue;
    int rank = priority_rank(prio);
    if (rank < 0 || rank > min_rank) continue;
    ++shown;
    std::string blocked = field(f, "stockade.blocked");
    auto& s = per_jail[jail];
    ++s.count;
    if (blocked == "true") ++s.blocked;
    s.worst = std::min(s.worst, rank);
    if (s.first.empty()) s.first = time;
    s.last = time;
    s.host_uid = field(f, "stockade.jail.host_uid");
    s.policy = field(f, "stockade.jail.policy");
    if (o.json) {
      fmt::print(out, "{}\n", line);
      continue;
    }
    std::string cmd = field(f, "proc.name");
    fmt::print(out, "{:<24} {:<13} {:<14} {:<9} {:<9} {:<16} {:<18} {:<8} {}\n", time.substr(0, 23),
               prio, jail, field(f, "proc.pid"), field(f, "proc.vpid"), cmd.substr(0, 16),
               field(f, "evt.type"),
               blocked == "true"    ? "yes"
               : blocked == "false" ? "NO"
                                    : "-",
               rule);
  }
  if (o.json) return {};
  fmt::print(out, "\n{} alert(s){}\n", shown,
             skipped ? fmt::format(", {} line(s) that are not alerts skipped", skipped) : "");
  for (const auto& [jail, s] : per_jail)
    fmt::print(
        out, "jail {}: {} alert(s), {} blocked, worst {}, host uid {}, policy {}, {} .. {}\n", jail,
        s.count, s.blocked,
        s.worst < static_cast<int>(priorities().size()) ? priorities()[static_cast<size_t>(s.worst)]
                                                        : "-",
        s.host_uid, s.policy, s.first.substr(0, 19), s.last.substr(0, 19));
  return {};
}

}  // namespace audit
