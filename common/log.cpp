#include "common/log.hpp"

#include <atomic>
#include <ctime>
#include <nlohmann/json.hpp>

namespace common::log {
namespace {
std::atomic<Level> g_level{Level::kInfo};
std::atomic<Format> g_format{Format::kText};

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kQuiet:
      break;
  }
  return "error";
}
}  // namespace

void set_level(Level level) { g_level = level; }
void set_format(Format format) { g_format = format; }
Level level() { return g_level; }

void write(Level l, const std::string& msg) {
  if (l < g_level.load() && l != Level::kError) return;
  std::string line;
  if (g_format == Format::kJson) {
    nlohmann::json j{{"time", static_cast<long long>(std::time(nullptr))},
                     {"level", level_name(l)},
                     {"msg", msg}};
    line = j.dump() + "\n";
  } else if (l == Level::kWarn) {
    line = "stockade: warning: " + msg + "\n";
  } else {
    line = "stockade: " + msg + "\n";
  }
  // One fwrite per line keeps lines whole when several jails share a terminal.
  (void)std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace common::log
