// audit: `stockade watch` and `stockade alerts`.
//
//   rules (libaudit, filtered on the jails' audit ids) -> multicast reader (netlink, one thread)
//   -> assembly (libauparse, another thread) -> attribution (registry) -> detectors -> alerts
//   (Falco-compatible JSON lines).
//
// A jail's audit id is its unique host uid (supervisor/child.cpp writes it to loginuid), so the
// registry's host_uid names the jail behind every record. Reads nothing else from the run side.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/registry.hpp"
#include "common/result.hpp"

namespace audit {

// The audit ids (= host uids) leased to jails: [first, first + count).
struct IdRange {
  std::uint32_t first = 1879048192;
  std::uint32_t count = 65536;
  bool contains(std::uint32_t id) const { return id >= first && id - first < count; }
};

// One alert, as Falco would emit it. `fields` becomes output_fields.
struct Alert {
  std::int64_t time_ns = 0;  // when it happened (the audit record's time)
  std::string rule;
  std::string priority;  // Emergency Alert Critical Error Warning Notice Informational Debug
  std::string text;      // the rendered output, without time and priority
  nlohmann::json fields = nlohmann::json::object();
  std::vector<std::string> tags;
};

// The Falco JSON line (no newline): time, rule, priority, source, output, output_fields, tags,
// hostname.
std::string to_falco_json(const Alert& a, const std::string& hostname);
std::string hostname();

// Appends alert lines to stdout or a file: whole lines, one write(2) per batch under an exclusive
// flock (so two watchers appending to one file never interleave), fsync'd by sync().
class AlertWriter {
 public:
  // path "" or "-": stdout.
  static common::Result<AlertWriter> open(const std::string& path);
  AlertWriter(AlertWriter&&) noexcept;
  AlertWriter& operator=(AlertWriter&&) = delete;
  ~AlertWriter();
  // Writes one line now.
  common::Result<void> write(const Alert& a);
  // Adds a line to the batch (written by flush(), or at once when the batch is large): a storm's
  // alerts cost one write(2) per batch of records, not one per alert.
  common::Result<void> add(const Alert& a);
  common::Result<void> flush();
  void sync();  // fsync what was written since the last sync (files only)
  std::uint64_t written() const { return written_; }

 private:
  static constexpr std::size_t kMaxPending = 256 << 10;
  AlertWriter(int fd, bool owned) : fd_(fd), owned_(owned) {}
  int fd_ = -1;
  bool owned_ = false;
  bool dirty_ = false;
  std::uint64_t written_ = 0;
  std::string host_;
  std::string pending_;
  std::uint64_t pending_lines_ = 0;
};

struct EngineStats {
  std::uint64_t records = 0;    // fed in
  std::uint64_t events = 0;     // assembled
  std::uint64_t malformed = 0;  // records we could not read
  std::uint64_t alerts = 0;
};

struct EngineOptions {
  IdRange range;
  std::string registry_dir;  // "" = no attribution beyond the audit id
  // Live: look at /proc/PID (namespaces, fds) when an event arrives. Off for replay.
  bool live = false;
  std::string key;  // the key our rules carry ("" = accept any)
};

// Assembly, attribution and detection. Not thread-safe: one thread feeds it.
class Engine {
 public:
  using Sink = std::function<void(const Alert&)>;
  Engine(EngineOptions options, Sink sink);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // One record as the kernel sends it: its type and the text after "msg=".
  void feed_record(int type, std::string_view body);
  // One line of a raw audit log ("type=NAME msg=audit(...): ..."), as auditd writes it.
  void feed_line(std::string_view line);
  // Releases events whose end never came (call every few hundred ms).
  void age();
  // Releases everything pending (end of input).
  void flush();
  // Reads the registry again now.
  void refresh_jails();
  // A jail's entry, as read when it was registered (it may be gone by the time its records are).
  void remember_jail(const common::registry::JailRecord& rec);
  // Raised by the watcher itself (lost records, missed multicast messages).
  void raise(const Alert& a);
  const EngineStats& stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

struct WatchOptions {
  IdRange range;
  std::string output;    // alert file ("" = stdout)
  std::string replay;    // raw audit log to replay instead of watching live
  std::string save_raw;  // also append every record received, in auditd's raw format
  std::string key;       // rule key ("" = "stockade-<pid>")
  std::string registry_dir;
  double stop_after = 0;  // seconds (0 = until SIGTERM/SIGINT)
  // Called once the rules are in and the reader listens (tests, benchmarks).
  std::function<void()> on_ready;
};

// What happened, for the closing message.
struct WatchSummary {
  EngineStats engine;
  std::uint64_t received = 0;     // netlink records read
  std::uint64_t enobufs = 0;      // times the socket reported missed messages
  std::uint32_t kernel_lost = 0;  // growth of the kernel's lost counter while we watched
  bool enabled_audit = false;     // we switched audit on (and off again)
  std::size_t rules = 0;
  double seconds = 0;
};

// Live: enables audit if needed (saying so), installs the rules, reads the multicast stream
// until SIGTERM/SIGINT/SIGHUP or stop_after, removes exactly its rules and restores audit.
// With options.replay: runs the detectors over the file instead.
common::Result<WatchSummary> watch(const WatchOptions& options);

// The rules `watch` installs, as auditctl would print them (for --help and the docs).
std::vector<std::string> describe_rules(const IdRange& range, const std::string& key);

// stockade alerts: read alert lines, filter them, print a table or JSON lines, and a summary
// per jail.
struct ReviewOptions {
  std::string file;      // "" or "-": stdin
  double since_s = 0;    // only alerts newer than now - since_s (0 = all)
  std::string jail;      // id
  std::string rule;      // substring of the rule name (case-insensitive)
  std::string priority;  // minimum priority
  bool json = false;
};
// Parses "90s", "15m", "1h", "2d".
common::Result<double> parse_duration(const std::string& s);
common::Result<void> review(const ReviewOptions& options, std::FILE* out);

}  // namespace audit
