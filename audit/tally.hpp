// Per-jail alert tallies for `stockade ps` and `inspect`: how many alerts stockade watch raised
// for each running jail, by rule, and the last one. Kept in memory and published at most once a
// second as ALERTS_DIR/ID.json (atomic rename), only while the jail's registry entry exists; a
// tally whose jail has ended is removed (by the watcher, the supervisor's teardown, or gc).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "audit/audit.hpp"

namespace audit {

class AlertTally {
 public:
  explicit AlertTally(std::string registry_dir);
  // Counts an alert that names a jail (stockade.jail.id); others are ignored.
  void count(const Alert& a);
  // Writes the tallies that changed since the last call; drops those of ended jails.
  void publish();

 private:
  std::string registry_dir_, dir_;
  std::map<std::string, nlohmann::json> tallies_;
  std::set<std::string> dirty_;
};

}  // namespace audit
