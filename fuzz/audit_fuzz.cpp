// libFuzzer target for the audit assembly path: raw log lines (replay) and kernel records
// (live) through libauparse, the standalone-record parser and the detectors. Any crash, leak or
// undefined behaviour is a bug: the watcher reads what jailed processes can influence (comm,
// exe, proctitle, paths).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "audit/audit.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t alerts = 0;
  audit::Engine engine({}, [&](const audit::Alert& a) { alerts += a.rule.empty() ? 0 : 1; });
  // As a replayed log: one record per line.
  std::string_view rest = in;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    engine.feed_line(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  engine.age();
  // As kernel records: the first two bytes pick the type, the rest is the body.
  if (size >= 2) {
    int type = 1300 + (data[0] | (data[1] << 8)) % 120;
    engine.feed_record(type, in.substr(2));
    engine.feed_record(1326, in.substr(2));
  }
  engine.flush();
  return 0;
}
